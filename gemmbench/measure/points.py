"""Measuring the points of a sweep, in two passes that never print.

`measure_cases`: for each case, inputs and a float64 reference; each backend's output checked against
it; then the eager latency of all the case's backends, sampled in windows interleaved between them (so
they are compared under the same host state), and each backend's CUDA-graph device time, clock watch
and routing check. One Record per (case, backend), skips and errors included.

`profile_records`: the kernel pass, after every point is timed. torch.profiler leaves a cost behind in
the process (docs/design.md, what was measured: eager +11-16%, graph +1.4%), so no timer runs after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from gemmbench.analysis.policy import WRONG_RESULT_REL_ERR
from gemmbench.backends import Backend, GemmInputs
from gemmbench.measure import routing
from gemmbench.measure.bench import (
    Bench,
    announce_tuning,
    error_reason,
    graph_failure_note,
    ignore,
    is_allocation_failure,
    load_backends,
)
from gemmbench.records import ERROR, OK, SKIPPED, ClockSummary, Record
from gemmbench.records.timers import SIMULATED_TIMER
from gemmbench.spec.cases import Case
from gemmbench.timing import profile
from gemmbench.timing.inputs import input_copies, make_inputs, reference, relative_error, rotating
from gemmbench.timing.timers import Samples


def measure_cases(
    cases: list[Case], backends: list[Backend], bench: Bench, note: Callable[[str], None] = ignore
) -> Iterator[Record]:
    """One record per (case, backend), in case order then backend order, after loading the backends.
    No profiler runs here; `note` is told what is about to take a while."""
    device = bench.device
    load_backends(backends, device, note)
    for case in cases:
        reasons = {b.name: b.unavailable_reason(case, device) for b in backends}
        runnable = [b for b in backends if reasons[b.name] is None]
        if any(b.real for b in runnable):
            bench.warm_device()
        announce_tuning(runnable, [case], device, note)
        measured = _measure_case(case, runnable, bench) if runnable else {}
        for backend in backends:
            reason = reasons[backend.name]
            yield measured[backend.name] if reason is None else Record.for_case(case, backend.name, SKIPPED, reason)
        bench.release()


@dataclass(frozen=True)
class _CaseRun:
    """What the measurement of one case shares between its backends."""

    case: Case
    bench: Bench
    copies: int = 1  # input copies rotated (cold L2)
    l2_note: str = ""  # where fewer copies than wanted fit

    def error(self, backend: str, exc: BaseException) -> Record:
        return Record.for_case(self.case, backend, ERROR, error_reason(exc))


def _measure_case(case: Case, backends: list[Backend], bench: Bench) -> dict[str, Record]:
    """Every runnable backend of one case, checked and timed; failures are error rows."""
    try:
        copies, l2_note = input_copies(case, bench.device, bench.options.seed, bench.cold)
        ref = reference(copies[0])
    except Exception as exc:  # noqa: BLE001 - inputs that cannot be made are a row per backend, never a traceback
        bench.release()
        reason = error_reason(exc)
        if is_allocation_failure(exc):
            known = f": {exc}" if isinstance(exc, MemoryError) and str(exc) else ""
            reason = f"out of memory (inputs and float64 reference){known}"
        return {b.name: Record.for_case(case, b.name, ERROR, reason) for b in backends}
    run = _CaseRun(case, bench, len(copies), l2_note)
    done: dict[str, Record] = {}
    checked: dict[Backend, tuple[Callable[[], object], float]] = {}
    for backend in backends:
        try:
            call, rel_err = _checked_call(case, backend, copies, ref, bench)
        except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
            done[backend.name] = run.error(backend.name, exc)
            continue
        if not rel_err <= WRONG_RESULT_REL_ERR:  # also catches NaN
            reason = f"wrong result: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}"
            done[backend.name] = Record.for_case(case, backend.name, ERROR, reason, rel_err=rel_err)
        elif not bench.options.time_calls:
            done[backend.name] = Record.for_case(case, backend.name, OK, rel_err=rel_err)
        else:
            checked[backend] = call, rel_err
    del ref
    done.update(_time_case(run, checked))
    return {b.name: done[b.name] for b in backends}


def _checked_call(
    case: Case, backend: Backend, copies: list[GemmInputs], ref: torch.Tensor, bench: Bench
) -> tuple[Callable[[], object], float]:
    """The backend's call over the rotating copies, and the relative error of its first output, written
    into a buffer poisoned with NaN so that an output that is not fully written fails."""
    calls = [backend.prepare(case, inputs) for inputs in copies]
    copies[0].out.fill_(math.nan)
    calls[0]()
    bench.sync()
    return rotating(calls), relative_error(copies[0].out, ref)


def _time_case(run: _CaseRun, checked: dict[Backend, tuple[Callable[[], object], float]]) -> dict[str, Record]:
    """Eager latency of all `checked` backends in interleaved windows, then each one's device time,
    clocks and routing check. The fake backend's times are simulated, not measured."""
    bench = run.bench
    records: dict[str, Record] = {}
    simulated = {b: b.simulated_times_us(run.case) for b in checked if b.simulated_times_us(run.case) is not None}
    calls: dict[Backend, Callable[[], object]] = {}
    for backend, (call, _) in checked.items():
        if backend in simulated:
            continue
        try:
            bench.warm_up(call)
            calls[backend] = call
        except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
            records[backend.name] = run.error(backend.name, exc)
    start = bench.read_clocks()
    latencies, failures = bench.eager_latency(calls)
    for backend, exc in failures.items():
        records[backend.name] = run.error(backend.name, exc)
    for backend, (call, rel_err) in checked.items():
        if backend.name in records:
            continue
        try:
            if backend in simulated:
                latency_us, device_us = simulated[backend]
                latency, device_time = Samples(SIMULATED_TIMER, (latency_us,)), Samples(SIMULATED_TIMER, (device_us,))
                timer_note = ""
            else:
                latency = latencies[backend]
                device_time, timer_note = _device_time(run, call, latency)
            clocks = bench.clock_summary(start, bench.read_clocks())
            mismatch, routing_note = _routing(run.case, backend, bench)
        except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
            bench.release()
            records[backend.name] = run.error(backend.name, exc)
            continue
        notes = (run.l2_note, timer_note, routing_note)
        records[backend.name] = _timed_record(run, backend, rel_err, latency, device_time, notes, mismatch, clocks)
    return records


