"""Measuring the points of a sweep, in two passes that never print.

`measure_cases`: for each case, inputs and a float64 reference; each backend's output checked against
it; then the eager latency of all the case's backends, sampled in windows interleaved between them (so
they are compared under the same host state), and each backend's CUDA-graph device time, clock watch,
routing check and, in a context (`--context`), its figures in the layer (context.py). One Record per
(case, backend variant: PDL off and on where the backend can launch with it), skips and errors included.

`profile_records`: the kernel pass, after every point is timed. torch.profiler leaves a cost behind in
the process (docs/design.md, what was measured: eager +11-16%, graph +1.4%), so no timer runs after it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch

from gemmbench.analysis.policy import WRONG_RESULT_REL_ERR
from gemmbench.backends import Backend, GemmInputs
from gemmbench.backends.producers import Producer
from gemmbench.backends.registry import QUERY_FAILED, query_failure
from gemmbench.errors import BACKEND_FAILURES
from gemmbench.measure import routing
from gemmbench.measure.bench import (
    Bench,
    Variant,
    announce_tuning,
    error_reason,
    graph_failure_note,
    ignore,
    is_allocation_failure,
    load_backends,
    variants,
)
from gemmbench.measure.context import CHAIN, Chain, ProducerLayers, producer_layers, producer_problem
from gemmbench.records import ERROR, OK, SKIPPED, ClockSummary, Record, TimerSummary
from gemmbench.records.timers import SIMULATED_TIMER
from gemmbench.spec.cases import Case
from gemmbench.timing import profile
from gemmbench.timing.inputs import input_copies, make_inputs, reference, relative_error, rotating
from gemmbench.timing.timers import Samples


def measure_cases(
    cases: list[Case],
    backends: list[Backend],
    bench: Bench,
    note: Callable[[str], None] = ignore,
    producer: Producer | None = None,
) -> Iterator[Record]:
    """One record per (case, backend variant), in case order then variant order (a backend that can launch
    with PDL twice: off, then on), after loading the backends; with a `producer`, each row also carries the
    GEMM's figures after it (measure/context.py). No profiler runs here; `note` is told what is about to
    take a while."""
    device = bench.device
    load_backends([*backends, *([producer] if producer else [])], device, note)
    rows = variants(backends)
    for case in cases:
        reasons = {v: _unavailable(v, producer, case, device) for v in rows}
        runnable = [v for v in rows if reasons[v] is None]
        if any(v.backend.real for v in runnable):
            bench.warm_device()
        announce_tuning(list(dict.fromkeys(v.backend for v in runnable)), [case], device, note)
        measured = _measure_case(case, runnable, bench, producer) if runnable else {}
        for variant in rows:
            reason = reasons[variant]
            if reason is None:
                yield measured[variant]
            else:
                yield _row(case, variant, producer, ERROR if reason.startswith(QUERY_FAILED) else SKIPPED, reason)
        bench.release()


def _unavailable(variant: Variant, producer: Producer | None, case: Case, device: torch.device) -> str | None:
    """Why the variant cannot run `case` here (or its producer cannot), or None."""
    try:
        return variant.unavailable_reason(case, device) or producer_problem(producer, case, device)
    except BACKEND_FAILURES as exc:
        return query_failure(exc)


def _row(case: Case, variant: Variant, producer: Producer | None, status: str, reason: str = "", **results) -> Record:
    """A record of one variant at `case`, in the session's context."""
    context = producer.name if producer else None
    return Record.for_case(case, variant.name, status, reason, pdl=variant.pdl, context=context, **results)


@dataclass(frozen=True)
class _CaseRun:
    """What the measurement of one case shares between its backends."""

    case: Case
    bench: Bench
    producer: Producer | None
    inputs: list[GemmInputs]  # the rotating copies (cold L2): in context, the layers
    l2_note: str = ""  # where fewer copies than wanted fit
    # Each backend's top-k mismatch here, by name: a backend launched with PDL computes the same bits
    # (tests/test_gpu.py), so its two variants share one routing check.
    mismatch_of: dict[str, float] = field(default_factory=dict)

    @property
    def copies(self) -> int:
        return len(self.inputs)

    @functools.cached_property
    def routing(self) -> routing.RoutingCheck:
        """The case's routing check, made at its first router row."""
        return routing.RoutingCheck.for_case(self.case, self.bench.device, self.bench.options.seed)

    @functools.cached_property
    def producers(self) -> ProducerLayers:
        """In a context: the producer's layers, writing the copies' x, shared by the case's variants."""
        case, bench = self.case, self.bench
        layers = producer_layers(case, bench.device, bench.cold)
        return ProducerLayers(case, self.producer, [i.x for i in self.inputs], layers, bench.options.seed)

    def row(self, variant: Variant, status: str, reason: str = "", **results) -> Record:
        return _row(self.case, variant, self.producer, status, reason, **results)

    def error(self, variant: Variant, exc: BaseException) -> Record:
        return self.row(variant, ERROR, error_reason(exc))


