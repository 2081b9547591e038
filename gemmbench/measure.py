"""Measuring points, in two passes that never print.

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
from dataclasses import dataclass, field, replace

import torch

from gemmbench import ext, profile, routing, timing
from gemmbench.backends import Backend, GemmInputs
from gemmbench.clocks import ClockReading, ClockWatch, assess, warm_device
from gemmbench.inputs import COLD, input_copies, l2_mode, make_inputs, reference, relative_error, rotating
from gemmbench.records import ERROR, OK, SKIPPED, WRONG_RESULT_REL_ERR, Record
from gemmbench.roofline import Roofline
from gemmbench.shapes import Case
from gemmbench.summary import EVENTS_TIMER, HOST_TIMER, SIMULATED_TIMER
from gemmbench.timing import Samples

# Per point and backend: calls before timing, so caches, clocks and lazy initialisation settle
# (docs/design.md, measurement rules).
POINT_WARMUP_S = 0.02
# An error row keeps the first line of the exception's message, cut to this many characters.
MAX_ERROR_CHARS = 300
# A graph-timer failure is a note on a row that keeps its eager latency; its message is cut to this.
MAX_NOTE_CHARS = 200


@dataclass(frozen=True)
class SweepOptions:
    warmup_s: float = POINT_WARMUP_S
    target: timing.Target = field(default_factory=timing.Target)  # the device-time timer's stopping rule
    eager_windows: int = timing.EAGER_WINDOWS
    eager_window_s: float = timing.EAGER_WINDOW_S
    l2: str = COLD  # "cold": rotate input copies past the L2; "hot": one set of buffers
    seed: int = 0
    time_calls: bool = True  # False: check and profile only (`gemmbench kernels`)
    capture_kernels: bool = True  # a torch.profiler pass per point, after every point is timed
    roofline: Roofline | None = None  # measured device limits; gives each row its floor


def _ignore(message: str) -> None:
    return None


def load_backends(backends: list[Backend], device: torch.device, note: Callable[[str], None] = _ignore) -> None:
    """Build and load what the backends need (the cuBLAS extension), once per process, saying so through
    `note` first where that means a build. A failure is not raised: the backends' availability query
    reports it from then on, so their rows are skipped rows with the reason."""
    if device.type == "cuda" and any(b.needs_extension for b in backends):
        if ext.needs_build():
            note(f"building the cuBLAS extension into {ext.library_path().parent} (first use; about a minute)…")
        ext.ensure_loaded()


def announce_tuning(
    backends: list[Backend], cases: list[Case], device: torch.device, note: Callable[[str], None]
) -> None:
    """Say through `note` what the backends will tune before they run `cases` (a tuned kernel's first use)."""
    for backend in backends:
        for case in cases:
            if tuning := backend.tuning_note(case, device):
                note(tuning)


def is_allocation_failure(exc: BaseException) -> bool:
    """Out of device memory, or (on the CPU) an allocation the host cannot satisfy."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def error_reason(exc: BaseException) -> str:
    """An error row's reason: the exception's type and the first line of its message."""
    if is_allocation_failure(exc):
        return "out of memory"
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {message}"[:MAX_ERROR_CHARS]


def measure_cases(
    cases: list[Case],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions = SweepOptions(),
    warn: Callable[[str], None] = _ignore,
    note: Callable[[str], None] = _ignore,
) -> Iterator[Record]:
    """One record per (case, backend), in case order then backend order, after loading the backends.
    No profiler runs here. `warn` gets sweep-wide problems, `note` what is about to take a while."""
    load_backends(backends, device, note)
    clocks = ClockWatch(device)
    if device.type == "cuda" and clocks.unavailable and options.time_calls:
        warn(f"no clock watch: {clocks.unavailable}; the clock and throttle columns stay empty")
    device_warm = device.type != "cuda" or not options.time_calls
    for case in cases:
        reasons = {b.name: b.unavailable_reason(case, device) for b in backends}
        runnable = [b for b in backends if reasons[b.name] is None]
        if runnable and not device_warm and any(b.real for b in runnable):
            warm_device(device, clocks)
            device_warm = True
        announce_tuning(runnable, [case], device, note)
        measured = _measure_case(case, runnable, device, options, clocks) if runnable else {}
        for backend in backends:
            reason = reasons[backend.name]
            yield measured[backend.name] if reason is None else Record.for_case(case, backend.name, SKIPPED, reason)
        _release(device)


@dataclass(frozen=True)
class _CaseRun:
    """What the measurement of one case shares between its backends."""

    case: Case
    device: torch.device
    options: SweepOptions
    clocks: ClockWatch
    copies: int = 1  # input copies rotated (cold L2)
    l2_note: str = ""  # where fewer copies than wanted fit

    def error(self, backend: str, exc: BaseException) -> Record:
        return Record.for_case(self.case, backend, ERROR, error_reason(exc))


def _measure_case(
    case: Case, backends: list[Backend], device: torch.device, options: SweepOptions, clocks: ClockWatch
) -> dict[str, Record]:
    """Every runnable backend of one case, checked and timed; failures are error rows."""
    try:
        cold = options.l2 == COLD and options.time_calls
        copies, l2_note = input_copies(case, device, options.seed, cold)
        ref = reference(copies[0])
    except Exception as exc:  # noqa: BLE001 - inputs that cannot be made are a row per backend, never a traceback
        _release(device)
        reason = error_reason(exc)
        if is_allocation_failure(exc):
            known = f": {exc}" if isinstance(exc, MemoryError) and str(exc) else ""
            reason = f"out of memory (inputs and float64 reference){known}"
        return {b.name: Record.for_case(case, b.name, ERROR, reason) for b in backends}
    run = _CaseRun(case, device, options, clocks, len(copies), l2_note)
    done: dict[str, Record] = {}
    checked: dict[Backend, tuple[Callable[[], object], float]] = {}
    for backend in backends:
        try:
            call, rel_err = _checked_call(case, backend, copies, ref, device)
        except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
            done[backend.name] = run.error(backend.name, exc)
            continue
        if not rel_err <= WRONG_RESULT_REL_ERR:  # also catches NaN
            reason = f"wrong result: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}"
            done[backend.name] = Record.for_case(case, backend.name, ERROR, reason, rel_err=rel_err)
        elif not options.time_calls:
            done[backend.name] = Record.for_case(case, backend.name, OK, rel_err=rel_err)
        else:
            checked[backend] = call, rel_err
    del ref
    done.update(_time_case(run, checked))
    return {b.name: done[b.name] for b in backends}


def _checked_call(
    case: Case, backend: Backend, copies: list[GemmInputs], ref: torch.Tensor, device: torch.device
) -> tuple[Callable[[], object], float]:
    """The backend's call over the rotating copies, and the relative error of its first output, written
    into a buffer poisoned with NaN so that an output that is not fully written fails."""
    calls = [backend.prepare(case, inputs) for inputs in copies]
    copies[0].out.fill_(math.nan)
    calls[0]()
    _sync(device)()
    return rotating(calls), relative_error(copies[0].out, ref)


def _time_case(run: _CaseRun, checked: dict[Backend, tuple[Callable[[], object], float]]) -> dict[str, Record]:
    """Eager latency of all `checked` backends in interleaved windows, then each one's device time,
    clocks and routing check. The fake backend's times are simulated, not measured."""
    records: dict[str, Record] = {}
    simulated = {b: b.simulated_times_us(run.case) for b in checked if b.simulated_times_us(run.case) is not None}
    calls: dict[Backend, Callable[[], object]] = {}
    for backend, (call, _) in checked.items():
        if backend in simulated:
            continue
        try:
            timing.warm_up(call, run.options.warmup_s, _sync(run.device))
            calls[backend] = call
        except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
            records[backend.name] = run.error(backend.name, exc)
    start = run.clocks.read()
    latencies, failures = _interleaved_latency(calls, run.device, run.options)
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
            end = run.clocks.read()
            mismatch, routing_note = _routing(run.case, backend, run.device, run.options)
        except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
            _release(run.device)
            records[backend.name] = run.error(backend.name, exc)
            continue
        notes = (run.l2_note, timer_note, routing_note)
        records[backend.name] = _timed_record(run, backend, rel_err, latency, device_time, notes, mismatch, start, end)
    return records


def _interleaved_latency(
    calls: dict[Backend, Callable[[], object]], device: torch.device, options: SweepOptions
) -> tuple[dict[Backend, Samples], dict[Backend, Exception]]:
    """Eager latency of each call, in `options.eager_windows` rounds that visit every call in turn: the
    backends of a point are sampled under the same host states. A call that raises is dropped."""
    timer = EVENTS_TIMER if device.type == "cuda" else HOST_TIMER
    windows: dict[Backend, list[list[float]]] = {backend: [] for backend in calls}
    failures: dict[Backend, Exception] = {}
    for _ in range(options.eager_windows):
        for backend, call in calls.items():
            if backend in failures:
                continue
            try:
                windows[backend].append(timing.sample_window(call, timer, options.eager_window_s))
            except Exception as exc:  # noqa: BLE001 - the caller turns it into this backend's error row
                failures[backend] = exc
    samples = {backend: Samples.from_windows(timer, w) for backend, w in windows.items() if backend not in failures}
    return samples, failures


def _device_time(run: _CaseRun, call: Callable[[], object], latency: Samples) -> tuple[Samples | None, str]:
    """CUDA-graph device time (None on the CPU), and a note where the call cannot be captured."""
    if run.device.type != "cuda":
        return None, ""
    try:
        # Each graph replay runs every copy the same number of times, so rotation continues across replays.
        unroll = timing.fit_graph_unroll(call, latency.min_us, multiple_of=run.copies)
        return timing.time_graph(call, run.options.target, unroll), ""
    except RuntimeError as exc:  # a call that cannot be captured still has its eager latency
        if is_allocation_failure(exc):
            raise
        return None, f"graph timer failed: {str(exc).splitlines()[0][:MAX_NOTE_CHARS]}"


def _timed_record(
    run: _CaseRun,
    backend: Backend,
    rel_err: float,
    latency: Samples,
    device_time: Samples | None,
    notes: tuple[str, ...],
    mismatch: float | None,
    start: ClockReading | None,
    end: ClockReading | None,
) -> Record:
    case, options = run.case, run.options
    backends_config = backend.configuration(case)
    best_us = (device_time or latency).median_us
    values: dict = {
        "noisy": any(s.noisy for s in (latency, device_time) if s is not None),
        "tflops": case.flops / best_us / 1e6,  # FLOP per us = 1e6 FLOP/s; TFLOP/s = 1e12 FLOP/s
        "gbps": case.bytes_moved / best_us / 1e3,  # bytes per us = 1e6 B/s; GB/s = 1e9 B/s
    }
    if mismatch is not None:
        values["topk_mismatch"] = mismatch
    if options.roofline is not None:
        values["floor_us"] = options.roofline.floor_us(case)
        values["pct_of_floor"] = 100 * values["floor_us"] / best_us
    if start and end:
        values.update(assess(start, end, run.clocks.max_sm_mhz))
    mode = l2_mode(run.device, options.l2)
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
        backend_config=backends_config,
        **values,
    )


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _routing(case: Case, backend: Backend, device: torch.device, options: SweepOptions) -> tuple[float | None, str]:
    """The top-k mismatch of a router row, or why there is none; never fails the row."""
    if not routing.applies(case):
        return None, ""
    try:
        return routing.topk_mismatch(backend, case, device, options.seed), ""
    except Exception as exc:  # noqa: BLE001 - a failed routing check leaves the row its timings
        if not is_allocation_failure(exc):
            raise
        _release(device)
        return None, "routing check: out of memory"


