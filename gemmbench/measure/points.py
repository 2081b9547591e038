"""Measuring the points of a sweep, in two passes that never print.

`measure_cases`: for each case, inputs and a float64 reference; each backend tuned (measure/tuning.py);
each row's output checked against the reference (a row: a backend variant, alone or after a producer in
its layer); then every row of the case timed in the same rounds (measure/layers.py), its clock watch and
routing check. One Record per (case, context, backend variant: PDL off and on where the backend can
launch with it), skips and errors included.

`profile_records`: the kernel pass, after every point is timed. torch.profiler leaves a cost behind in
the process (docs/design.md, what was measured: eager +11-16%, graph +1.4%), so no timer runs after it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch

from gemmbench.backends import Backend, GemmInputs
from gemmbench.backends.producers import Producer
from gemmbench.errors import BACKEND_FAILURES
from gemmbench.measure import routing
from gemmbench.measure.bench import (
    Bench,
    Variant,
    error_reason,
    ignore,
    is_allocation_failure,
    load_backends,
    unrun_status,
    variants,
)
from gemmbench.measure.layers import (
    LayerWork,
    Timed,
    Unit,
    after_producer,
    produced,
    producer_calls,
    producer_problem,
)
from gemmbench.measure.routing_data import RoutingData
from gemmbench.measure.tuning import compile_ahead, tune_for_case
from gemmbench.records import ERROR, OK, ClockSummary, Record, after_context
from gemmbench.records.flags import WRONG_RESULT_REL_ERR
from gemmbench.spec.cases import Case
from gemmbench.timing import profile
from gemmbench.timing.inputs import (
    INPUTS_CONTRACT,
    OUT_CONTRACT,
    Placements,
    make_inputs,
    placed_copies,
    reference,
    relative_error,
    rotating,
    unwritten,
    written_into,
)


def measure_cases(
    cases: list[Case],
    backends: list[Backend],
    bench: Bench,
    note: Callable[[str], None] = ignore,
    producers: tuple[Producer, ...] = (),
) -> Iterator[Record]:
    """One record per (case, context, backend variant), in case order, then alone followed by each of
    `producers` (the contexts: the GEMM timed in a layer after the producer that writes its input,
    measure/layers.py), then variant order (a backend that can launch with PDL twice: off, then on); after
    loading the backends. No profiler runs here; `note` is told what is about to take a while (a build, a
    tuning)."""
    device = bench.device
    load_backends([*backends, *producers], device, note)
    compile_ahead(backends, cases, device)
    rows = variants(backends)
    contexts = (None, *producers)
    for case in cases:
        reasons = {(v, p): _unavailable(v, p, case, device) for v in rows for p in contexts}
        runnable = [key for key, reason in reasons.items() if reason is None]
        if runnable:
            bench.warm_device()
        measured = _measure_case(case, runnable, bench, note) if runnable else {}
        for producer in contexts:
            for variant in rows:
                reason = reasons[variant, producer]
                if reason is None:
                    yield measured[variant, producer]
                else:
                    status = unrun_status(reason)
                    beyond = variant.backend.beyond_range(case) or None
                    yield _row(case, variant, producer, status, reason, out_of_range=beyond)
        bench.release()


def _row(case: Case, variant: Variant, producer: Producer | None, status: str, reason: str = "", **results) -> Record:
    """A record of one variant at `case`, alone or in the layer after `producer`."""
    context = producer.name if producer else None
    return Record.for_case(case, variant.name, status, reason, pdl=variant.pdl, context=context, **results)


def _unavailable(variant: Variant, producer: Producer | None, case: Case, device: torch.device) -> str | None:
    """Why the variant cannot run `case` here (or its producer cannot), or None; never raises."""
    return variant.unavailable_reason(case, device) or producer_problem(producer, case, device)


# A row's key at a point: the variant, and the producer before it (None: the GEMM alone).
RowKey = tuple[Variant, Producer | None]


@dataclass(frozen=True)
class _CaseRun:
    """What the measurement of one case shares between its rows."""

    case: Case
    bench: Bench
    # The rotating copies (cold L2), which are the layers in a context, in placements (sets allocated
    # apart, the same values); the first set's first copy is the one the rows are checked on.
    placements: Placements[list[GemmInputs]]
    # The first copy's x and w as made, to find a backend that writes into its inputs (and undo it, so
    # that the backends after it are checked on what they should read).
    pristine: GemmInputs
    # Each backend's routing fidelity here, by name: a backend launched with PDL computes the same bits
    # (tests/test_gpu.py), so its two variants share one routing check.
    fidelity_of: dict[str, routing.Fidelity] = field(default_factory=dict)
    # Each producer's call per layer, writing that copy's x, per placement.
    producer_calls: dict[tuple[Producer, int], list[Callable[[], torch.Tensor]]] = field(default_factory=dict)

    @property
    def inputs(self) -> list[GemmInputs]:
        """The first placement's copies: the correctness check's."""
        return self.placements.first

    @property
    def copies(self) -> int:
        return len(self.inputs)

    def restore_inputs(self, alone: bool) -> list[str]:
        """The inputs of the first copy that were written into since it was made ('x', 'w'), restored.
        In a layer x is the producer's to write: only w is checked there."""
        first, pristine = self.inputs[0], self.pristine
        written = written_into(first, pristine, ("x", "w") if alone else ("w",))
        for name in written:
            getattr(first, name).copy_(getattr(pristine, name))
        return written

    @functools.cached_property
    def routing(self) -> routing.RoutingCheck:
        """The case's routing check, made at its first router row."""
        case, device, options = self.case, self.bench.device, self.bench.options
        data = options.routing_data
        inputs = data.inputs_for(case, routing.ROUTING_TOKENS, device, options.seed) if data else None
        return routing.RoutingCheck.for_case(case, device, options.seed, inputs)

    def produce(self, producer: Producer, placement: int = 0) -> list[Callable[[], torch.Tensor]]:
        """The producer's call of each layer of a placement, writing that copy's x; made once per case,
        producer and placement."""
        if (producer, placement) not in self.producer_calls:
            xs = [inputs.x for inputs in self.placements.sets[placement]]
            made = producer_calls(self.case, producer, xs, self.bench.options.seed)
            self.producer_calls[producer, placement] = made
        return self.producer_calls[producer, placement]

    def layers(self, key: RowKey, placement: int = 0) -> tuple[Callable[[], object], list[Callable[[], object]]]:
        """The row's call over the rotating layers of a placement (the GEMM alone, or the producer then the
        GEMM), and the GEMM of each layer as prepared on its copy's buffers."""
        (variant, producer), case = key, self.case
        copies = self.placements.sets[placement]
        gemms = [variant.prepare(case, inputs) for inputs in copies]
        if producer is None:
            return rotating(gemms), gemms
        layers = [
            after_producer(make, inputs.x, gemm, lambda x, i=inputs: variant.prepare(case, GemmInputs(x, i.w, i.out)))
            for make, inputs, gemm in zip(self.produce(producer, placement), copies, gemms, strict=True)
        ]
        return rotating(layers), gemms

    def units(self, key: RowKey, first: Callable[[], object]) -> list[Unit]:
        """The row's unit in every placement: `first` (the checked call) in the first."""
        others = [self.layers(key, placement)[0] for placement in range(1, len(self.placements.sets))]
        work = LayerWork(((self.case,),), key[1])
        return [Unit(call, self.copies, work) for call in (first, *others)]

    def row(self, key: RowKey, status: str, reason: str = "", **results) -> Record:
        return _row(self.case, *key, status, reason, **results)

    def error(self, key: RowKey, exc: BaseException) -> Record:
        return self.row(key, ERROR, error_reason(exc))


