"""Per group: up to which M the auxiliary streams pay, and with which backend for the light GEMMs
(`gemmbench recommend` on a `gemmbench group` run).

At each M, the choice is the qualifying backend (status ok, light members within the tolerance) with the
fastest parallel time, ties within the run-to-run spread going to the preferred backend (recommend.py).
The streams pay at that M when the choice's parallel time beats its serial time by more than that spread.
In a run timed in the layer (`group --context`), the times are those after the producer.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemmbench.analysis.policy import FP32_ACCURATE_REL_ERR, SAME_TOLERANCE, accurate, tied_by_preference
from gemmbench.records import GroupRecord, grouped
from gemmbench.records.timers import median_of


@dataclass(frozen=True)
class GroupChoice:
    m: int
    backend: str
    parallel_us: float
    serial_us: float
    speedup: float
    streams_pay: bool


@dataclass(frozen=True)
class GroupAdvice:
    model: str
    group: str
    choices: list[GroupChoice]
    context: str | None = None  # the producer the times were measured after; None: the group alone

    @property
    def streams_pay_up_to(self) -> int | None:
        """The largest M up to which (from the smallest measured M on) parallel beats serial; None if it
        does not at the smallest."""
        last = None
        for choice in self.choices:
            if not choice.streams_pay:
                break
            last = choice.m
        return last

    @property
    def streams_also_pay_at(self) -> list[int]:
        """The M values past `streams_pay_up_to` (beyond the first M where they do not) where they pay again."""
        up_to = self.streams_pay_up_to
        return [c.m for c in self.choices if c.streams_pay and (up_to is None or c.m > up_to)]


def times_us(record: GroupRecord) -> tuple[float | None, float | None]:
    """(parallel, serial) device times the advice reads (per layer, producer included, in a layer view)."""
    return median_of(record.parallel_device), median_of(record.serial_device)


def _qualifies(record: GroupRecord, tolerance: float) -> bool:
    parallel, serial = times_us(record)
    timed = parallel is not None and parallel > 0 and serial is not None
    return accurate(record.status, record.rel_err, tolerance) and timed


def advise(records: list[GroupRecord], tolerance: float = FP32_ACCURATE_REL_ERR) -> list[GroupAdvice]:
    advice = []
    for (model, name, context), group in grouped(records, lambda r: (r.model, r.group, r.context)).items():
        choices = []
        for m in sorted({r.m for r in group}):
            candidates = [r for r in group if r.m == m and _qualifies(r, tolerance)]
            tied = tied_by_preference(candidates, lambda r: times_us(r)[0], lambda r: r.backend)
            if not tied:
                continue
            parallel, serial = times_us(best := tied[0])
            speedup = serial / parallel
            choices.append(GroupChoice(m, best.backend, parallel, serial, speedup, speedup > 1 + SAME_TOLERANCE))
        advice.append(GroupAdvice(model, name, choices, context))
    return advice
