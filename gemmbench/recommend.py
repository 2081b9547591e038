"""Which backend to dispatch at which M: the fastest accurate backend per M, collapsed into M ranges.

Backends within the run-to-run spread of the fastest (SAME_TOLERANCE, 3%) are tied at that M; a tie
goes to the backend that is among the fastest at the most M values, so that measurement noise does not
split the M axis into ranges that alternate between equivalent backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemmbench.compare import SAME_TOLERANCE
from gemmbench.records import FP32_ACCURATE_REL_ERR, Record, by_shape


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
    # backend -> the first of its rows that did not qualify (status not ok, or rel_err above tolerance),
    # for backends that never qualified at any M
    excluded: dict[str, Record] = field(default_factory=dict)


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
        if (
            record.backend not in winners.values()
            and record.backend not in excluded
            and not _qualifies(record, tolerance)
        ):
            excluded[record.backend] = record
    return ShapeRecommendation(model, gemm, n, k, tolerance, _ranges(winners), winners, excluded)


def _qualifies(record: Record, tolerance: float) -> bool:
    return record.accurate(tolerance) and record.best_time_us is not None


def _ranges(winners: dict[int, str]) -> list[MRange]:
    """Consecutive M values with the same winner become one range."""
    ranges: list[MRange] = []
    for m, backend in winners.items():
        if ranges and ranges[-1].backend == backend:
            ranges[-1] = MRange(ranges[-1].first_m, m, backend)
        else:
            ranges.append(MRange(m, m, backend))
    return ranges