def _measure_case(case: Case, keys: list[RowKey], bench: Bench, note: Callable[[str], None]) -> dict[RowKey, Record]:
    """Every runnable row of one case: its backend tuned, then checked and timed; failures are error rows."""
    try:
        options = bench.options
        make = options.routing_data.gemm_inputs if options.routing_data else make_inputs
        placements = placed_copies(case, bench.device, options.seed, bench.cold, options.placements, make)
        first = placements.first[0]
        ref = reference(first)
        pristine = GemmInputs(first.x.clone(), first.w.clone(), first.out)
    except BACKEND_FAILURES as exc:  # inputs that cannot be made are a row per backend, never a traceback
        bench.release()
        reason = error_reason(exc)
        if is_allocation_failure(exc):
            known = f": {exc}" if isinstance(exc, MemoryError) and str(exc) else ""
            reason = f"out of memory (inputs and float64 reference){known}"
        return {key: _row(case, *key, ERROR, reason) for key in keys}
    run = _CaseRun(case, bench, placements, pristine)
    failed = tune_for_case(list(dict.fromkeys(v.backend for v, _ in keys)), case, first, bench, note)
    done = {key: run.row(key, ERROR, failed[key[0].backend]) for key in keys if key[0].backend in failed}
    checked: dict[RowKey, tuple[Callable[[], object], float]] = {}
    # Rows alone first: a producer writes the copies' x in place, after which `ref` no longer holds for them.
    for key in sorted(keys, key=lambda key: key[1] is not None):
        if key in done:
            continue
        try:
            call, rel_err = _checked_layers(run, key, ref)
        except BACKEND_FAILURES as exc:  # any backend failure is a row, never a traceback
            done[key] = run.error(key, exc)
            continue
        if not rel_err <= WRONG_RESULT_REL_ERR:  # also catches NaN
            after = after_context(key[1].name if key[1] else None)
            done[key] = run.row(key, ERROR, f"wrong result{after}: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}")
        elif not bench.options.time_calls:
            done[key] = run.row(key, OK, rel_err=rel_err)
        else:
            checked[key] = call, rel_err
    del ref
    done.update(_time_case(run, checked))
    return {key: done[key] for key in keys}


