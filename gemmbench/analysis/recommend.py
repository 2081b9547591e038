"""Which backend to dispatch at which M: the fastest accurate backend per M, collapsed into M ranges,
one recommendation per GEMM shape and view (alone, or in its layer after one producer: a run of several
contexts holds several views), and what each choice saves against the engine's fallback.

Backends within the run-to-run spread of the fastest (SAME_TOLERANCE, 3%) are tied at that M; a tie goes
to the first of them in PREFERENCE, so that two runs of the same sweep, which differ within that spread,
recommend the same backend, and noise does not split the M axis into ranges that alternate between
equivalent backends. The sweep's tables mark the same choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gemmbench.analysis.policy import (
    ENGINE_CONTEXTS,
    FALLBACK_BACKEND,
    FP32_ACCURATE_REL_ERR,
    accurate,
    tied_by_preference,
)
from gemmbench.errors import UsageError
from gemmbench.records import ERROR, OK, Record, by_shape
from gemmbench.records.record import shared_timer
from gemmbench.spec.cases import NO_CONTEXT


def tied_fastest(records, tolerance: float = FP32_ACCURATE_REL_ERR, max_flips: float | None = None) -> list[str]:
    """The backends of one point's `records` (one M) that qualify and are within SAME_TOLERANCE of the
    fastest that does, in the order of preference: the first is the choice, the others are tied with it."""
    candidates = [r for r in records if _qualifies(r, tolerance, max_flips)]
    return list(dict.fromkeys(r.label for r in tied_by_preference(candidates, decision_time_us, lambda r: r.label)))


@dataclass(frozen=True)
class MRange:
    """Consecutive measured M values with the same winner. The dispatch boundary between two ranges is
    the last M of the lower one: `M <= last_m` goes to this backend, the next range takes `M > last_m`."""

    first_m: int
    last_m: int
    backend: str


@dataclass(frozen=True)
class Saving:
    """What the choice at one M saves against the fallback, per call (a layer's, in a layer view): the
    difference of two times measured in the same rounds, with the interval formed from their 95% intervals
    at their extremes (it holds the difference whenever both hold their medians)."""

    m: int
    against: str
    us: float
    low_us: float
    high_us: float
    share: float  # of the fallback's time
    per_forward: int | None  # calls per forward pass (a router: the model's MoE layers), where known

    @property
    def forward_us(self) -> float | None:
        return self.us * self.per_forward if self.per_forward else None


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
    throttled: tuple[int, ...] = ()  # M values whose chosen row ran with the clocks down (power, thermal)
    context: str | None = None  # the producer before the GEMM in the layer its times are of; None: alone
    savings: dict[int, Saving] = field(default_factory=dict)  # M -> against the fallback, where it is not chosen
    # The largest share of tokens whose experts may change (`--max-flips`); None: not a qualification.
    max_flips: float | None = None
    # The error rows of backends that qualified at some other M: the choice at their M went to another
    # backend, which the user is told, not left to guess.
    errored: tuple[Record, ...] = ()

    def errors_by_backend(self) -> dict[str, tuple[list[int], str]]:
        """Each backend with error rows beside its qualified ones: the M values, and the first reason."""
        errors: dict[str, tuple[list[int], str]] = {}
        for record in self.errored:
            errors.setdefault(record.label, ([], record.reason))[0].append(record.m)
        return errors

    @property
    def in_layer(self) -> bool:
        """Chosen by the time of the GEMM's layer, after its producer (a `--context` run)."""
        return self.context is not None


def recommend(
    records: list[Record], tolerance: float = FP32_ACCURATE_REL_ERR, max_flips: float | None = None
) -> list[ShapeRecommendation]:
    """Per shape and view, the fastest qualifying backend at each M: status ok, rel_err <= `tolerance`, and
    (where `max_flips` is given) a routing check whose share of changed expert sets is at most it."""
    return [_recommend_shape(key, group, tolerance, max_flips) for key, group in by_shape(records).items()]


def _recommend_shape(
    key: tuple, records: list[Record], tolerance: float, max_flips: float | None
) -> ShapeRecommendation:
    model, gemm, n, k, context = key
    winners: dict[int, str] = {}
    tied: dict[int, list[str]] = {}
    for m in sorted({r.m for r in records}):
        ranked = tied_fastest([r for r in records if r.m == m], tolerance, max_flips)
        if ranked:
            winners[m], tied[m] = ranked[0], ranked[1:]
    qualified = {r.label for r in records if _qualifies(r, tolerance, max_flips)}
    excluded: dict[str, Record] = {}
    for record in records:
        if record.label not in qualified:
            excluded.setdefault(record.label, record)
    figure = decision_figure(records)
    throttled = tuple(sorted({r.m for r in records if winners.get(r.m) == r.label and r.throttled}))
    savings = _savings(records, winners)
    errored = tuple(r for r in records if r.status == ERROR and r.label not in excluded)
    return ShapeRecommendation(
        model,
        gemm,
        n,
        k,
        tolerance,
        _ranges(winners),
        winners,
        tied,
        excluded,
        figure,
        throttled,
        context,
        savings,
        max_flips,
        errored,
    )


def decision_time_us(record: Record) -> float | None:
    """The figure a dispatch decision reads: device time where measured, else eager latency; per layer,
    producer included, in a layer view."""
    return record.best_time_us


def decision_figure(records: list[Record]) -> str:
    """Which figure `decision_time_us` read for these records (one view), in words."""
    timed = [r for r in records if r.best_time_us is not None]
    timer = "device time" if any(r.device for r in timed) or not timed else "eager latency"
    context = records[0].context if records else None
    return f"{timer} of the layer, after {context} (producer then GEMM)" if context else f"{timer} alone"


def _savings(records: list[Record], winners: dict[int, str]) -> dict[int, Saving]:
    """At each M whose choice is not the fallback, what it saves against the fallback's row, where both have
    the same timer (device time, else eager latency)."""
    savings = {}
    for m, label in winners.items():
        here = {r.label: r for r in records if r.m == m and r.status == OK}
        chosen, fallback = here.get(label), here.get(FALLBACK_BACKEND)
        if label == FALLBACK_BACKEND or chosen is None or fallback is None:
            continue
        _, mine, theirs = shared_timer(chosen, fallback)
        if mine is None or theirs is None:
            continue
        saved = theirs.median_us - mine.median_us
        (mine_low, mine_high), (their_low, their_high) = mine.interval_us, theirs.interval_us
        share = saved / theirs.median_us
        savings[m] = Saving(
            m, FALLBACK_BACKEND, saved, their_low - mine_high, their_high - mine_low, share, chosen.per_forward
        )
    return savings


def dispatch_view(recommendations: list[ShapeRecommendation], context: str | None = None) -> list[ShapeRecommendation]:
    """The recommendations one dispatch follows: of `context` where given ('none': alone); else, where the
    run holds layer views, the first of the engines' producers it holds (ENGINE_CONTEXTS), or its only
    context; else the views alone. A UsageError where the choice is not the run's to make."""
    contexts = list(dict.fromkeys(rec.context for rec in recommendations if rec.context))
    if context is None:
        engine = [name for name in ENGINE_CONTEXTS if name in contexts]
        if engine or len(contexts) == 1:
            context = (engine or contexts)[0]
        elif contexts:
            raise UsageError(
                f"this run holds layers after {', '.join(contexts)} and none of them is an engine's producer",
                "choose one with --context NAME (or --context none for the GEMMs alone)",
            )
    return in_view(recommendations, context or NO_CONTEXT)


def in_view(items: list, context: str) -> list:
    """The `items` (recommendations, group rows: anything with a `context`) of one view: in the layer after
    `context`, or alone (NO_CONTEXT); a UsageError naming the views held where the run holds no such view."""
    wanted = None if context == NO_CONTEXT else context
    held = list(dict.fromkeys(item.context for item in items))
    if wanted not in held:
        what = "GEMM alone" if wanted is None else f"layer after '{wanted}'"
        views = ", ".join(NO_CONTEXT if view is None else view for view in held)
        raise UsageError(f"this run holds no {what}", f"choose one of: {views}")
    return [item for item in items if item.context == wanted]


def _qualifies(record: Record, tolerance: float, max_flips: float | None = None) -> bool:
    """Accurate, timed, and where `max_flips` is given and the routing check applies (a router row), routed
    like float64 at all but at most that share of tokens (a router row without the check does not qualify)."""
    unchecked = max_flips is None or not record.routed
    routes = unchecked or (record.topk_mismatch is not None and record.topk_mismatch <= max_flips)
    return accurate(record.status, record.rel_err, tolerance) and routes and decision_time_us(record) is not None


def _ranges(winners: dict[int, str]) -> list[MRange]:
    """Consecutive M values with the same winner become one range."""
    ranges: list[MRange] = []
    for m, backend in winners.items():
        if ranges and ranges[-1].backend == backend:
            ranges[-1] = MRange(ranges[-1].first_m, m, backend)
        else:
            ranges.append(MRange(m, m, backend))
    return ranges