def _measure_case(
    case: Case, variants_here: list[Variant], bench: Bench, producer: Producer | None
) -> dict[Variant, Record]:
    """Every runnable variant of one case, checked and timed; failures are error rows."""
    try:
        copies, l2_note = input_copies(case, bench.device, bench.options.seed, bench.cold)
        ref = reference(copies[0])
    except BACKEND_FAILURES as exc:  # inputs that cannot be made are a row per backend, never a traceback
        bench.release()
        reason = error_reason(exc)
        if is_allocation_failure(exc):
            known = f": {exc}" if isinstance(exc, MemoryError) and str(exc) else ""
            reason = f"out of memory (inputs and float64 reference){known}"
        return {v: _row(case, v, producer, ERROR, reason) for v in variants_here}
    run = _CaseRun(case, bench, producer, copies, l2_note)
    done: dict[Variant, Record] = {}
    checked: dict[Variant, tuple[Callable[[], object], float]] = {}
    for variant in variants_here:
        try:
            call, rel_err = _checked_call(case, variant, copies, ref, bench)
        except BACKEND_FAILURES as exc:  # any backend failure is a row, never a traceback
            done[variant] = run.error(variant, exc)
            continue
        if not rel_err <= WRONG_RESULT_REL_ERR:  # also catches NaN
            reason = f"wrong result: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}"
            done[variant] = run.row(variant, ERROR, reason, rel_err=rel_err)
        elif not bench.options.time_calls:
            done[variant] = run.row(variant, OK, rel_err=rel_err)
        else:
            checked[variant] = call, rel_err
    del ref
    done.update(_time_case(run, checked))
    return {v: done[v] for v in variants_here}


def _checked_call(
    case: Case, variant: Variant, copies: list[GemmInputs], ref: torch.Tensor, bench: Bench
) -> tuple[Callable[[], object], float]:
    """The variant's call over the rotating copies, and the relative error of its first output, written
    into a buffer poisoned with NaN so that an output that is not fully written fails."""
    calls = [variant.prepare(case, inputs) for inputs in copies]
    copies[0].out.fill_(math.nan)
    calls[0]()
    bench.sync()
    return rotating(calls), relative_error(copies[0].out, ref)


def _time_case(run: _CaseRun, checked: dict[Variant, tuple[Callable[[], object], float]]) -> dict[Variant, Record]:
    """Eager latency of all `checked` variants in interleaved windows, then each one's device time, clocks,
    routing check and (in a context) its figures in the layer. The fake backend's times are simulated."""
    bench = run.bench
    records: dict[Variant, Record] = {}
    simulated = {v: times for v in checked if (times := v.backend.simulated_times_us(run.case)) is not None}
    calls: dict[Variant, Callable[[], object]] = {}
    for variant, (call, _) in checked.items():
        if variant in simulated:
            continue
        try:
            bench.warm_up(call)
            calls[variant] = call
        except BACKEND_FAILURES as exc:  # any backend failure is a row, never a traceback
            records[variant] = run.error(variant, exc)
    # The clock watch of a row covers its own timers: the eager windows (shared by the point's backends,
    # interleaved) and its own device time, not the device times of the backends timed before it.
    eager_start = bench.read_clocks()
    latencies, failures = bench.eager_latency(calls)
    eager_end = bench.read_clocks()
    for variant, exc in failures.items():
        records[variant] = run.error(variant, exc)
    for variant, (call, rel_err) in checked.items():
        if variant in records:
            continue
        try:
            device_start = bench.read_clocks()
            if variant in simulated:
                latency_us, device_us = simulated[variant]
                latency, device_time = Samples(SIMULATED_TIMER, (latency_us,)), Samples(SIMULATED_TIMER, (device_us,))
                timer_note = ""
            else:
                latency = latencies[variant]
                device_time, timer_note = _device_time(run, call, latency)
            in_context = _in_context(run, variant, variant in simulated) if run.producer else {}
            clocks = bench.clock_summary(eager_start, eager_end, device_start, bench.read_clocks())
            mismatch, routing_note = _routing(run, variant.backend)
        except BACKEND_FAILURES as exc:  # any backend failure is a row, never a traceback
            bench.release()
            records[variant] = run.error(variant, exc)
            continue
        if "reason" in in_context:  # wrong in context: an error row, with the figures it has
            records[variant] = run.row(variant, ERROR, in_context["reason"], rel_err=rel_err)
            continue
        notes = (run.l2_note, timer_note, routing_note)
        records[variant] = _timed_record(
            run, variant, rel_err, latency, device_time, notes, mismatch, clocks, in_context
        )
    return records