class InputWritten(Exception):
    """A backend wrote into x or w: its row is an error row naming it, never the next backends' failure."""


class OutputNotWritten(Exception):
    """A backend's call left its output buffer as it was given (NaN): it computes somewhere else, or nothing.
    Its row says so, not merely that the result is NaN."""


def _checked_layers(run: _CaseRun, key: RowKey, ref: torch.Tensor) -> tuple[Callable[[], object], float]:
    """The row's call over the rotating layers (the GEMM alone, or the producer then the GEMM), and the
    relative error of the first layer's output, written into a buffer poisoned with NaN so that an output
    that is not fully written fails; after a producer, against the reference of what the producer wrote."""
    (variant, producer), case, first = key, run.case, run.inputs[0]
    call, gemms = run.layers(key)
    first.out.fill_(math.nan)
    if producer is None:
        returned = gemms[0]()
    else:
        x = produced(producer, run.produce(producer)[0], first.x)
        written = GemmInputs(x, first.w, first.out)
        returned = (gemms[0] if x is first.x else variant.prepare(case, written))()
        ref = reference(written)
    run.bench.sync()
    if written_inputs := run.restore_inputs(alone=producer is None):
        raise InputWritten(
            f"{variant.label} wrote into its input {' and '.join(written_inputs)} (restored for the backends "
            f"after it): {INPUTS_CONTRACT}"
        )
    if left := unwritten(first.out, ref):
        instead = _returned_instead(returned, first.out)
        raise OutputNotWritten(f"{variant.label} {left}{instead}: {OUT_CONTRACT}")
    return call, relative_error(first.out, ref)


def _returned_instead(returned: object, out: torch.Tensor) -> str:
    """What a call that left `out` unwritten returned instead, where that says what went wrong."""
    if isinstance(returned, torch.Tensor) and returned is not out:
        got, wanted = (f"{tuple(t.shape)} {t.dtype}" for t in (returned, out))
        return f" (it returned a tensor of {got} instead; out is {wanted})"
    return ""


def _time_case(run: _CaseRun, checked: dict[RowKey, tuple[Callable[[], object], float]]) -> dict[RowKey, Record]:
    """Every checked row's unit timed in the same rounds (Bench.time_units), then each row's routing check
    and figures."""
    bench = run.bench
    records: dict[RowKey, Record] = {}
    units = {}
    for key, (call, _) in checked.items():
        try:  # the other placements' layers are prepared here: a backend may fail on them too
            units[key] = run.units(key, call)
        except BACKEND_FAILURES as exc:
            bench.release()
            records[key] = run.error(key, exc)
    start = bench.read_clocks()
    try:
        timed, failures = bench.time_units(units)
    except BACKEND_FAILURES as exc:  # out of memory capturing the graphs: every row of the point says so
        bench.release()
        return {key: records.get(key) or run.error(key, exc) for key in checked}
    clocks = bench.clock_summary(start, bench.read_clocks())
    for key, exc in failures.items():
        records[key] = run.error(key, exc)
    for key, (_, rel_err) in checked.items():
        if key in records:
            continue
        try:
            fidelity, routing_note = _routing(run, key[0].backend)
        except BACKEND_FAILURES as exc:  # any backend failure is a row, never a traceback
            bench.release()
            records[key] = run.error(key, exc)
            continue
        config, config_note = _configuration(key[0].backend, run.case)
        notes = (run.placements.note, timed[key].note, routing_note, config_note)
        records[key] = _timed_record(run, key, rel_err, timed[key], notes, fidelity, clocks, config)
    return records


