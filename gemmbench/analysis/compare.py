"""Compare two runs row by row: the ratio of medians and a verdict that accounts for both runs' spread."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from gemmbench.analysis.policy import FLAGGED_TOLERANCE, SAME_TOLERANCE
from gemmbench.records import OK, GroupRecord, Provenance, Record, Run, grouped
from gemmbench.records.record import shared_timer
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER, HOST_TIMER
from gemmbench.spec.cases import NO_CONTEXT

FASTER, SLOWER, SAME, NOISY, NOT_TIMED = "faster", "slower", "same", "noisy", "not timed"
VERDICTS = (FASTER, SLOWER, SAME, NOISY, NOT_TIMED)


@dataclass(frozen=True)
class RowComparison:
    """Two runs' rows of one case, backend and context: which of their times the comparison reads (device
    where both rows have it, else latency; a row in a layer is compared with the same layer's row, its
    times per layer), their ratio and the verdict."""

    base: Record
    new: Record
    timer: str | None  # "device" or "latency" (records.record.shared_timer): the figure compared; None: not timed
    base_us: float | None  # the medians compared
    new_us: float | None
    ratio: float | None  # new / base median
    verdict: str


@dataclass(frozen=True)
class RunConditions:
    """What two runs must share for their times to be compared: where and how they were timed."""

    device_type: str | None  # "cuda" or "cpu"; None where unknown (a CSV export of no timed row)
    l2_modes: tuple[str, ...]  # "cold", "hot"; empty on the CPU
    timers: tuple[str, ...]  # the timer names of the timed rows
    context: str = NO_CONTEXT  # the producers the GEMMs ran after (`--context`), comma-separated


@dataclass(frozen=True)
class Comparison:
    """Two runs compared: their sweep rows (RowComparison), or their group rows (GroupComparison), matched;
    and the rows only one run holds."""

    base_provenance: Provenance
    new_provenance: Provenance
    rows: list[RowComparison] | list[GroupComparison]
    only_base: list[Record] | list[GroupRecord]
    only_new: list[Record] | list[GroupRecord]
    base_conditions: RunConditions
    new_conditions: RunConditions

    @property
    def geomean_ratio(self) -> float | None:
        ratios = [r.ratio for r in self.rows if r.ratio]
        return math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else None

    def counts(self) -> dict[str, int]:
        counts = {v: 0 for v in VERDICTS}
        for row in self.rows:
            counts[row.verdict] += 1
        return counts

    def regressions(self, above_pct: float) -> list[RowComparison]:
        return [r for r in self.rows if r.verdict == SLOWER and (r.ratio - 1) * 100 > above_pct]

    def lost(self) -> list[tuple[Record, Record | None]]:
        """The rows the base run timed that the new run did not: each with the new run's row (an error, a
        skip, or an ok row without a time: a row cut short), or None where the new run has no such row."""
        lost = [(r.base, r.new) for r in self.rows if _timed(r.base) and not _timed(r.new)]
        return lost + [(record, None) for record in self.only_base if _timed(record)]


def _timed(record: Record | GroupRecord) -> bool:
    return record.status == OK and record.best_time_us is not None


def _key(record: Record) -> tuple:
    """A sweep row's identity across runs, whatever device ran it: its case, backend and context."""
    identity = (record.model, record.gemm, record.m, record.n, record.k, record.in_dtype, record.out_dtype)
    return (*identity, record.label, record.context)


def _group_key(record: GroupRecord) -> tuple:
    return (record.model, record.group, record.m, record.backend, record.context)


def _pairs(base: list, new: list) -> tuple[list[tuple], list, list]:
    """The rows of one identity in two runs, paired: (base, new) pairs, then the rows of either left over.
    Where one run has one such row (one device) and the other several (a fleet), the one is paired with each
    of them; where both have several, they pair by device."""
    if not base or not new:
        return [], base, new
    if len(base) == 1 or len(new) == 1:
        return [(b, n) for b in base for n in new], [], []
    by_device = {n.device_id: n for n in new}
    pairs = [(b, by_device[b.device_id]) for b in base if b.device_id in by_device]
    paired = {b.device_id for b, _ in pairs}
    return pairs, [b for b in base if b.device_id not in paired], [n for n in new if n.device_id not in paired]


def _matched(base: list, new: list, key: Callable, compare: Callable) -> tuple[list, list, list]:
    """Compared rows (`compare(base_row, new_row)`), in the base run's order, and the rows only one run holds."""
    base_by, new_by = grouped(base, key), grouped(new, key)
    rows, only_base, only_new = [], [], []
    for identity, base_rows in base_by.items():
        pairs, left_base, left_new = _pairs(base_rows, new_by.get(identity, []))
        rows += [compare(b, n) for b, n in pairs]
        only_base += left_base
        only_new += left_new
    only_new += [r for identity, rows_of in new_by.items() if identity not in base_by for r in rows_of]
    return rows, only_base, only_new


def compare_row(base: Record, new: Record, tolerance: float = SAME_TOLERANCE) -> RowComparison:
    not_timed = RowComparison(base, new, None, None, None, None, NOT_TIMED)
    if base.status != OK or new.status != OK:
        return not_timed
    timer, base_time, new_time = shared_timer(base, new)
    if not base_time or not new_time or not base_time.median_us or not new_time.median_us:
        return not_timed
    ratio = new_time.median_us / base_time.median_us
    flagged = any(r.noisy or r.throttled for r in (base, new))
    verdict = judge(ratio, base_time.interval_us, new_time.interval_us, flagged, tolerance)
    return RowComparison(base, new, timer, base_time.median_us, new_time.median_us, ratio, verdict)


