"""Which backend to dispatch at which M: the fastest accurate backend per M, collapsed into M ranges.

Backends within the run-to-run spread of the fastest (SAME_TOLERANCE, 3%) are tied at that M; a tie
goes to the backend that is among the fastest at the most M values, so that measurement noise does not
split the M axis into ranges that alternate between equivalent backends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gemmbench.compare import SAME_TOLERANCE
from gemmbench.results import FP32_ACCURATE_REL_ERR, OK, Record, by_shape


@dataclass(frozen=True)
class MRange:
    first_m: int  # the measured M values this range covers
    last_m: int
    backend: str
    rule: str  # "M <= 8", "8 < M <= 64", "M > 64", or "all M"


@dataclass(frozen=True)
class ShapeRecommendation:
    model: str
    gemm: str
    n: int
    k: int
    tolerance: float
    ranges: list[MRange]
    winners: dict[int, str] = field(default_factory=dict)  # M -> backend
    excluded: dict[str, str] = field(default_factory=dict)  # backend -> why it never qualified

    @property
    def summary(self) -> str:
        return "; ".join(f"{r.rule}: {r.backend}" for r in self.ranges) or "no backend qualified"

    def to_dict(self) -> dict:
        return asdict(self) | {"summary": self.summary}


def recommend(records: list[Record], tolerance: float = FP32_ACCURATE_REL_ERR) -> list[ShapeRecommendation]:
    return [_recommend_shape(key, group, tolerance) for key, group in by_shape(records).items()]


def _recommend_shape(key: tuple, records: list[Record], tolerance: float) -> ShapeRecommendation:
    model, gemm, n, k = key
    tied: dict[int, set[str]] = {}  # M -> backends within SAME_TOLERANCE of the fastest accurate one
    for m in sorted({r.m for r in records}):
        candidates = [r for r in records if r.m == m and _qualifies(r, tolerance)]
        if candidates:
            fastest = min(r.best_time_us for r in candidates)
            tied[m] = {r.backend for r in candidates if r.best_time_us <= fastest * (1 + SAME_TOLERANCE)}
    backends = list(dict.fromkeys(r.backend for r in records))
    preference = sorted(backends, key=lambda b: -sum(b in near for near in tied.values()))
    winners = {m: next(b for b in preference if b in near) for m, near in tied.items()}
    excluded = {}
    for record in records:
        if record.backend not in winners.values() and record.backend not in excluded and not _qualifies(record, tolerance):
            excluded[record.backend] = _why_not(record, tolerance)
    return ShapeRecommendation(model, gemm, n, k, tolerance, _ranges(winners), winners, excluded)


def _qualifies(record: Record, tolerance: float) -> bool:
    return record.accurate(tolerance) and record.best_time_us is not None


def _why_not(record: Record, tolerance: float) -> str:
    if record.status != OK:
        return f"{record.status}: {record.reason}"
    return f"rel_err {record.rel_err:.1e} > {tolerance:g}"


def _ranges(winners: dict[int, str]) -> list[MRange]:
    """Consecutive M values with the same winner become one range; boundaries at the last M of a range."""
    spans: list[list] = []
    for m, backend in winners.items():
        if spans and spans[-1][2] == backend:
            spans[-1][1] = m
        else:
            spans.append([m, m, backend])
    ranges = []
    for index, (first, last, backend) in enumerate(spans):
        previous = spans[index - 1][1] if index else None
        if len(spans) == 1:
            rule = "all M"
        elif index == 0:
            rule = f"M <= {last}"
        elif index == len(spans) - 1:
            rule = f"M > {previous}"
        else:
            rule = f"{previous} < M <= {last}"
        ranges.append(MRange(first, last, backend, rule))
    return ranges