def _timed_record(
    run: _CaseRun,
    key: RowKey,
    rel_err: float,
    timed: Timed,
    notes: tuple[str, ...],
    fidelity: routing.Fidelity | None,
    clocks: ClockSummary | None,
    config: str | None,
) -> Record:
    """An ok row. Throughput and the floor are the GEMM's: a row alone has them, a layer's does not."""
    case, bench = run.case, run.bench
    latency, device_time = timed.latency, timed.device
    values: dict = {"noisy": timed.noisy}
    if key[1] is None:
        best_us = (device_time or latency).median_us
        values["tflops"] = case.flops / best_us / 1e6  # FLOP per us = 1e6 FLOP/s; TFLOP/s = 1e12 FLOP/s
        values["gbps"] = case.bytes_moved / best_us / 1e3  # bytes per us = 1e6 B/s; GB/s = 1e9 B/s
        if bench.options.roofline is not None:
            values["floor_us"] = bench.options.roofline.floor_us(case)
            values["pct_of_floor"] = 100 * values["floor_us"] / best_us
    if fidelity is not None:
        values["topk_mismatch"] = fidelity.flips
        values["weight_l1_mean"], values["weight_l1_max"] = fidelity.weight_l1_mean, fidelity.weight_l1_max
        values["load_change"] = fidelity.load_change
        values["routing_inputs"] = (bench.options.routing_data or RoutingData()).label(case)
    if bench.options.keep_samples:
        values["latency_samples_us"] = latency.values_us
        values["latency_window_medians_us"] = latency.window_medians_us or None
        values["device_samples_us"] = device_time.values_us if device_time else None
        values["device_placement_medians_us"] = device_time.window_medians_us or None if device_time else None
    mode = bench.l2_mode
    return run.row(
        key,
        OK,
        "; ".join(n for n in notes if n),
        latency=latency.summary(),
        device=device_time.summary() if device_time else None,
        rel_err=rel_err,
        l2_mode=mode,
        l2_copies=run.copies if mode else None,
        placements=len(run.placements.sets) if device_time else None,
        backend_config=config,
        clocks=clocks,
        **values,
    )


def _configuration(backend: Backend, case: Case) -> tuple[str | None, str]:
    """The configuration the backend ran at `case`, for its row, and a note where asking for it failed (a
    plugin's bug): the row keeps its timings."""
    try:
        config = backend.configuration(case)
    except BACKEND_FAILURES as exc:
        return None, f"configuration() raised {error_reason(exc)}"
    return (None if config is None else str(config)), ""


def _routing(run: _CaseRun, backend: Backend) -> tuple[routing.Fidelity | None, str]:
    """The routing fidelity of a router row, or why there is none; never fails the row."""
    if not run.case.routed:
        return None, ""
    try:
        if backend.name not in run.fidelity_of:
            run.fidelity_of[backend.name] = run.routing.measure(backend)
        return run.fidelity_of[backend.name], ""
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
    backend launches (rows alone: in a layer, the GEMM launches what it launches alone), all in one
    profiler session; `done(n)` is told as the n-th of them (from 0) is profiled. Nothing is profiled off
    a GPU. An unavailable profiler is warned about and leaves the kernel columns
    empty; a call that fails under the profiler leaves a note on its row, which keeps its timings."""
    device = bench.device
    by_name = {b.name: b for b in backends}
    wanted = (
        [i for i, r in enumerate(records) if r.status == OK and r.backend in by_name and r.context is None]
        if device.type == "cuda"
        else []
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
        traces, failures = profile.capture_many(len(wanted), make_call, device, done)
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