def judge(ratio: float, base_interval, new_interval, flagged: bool, tolerance: float = SAME_TOLERANCE) -> str:
    """The verdict on a ratio of medians, given both 95% intervals and whether either row was flagged."""
    if abs(ratio - 1) <= tolerance:
        return SAME
    (base_low, base_high), (new_low, new_high) = base_interval, new_interval
    overlap = new_low <= base_high and base_low <= new_high
    if overlap or (flagged and abs(ratio - 1) <= FLAGGED_TOLERANCE):
        return NOISY
    return FASTER if ratio < 1 else SLOWER


@dataclass(frozen=True)
class GroupComparison:
    base: GroupRecord
    new: GroupRecord
    ratio: float | None  # new over base parallel device time
    verdict: str


def compare_group_rows(old: GroupRecord, other: GroupRecord, tolerance: float = SAME_TOLERANCE) -> GroupComparison:
    """Two runs' rows of one group, M, backend and context, by parallel device time."""
    if old.status != OK or other.status != OK or not old.parallel_device or not other.parallel_device:
        return GroupComparison(old, other, None, NOT_TIMED)
    ratio = other.parallel_device.median_us / old.parallel_device.median_us
    intervals = [r.parallel_device.interval_us for r in (old, other)]
    flagged = any(r.noisy or r.throttled for r in (old, other))
    return GroupComparison(old, other, ratio, judge(ratio, *intervals, flagged, tolerance))


def compare_groups(base: Run, new: Run, tolerance: float = SAME_TOLERANCE) -> Comparison:
    """The two runs' group rows (`gemmbench group`), by parallel device time."""
    compare = lambda old, other: compare_group_rows(old, other, tolerance)  # noqa: E731
    rows, only_base, only_new = _matched(base.groups, new.groups, _group_key, compare)
    conditions = run_conditions(base), run_conditions(new)
    return Comparison(base.provenance, new.provenance, rows, only_base, only_new, *conditions)


def run_conditions(run: Run) -> RunConditions:
    """How a run's timed rows (sweep and group rows alike) were timed."""
    timed = [r for r in (*run.records, *run.groups) if r.status == OK]
    timers = sorted({summary.timer for r in timed for summary in _summaries(r) if summary})
    device_type = run.provenance.device_type
    if device_type is None:  # a CSV export carries no provenance: the timers tell, where they are real
        device_type = "cpu" if HOST_TIMER in timers else "cuda" if {GRAPH_TIMER, EVENTS_TIMER} & set(timers) else None
    l2_modes = tuple(sorted({r.l2_mode for r in timed if r.l2_mode}))
    return RunConditions(device_type, l2_modes, tuple(timers), _contexts(run))


def _summaries(record: Record | GroupRecord) -> tuple:
    if isinstance(record, GroupRecord):
        return (record.serial_device, record.serial_latency, record.parallel_device, record.parallel_latency)
    return (record.latency, record.device)


def _contexts(run: Run) -> str:
    """The producers a run timed its layers after, in a canonical order (the order given on the command line
    does not matter): as its provenance names them, else (a CSV export) as its rows do; "none" for neither."""
    named = run.provenance.context
    rows = (*run.records, *run.groups)
    contexts = set(named.split(",")) - {NO_CONTEXT} if named else {r.context for r in rows if r.context}
    return ",".join(sorted(contexts)) or NO_CONTEXT


SWEEP_RUN, GROUP_RUN = "a sweep run", "a group run"


def run_kind(run: Run) -> str:
    """What a run holds: sweep rows (`gemmbench sweep`) or group rows (`gemmbench group`)."""
    return GROUP_RUN if run.groups and not run.records else SWEEP_RUN


def mismatches(base: Run, new: Run) -> list[str]:
    """How the two runs were timed differently ('device type: cpu vs cuda', ...); empty when they match."""
    a, b = run_conditions(base), run_conditions(new)

    def l2(conditions: RunConditions) -> str | None:
        # GPU runs recorded before L2 modes were: unknown, not a mode of their own
        return "/".join(conditions.l2_modes) or (None if conditions.device_type == "cuda" else "none")

    differences = []
    for label, left, right in (
        ("device type", a.device_type, b.device_type),
        ("L2 mode", l2(a), l2(b)),
        ("timers", ", ".join(a.timers) or "none", ", ".join(b.timers) or "none"),
        ("context", a.context, b.context),
    ):
        if left != right and None not in (left, right):
            differences.append(f"{label}: {left} vs {right}")
    return differences


def compare_runs(base: Run, new: Run, tolerance: float = SAME_TOLERANCE) -> Comparison:
    """The two runs' sweep rows, by case, backend and context; a fleet's rows by device too (against each
    device's where both runs are fleets, else each against the one-device run's row)."""
    compare = lambda old, other: compare_row(old, other, tolerance)  # noqa: E731
    rows, only_base, only_new = _matched(base.records, new.records, _key, compare)
    conditions = run_conditions(base), run_conditions(new)
    return Comparison(base.provenance, new.provenance, rows, only_base, only_new, *conditions)