def _in_context(run: _CaseRun, variant: Variant, simulated: bool) -> dict:
    """The variant's figures after the session's producer, as record fields; `reason` where its output is
    wrong on what the producer wrote."""
    if simulated:
        producer_latency, producer_device, added = variant.backend.simulated_context_us(run.case)
        latency_us, device_us = variant.backend.simulated_times_us(run.case)
        summary = functools.partial(TimerSummary, SIMULATED_TIMER)
        return {
            "producer_latency": summary(producer_latency),
            "producer_device": summary(producer_device),
            "context_latency": summary(latency_us + added),
            "context_device": summary(device_us + added),
        }
    chain = Chain(run.producers, run.inputs, lambda inputs: variant.prepare(run.case, inputs))
    rel_err = chain.checked()
    if not rel_err <= WRONG_RESULT_REL_ERR:
        return {"reason": f"wrong result after {run.producer.name}: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}"}
    times = chain.time(run.bench)
    return {
        "producer_device": times.producer_device,
        "producer_latency": times.producer_latency,
        "context_device": times.device[CHAIN],
        "context_latency": times.latency[CHAIN],
        "noisy_in_context": times.noisy,
    }


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
    variant: Variant,
    rel_err: float,
    latency: Samples,
    device_time: Samples | None,
    notes: tuple[str, ...],
    mismatch: float | None,
    clocks: ClockSummary | None,
    in_context: dict,
) -> Record:
    case, bench = run.case, run.bench
    best_us = (device_time or latency).median_us
    noisy_in_context = in_context.pop("noisy_in_context", False)
    values: dict = {
        "noisy": noisy_in_context or any(s.noisy for s in (latency, device_time) if s is not None),
        "tflops": case.flops / best_us / 1e6,  # FLOP per us = 1e6 FLOP/s; TFLOP/s = 1e12 FLOP/s
        "gbps": case.bytes_moved / best_us / 1e3,  # bytes per us = 1e6 B/s; GB/s = 1e9 B/s
    }
    if mismatch is not None:
        values["topk_mismatch"] = mismatch
    if bench.options.keep_samples:
        values["latency_samples_us"] = latency.values_us
        values["device_samples_us"] = device_time.values_us if device_time else None
    if bench.options.roofline is not None:
        values["floor_us"] = bench.options.roofline.floor_us(case)
        values["pct_of_floor"] = 100 * values["floor_us"] / best_us
    mode = bench.l2_mode
    return run.row(
        variant,
        OK,
        "; ".join(n for n in notes if n),
        latency=latency.summary(),
        device=device_time.summary() if device_time else None,
        rel_err=rel_err,
        l2_mode=mode,
        l2_copies=run.copies if mode else None,
        backend_config=variant.backend.configuration(case),
        clocks=clocks,
        **in_context,
        **values,
    )


def _routing(run: _CaseRun, backend: Backend) -> tuple[float | None, str]:
    """The top-k mismatch of a router row, or why there is none; never fails the row."""
    if not routing.applies(run.case):
        return None, ""
    try:
        if backend.name not in run.mismatch_of:
            run.mismatch_of[backend.name] = run.routing.mismatch(backend)
        return run.mismatch_of[backend.name], ""
    except Exception as exc:  # noqa: BLE001 - a failed routing check leaves the row its timings
        if not is_allocation_failure(exc):
            raise
        run.bench.release()
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
        return Variant(by_name[record.backend], record.pdl).prepare(record.case, inputs_of[record.case])

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
