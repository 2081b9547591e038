"""What was measured: `Record` (one row per case and backend), `GroupRecord` (one per group, M and backend),
the summaries they carry (`TimerSummary`, `ClockSummary`, `KernelRun`), the statuses, the columns derived
from them (schema.py), a run's `Provenance` (provenance.py), the run file (runfile.py) and its CSV and
DataFrame forms (table.py).

Plain data: no torch (pandas only where a frame is built). Imports `spec` and `errors` only.
"""

from gemmbench.records.group import GroupRecord, MemberTime
from gemmbench.records.provenance import Provenance
from gemmbench.records.record import (
    ERROR,
    OK,
    SKIPPED,
    STATUSES,
    ClockSummary,
    KernelRun,
    Record,
    after_context,
    by_case,
    by_shape,
    grouped,
    in_range,
    select_records,
)
from gemmbench.records.runfile import Run, load_run
from gemmbench.records.timers import TimerSummary

__all__ = [
    "after_context",
    "ERROR",
    "OK",
    "SKIPPED",
    "STATUSES",
    "ClockSummary",
    "GroupRecord",
    "KernelRun",
    "MemberTime",
    "Provenance",
    "Record",
    "Run",
    "TimerSummary",
    "by_case",
    "by_shape",
    "grouped",
    "in_range",
    "load_run",
    "select_records",
]