def profile_records(
    records: list[Record],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions = SweepOptions(),
    warn: Callable[[str], None] = _ignore,
    done: Callable[[int], None] = _ignore,
) -> list[Record]:
    """The kernel pass, to run after all timing: `records` with the kernels one call of each ok row's
    backend launches, all in one profiler session; `done(index)` is told as each row is profiled.
    Nothing is profiled off a GPU. An unavailable profiler is warned about and leaves the kernel columns
    empty; a call that fails under the profiler leaves a note on its row, which keeps its timings."""
    by_name = {b.name: b for b in backends}
    wanted = (
        [i for i, r in enumerate(records) if r.status == OK and r.backend in by_name] if device.type == "cuda" else []
    )
    inputs_of: dict[Case, GemmInputs] = {}  # one set of inputs, for the case in hand

    def make_call(key: int) -> Callable[[], object]:
        record = records[wanted[key]]
        if record.case not in inputs_of:
            inputs_of.clear()
            _release(device)
            inputs_of[record.case] = make_inputs(record.case, device, options.seed)
        return by_name[record.backend].prepare(record.case, inputs_of[record.case])

    try:
        traces, failures = profile.capture_many(len(wanted), make_call, device, lambda key: done(wanted[key]))
    except profile.ProfilerUnavailable as exc:
        warn(f"kernel names not recorded: {exc}; the kernel columns stay empty")
        return records
    finally:
        inputs_of.clear()
        _release(device)
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


def measure_all(
    cases: list[Case],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions = SweepOptions(),
    warn: Callable[[str], None] = _ignore,
) -> list[Record]:
    """Both passes, for callers that need no progress (scripts, tests): every point measured, then
    profiled where `options.capture_kernels`."""
    records = list(measure_cases(cases, backends, device, options, warn))
    return profile_records(records, backends, device, options, warn) if options.capture_kernels else records