def _device_time(run: _CaseRun, call: Callable[[], object], latency: Samples) -> tuple[Samples | None, str]:
    """CUDA-graph device time (None on the CPU), and a note where the call cannot be captured."""
    if run.bench.device.type != "cuda":
        return None, ""
    try:
        return run.bench.device_time(call, latency.min_us, run.copies), ""
    except RuntimeError as exc:  # a call that cannot be captured still has its eager latency
        if is_allocation_failure(exc):
            raise
        return None, graph_failure_note(exc)


def _timed_record(
    run: _CaseRun,
    backend: Backend,
    rel_err: float,
    latency: Samples,
    device_time: Samples | None,
    notes: tuple[str, ...],
    mismatch: float | None,
    clocks: ClockSummary | None,
) -> Record:
    case, bench = run.case, run.bench
    best_us = (device_time or latency).median_us
    values: dict = {
        "noisy": any(s.noisy for s in (latency, device_time) if s is not None),
        "tflops": case.flops / best_us / 1e6,  # FLOP per us = 1e6 FLOP/s; TFLOP/s = 1e12 FLOP/s
        "gbps": case.bytes_moved / best_us / 1e3,  # bytes per us = 1e6 B/s; GB/s = 1e9 B/s
    }
    if mismatch is not None:
        values["topk_mismatch"] = mismatch
    if bench.options.roofline is not None:
        values["floor_us"] = bench.options.roofline.floor_us(case)
        values["pct_of_floor"] = 100 * values["floor_us"] / best_us
    mode = bench.l2_mode
    return Record.for_case(
        case,
        backend.name,
        OK,
        "; ".join(n for n in notes if n),
        latency=latency.summary(),
        device=device_time.summary() if device_time else None,
        rel_err=rel_err,
        l2_mode=mode,
        l2_copies=run.copies if mode else None,
        backend_config=backend.configuration(case),
        clocks=clocks,
        **values,
    )


def _routing(case: Case, backend: Backend, bench: Bench) -> tuple[float | None, str]:
    """The top-k mismatch of a router row, or why there is none; never fails the row."""
    if not routing.applies(case):
        return None, ""
    try:
        return routing.topk_mismatch(backend, case, bench.device, bench.options.seed), ""
    except Exception as exc:  # noqa: BLE001 - a failed routing check leaves the row its timings
        if not is_allocation_failure(exc):
            raise
        bench.release()
        return None, "routing check: out of memory"


def profile_records(
    records: list[Record],
    backends: list[Backend],
    bench: Bench,
    warn: Callable[[str], None] = ignore,
    done: Callable[[int], None] = ignore,
) -> list[Record]:
    """The kernel pass, to run after all timing: `records` with the kernels one call of each ok row's
    backend launches, all in one profiler session; `done(index)` is told as each row is profiled.
    Nothing is profiled off a GPU. An unavailable profiler is warned about and leaves the kernel columns
    empty; a call that fails under the profiler leaves a note on its row, which keeps its timings."""
    device = bench.device
    by_name = {b.name: b for b in backends}
    wanted = (
        [i for i, r in enumerate(records) if r.status == OK and r.backend in by_name] if device.type == "cuda" else []
    )
    inputs_of: dict[Case, GemmInputs] = {}  # one set of inputs, for the case in hand

    def make_call(key: int) -> Callable[[], object]:
        record = records[wanted[key]]
        if record.case not in inputs_of:
            inputs_of.clear()
            bench.release()
            inputs_of[record.case] = make_inputs(record.case, device, bench.options.seed)
        return by_name[record.backend].prepare(record.case, inputs_of[record.case])

    try:
        traces, failures = profile.capture_many(len(wanted), make_call, device, lambda key: done(wanted[key]))
    except profile.ProfilerUnavailable as exc:
        warn(f"kernel names not recorded: {exc}; the kernel columns stay empty")
        return records
    finally:
        inputs_of.clear()
        bench.release()
    profiled = list(records)
    for key, index in enumerate(wanted):
        record = records[index]
        if key in traces:
            kernels = traces[key].kernels
            profiled[index] = replace(
                record, kernels=kernels, kernel_count=len(kernels), kernel_sum_us=traces[key].sum_us
            )
        else:
            note = f"kernel pass: {error_reason(failures[key])}"
            profiled[index] = replace(record, reason="; ".join(n for n in (record.reason, note) if n))
    return profiled
