"""Compare two runs row by row: the ratio of medians and a verdict that accounts for both runs' spread."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from gemmbench.analysis.policy import FLAGGED_TOLERANCE, SAME_TOLERANCE
from gemmbench.records import OK, GroupRecord, Provenance, Record, Run
from gemmbench.records.record import shared_timer
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER, HOST_TIMER

FASTER, SLOWER, SAME, NOISY, NOT_TIMED = "faster", "slower", "same", "noisy", "not timed"
VERDICTS = (FASTER, SLOWER, SAME, NOISY, NOT_TIMED)

# Which of a record's times a comparison reads: device where both rows have it, else latency (a row in a
# layer is compared with the same layer's row: its times are per layer).


@dataclass(frozen=True)
class RowComparison:
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
    context: str = "none"  # the producer each GEMM ran after (`--context`); "none": alone


@dataclass(frozen=True)
class Comparison:
    base_provenance: Provenance
    new_provenance: Provenance
    rows: list[RowComparison]
    only_base: list[Record]
    only_new: list[Record]
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
        """The rows the base run timed that the new run did not: each with the new run's row (an error or
        a skip, with its reason), or None where the new run has no such row."""
        lost = [(r.base, r.new) for r in self.rows if r.base.status == OK and r.new.status != OK]
        return lost + [(record, None) for record in self.only_base if record.status == OK]


def _key(record: Record, by_device: bool) -> tuple:
    """A row's identity across runs: its case, backend, context and, where both runs are fleets of several
    devices, its device (a torchrun run of one rank compares with a plain run of the same GPU)."""
    identity = (record.model, record.gemm, record.m, record.n, record.k, record.in_dtype, record.out_dtype)
    return (*identity, record.label, record.context, record.device_id if by_device else None)


def _devices(run: Run) -> int:
    return len({r.device_id for r in run.records if r.device_id})


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


def compare_groups(base: Run, new: Run, tolerance: float = SAME_TOLERANCE) -> list[GroupComparison]:
    """The group rows both runs hold, by parallel device time."""
    key = lambda r: (r.model, r.group, r.m, r.backend, r.context)  # noqa: E731
    new_rows = {key(r): r for r in new.groups}
    rows = []
    for old in base.groups:
        other = new_rows.get(key(old))
        if other is None:
            continue
        if old.status != OK or other.status != OK or not old.parallel_device or not other.parallel_device:
            rows.append(GroupComparison(old, other, None, NOT_TIMED))
            continue
        ratio = other.parallel_device.median_us / old.parallel_device.median_us
        intervals = [r.parallel_device.interval_us for r in (old, other)]
        flagged = any(r.noisy or r.throttled for r in (old, other))
        rows.append(GroupComparison(old, other, ratio, judge(ratio, *intervals, flagged, tolerance)))
    return rows


def run_conditions(run: Run) -> RunConditions:
    timed = [r for r in run.records if r.status == OK]
    timers = sorted({summary.timer for r in timed for summary in (r.latency, r.device) if summary})
    device_type = run.provenance.device_type
    if device_type is None:  # a CSV export carries no provenance: the timers tell, where they are real
        device_type = "cpu" if HOST_TIMER in timers else "cuda" if {GRAPH_TIMER, EVENTS_TIMER} & set(timers) else None
    l2_modes = tuple(sorted({r.l2_mode for r in timed if r.l2_mode}))
    return RunConditions(device_type, l2_modes, tuple(timers), _contexts(run))


def _contexts(run: Run) -> str:
    """The producers a run timed its layers after, in a canonical order (the order given on the command line
    does not matter): as its provenance names them, else (a CSV export) as its rows do; "none" for neither."""
    named = run.provenance.context
    contexts = set(named.split(",")) - {"none"} if named else {r.context for r in run.records if r.context}
    return ",".join(sorted(contexts)) or "none"


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
    by_device = _devices(base) > 1 and _devices(new) > 1
    base_rows = {_key(r, by_device): r for r in base.records}
    new_rows = {_key(r, by_device): r for r in new.records}
    rows = [compare_row(base_rows[k], new_rows[k], tolerance) for k in base_rows if k in new_rows]
    return Comparison(
        base.provenance,
        new.provenance,
        rows,
        only_base=[r for k, r in base_rows.items() if k not in new_rows],
        only_new=[r for k, r in new_rows.items() if k not in base_rows],
        base_conditions=run_conditions(base),
        new_conditions=run_conditions(new),
    )
