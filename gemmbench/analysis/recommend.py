"""Which backend to dispatch at which M: the fastest accurate backend per M, collapsed into M ranges.

Backends within the run-to-run spread of the fastest (SAME_TOLERANCE, 3%) are tied at that M; a tie goes
to the first of them in PREFERENCE, so that two runs of the same sweep, which differ within that spread,
recommend the same backend, and noise does not split the M axis into ranges that alternate between
equivalent backends. The sweep's tables mark the same choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemmbench.analysis.policy import FP32_ACCURATE_REL_ERR, SAME_TOLERANCE, accurate, preference_rank
from gemmbench.records import Record, by_shape


def tied_fastest(records, tolerance: float = FP32_ACCURATE_REL_ERR) -> list[str]:
    """The backends of one point's `records` (one M) that qualify and are within SAME_TOLERANCE of the
    fastest that does, in the order of preference: the first is the choice, the others are tied with it."""
    candidates = [r for r in records if _qualifies(r, tolerance)]
    if not candidates:
        return []
    fastest = min(decision_time_us(r) for r in candidates)
    tied = {r.label for r in candidates if decision_time_us(r) <= fastest * (1 + SAME_TOLERANCE)}
    return sorted(tied, key=preference_rank)


@dataclass(frozen=True)
class MRange:
    """Consecutive measured M values with the same winner. The dispatch boundary between two ranges is
    the last M of the lower one: `M <= last_m` goes to this backend, the next range takes `M > last_m`."""

    first_m: int
    last_m: int
    backend: str


@dataclass(frozen=True)
class ShapeRecommendation:
    model: str
    gemm: str
    n: int
    k: int
    tolerance: float
    ranges: list[MRange]
    winners: dict[int, str] = field(default_factory=dict)  # M -> backend
    tied: dict[int, list[str]] = field(default_factory=dict)  # M -> the other backends tied with the winner
    # backend -> the first of its rows that did not qualify (status not ok, or rel_err above tolerance),
    # for backends that qualified at no M
    excluded: dict[str, Record] = field(default_factory=dict)
    figure: str = ""  # which figure decided (decision_figure): alone, or in the layer after a producer
    simulated: tuple[str, ...] = ()  # chosen backends whose times a test double made up (the fake backend)
    throttled: tuple[int, ...] = ()  # M values whose chosen row ran with the clocks down (power, thermal)

    @property
    def in_layer(self) -> bool:
        """Chosen by the GEMM's time after its producer (a `--context` run)."""
        return self.figure.startswith(IN_LAYER)


def recommend(records: list[Record], tolerance: float = FP32_ACCURATE_REL_ERR) -> list[ShapeRecommendation]:
    return [_recommend_shape(key, group, tolerance) for key, group in by_shape(records).items()]


def _recommend_shape(key: tuple, records: list[Record], tolerance: float) -> ShapeRecommendation:
    model, gemm, n, k = key
    winners: dict[int, str] = {}
    tied: dict[int, list[str]] = {}
    for m in sorted({r.m for r in records}):
        ranked = tied_fastest([r for r in records if r.m == m], tolerance)
        if ranked:
            winners[m], tied[m] = ranked[0], ranked[1:]
    qualified = {r.label for r in records if _qualifies(r, tolerance)}
    excluded: dict[str, Record] = {}
    for record in records:
        if record.label not in qualified:
            excluded.setdefault(record.label, record)
    figure = decision_figure(records)
    chosen = set(winners.values())
    simulated = tuple(sorted({r.label for r in records if r.label in chosen and r.simulated}))
    throttled = tuple(sorted({r.m for r in records if winners.get(r.m) == r.label and r.throttled}))
    return ShapeRecommendation(
        model, gemm, n, k, tolerance, _ranges(winners), winners, tied, excluded, figure, simulated, throttled
    )


IN_LAYER = "in the layer"


def decision_time_us(record: Record) -> float | None:
    """The figure a dispatch decision reads: the GEMM's time in its layer where the run measured one (a
    `--context` run), else its device time alone, else its eager latency."""
    return record.context_time_us if record.context else record.best_time_us


def decision_figure(records: list[Record]) -> str:
    """Which figure `decision_time_us` read for these records, in words."""
    contexts = sorted({r.context for r in records if r.context})
    if contexts:
        return f"{IN_LAYER}, after {'/'.join(contexts)} (device time of producer-then-GEMM minus the producer's)"
    timed = [r for r in records if r.best_time_us is not None]
    return "device time alone" if any(r.device for r in timed) or not timed else "eager latency alone"


def _qualifies(record: Record, tolerance: float) -> bool:
    return accurate(record.status, record.rel_err, tolerance) and decision_time_us(record) is not None


def _ranges(winners: dict[int, str]) -> list[MRange]:
    """Consecutive M values with the same winner become one range."""
    ranges: list[MRange] = []
    for m, backend in winners.items():
        if ranges and ranges[-1].backend == backend:
            ranges[-1] = MRange(ranges[-1].first_m, m, backend)
        else:
            ranges.append(MRange(m, m, backend))
    return ranges
