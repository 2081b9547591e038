"""Measuring points: for each case, inputs and a float64 reference; for each backend, a correctness
check, then the timers, the clock watch and the kernel pass. Yields one Record per (case, backend),
skips and errors included; never prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from gemmbench import ext, profile, routing, timing
from gemmbench.backends import Backend, GemmInputs
from gemmbench.clocks import ClockWatch, assess, warm_device
from gemmbench.inputs import COLD, input_copies, l2_mode, reference, relative_error, rotating
from gemmbench.records import ERROR, OK, SKIPPED, WRONG_RESULT_REL_ERR, Record
from gemmbench.roofline import Roofline
from gemmbench.shapes import Case
from gemmbench.summary import SIMULATED_TIMER
from gemmbench.timing import Samples

# Per point: calls before timing, so caches, clocks and lazy initialisation settle (docs/design.md,
# measurement rules).
POINT_WARMUP_S = 0.02
# An error row keeps the first line of the exception's message, cut to this many characters.
MAX_ERROR_CHARS = 300
# A graph-timer failure is a note on a row that keeps its eager latency; its message is cut to this.
MAX_NOTE_CHARS = 200


@dataclass(frozen=True)
class SweepOptions:
    warmup_s: float = POINT_WARMUP_S
    target: timing.Target = field(default_factory=timing.Target)
    l2: str = COLD  # "cold": rotate input copies past the L2; "hot": one set of buffers
    seed: int = 0
    time_calls: bool = True  # False: check and profile only (`gemmbench kernels`)
    capture_kernels: bool = True  # a torch.profiler pass per point, after the timers
    roofline: Roofline | None = None  # measured device limits; gives each row its floor


class _KernelCapture:
    """Profiles points until the profiler proves unavailable; then warns once and stops trying."""

    def __init__(self, enabled: bool, warn: Callable[[str], None]) -> None:
        self.enabled = enabled
        self.warn = warn

    def __call__(self, call, device: torch.device) -> profile.KernelTrace | None:
        if not self.enabled or device.type != "cuda":
            return None
        try:
            return profile.capture_kernels(call, device)
        except Exception as exc:  # noqa: BLE001 - a profiler problem must never cost a row its timings
            self.enabled = False
            self.warn(f"kernel names not recorded: {exc}; the kernel columns stay empty")
            return None


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


def run_points(
    cases: list[Case],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions = SweepOptions(),
    warn: Callable[[str], None] = _ignore,
    note: Callable[[str], None] = _ignore,
) -> Iterator[Record]:
    """One record per (case, backend), in case order then backend order, after loading the backends.
    `warn` gets sweep-wide problems, `note` what is about to take a while."""
    load_backends(backends, device, note)
    capture = _KernelCapture(options.capture_kernels, warn)
    clocks = ClockWatch(device)
    if device.type == "cuda" and clocks.unavailable and options.time_calls:
        warn(f"no clock watch: {clocks.unavailable}; the clock and throttle columns stay empty")
    device_warm = device.type != "cuda" or not options.time_calls
    for case in cases:
        reasons = {b.name: b.unavailable_reason(case, device) for b in backends}
        runnable = [b for b in backends if reasons[b.name] is None]
        copies: list[GemmInputs] = []
        ref = None
        setup_error = ""
        l2_note = ""
        if runnable:
            try:
                cold = options.l2 == COLD and options.time_calls
                copies, l2_note = input_copies(case, device, options.seed, cold)
                ref = reference(copies[0])
            except torch.cuda.OutOfMemoryError:
                copies, ref = [], None
                setup_error = "out of memory (inputs and float64 reference)"
                _release(device)
            if not device_warm and any(b.real for b in runnable):
                warm_device(device, clocks)
                device_warm = True
        for backend in backends:
            if reasons[backend.name]:
                yield Record.for_case(case, backend.name, SKIPPED, reasons[backend.name])
            elif setup_error:
                yield Record.for_case(case, backend.name, ERROR, setup_error)
            else:
                yield measure_point(case, backend, copies, ref, device, options, capture, clocks, l2_note)
        del copies, ref
        _release(device)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def measure_point(
    case: Case,
    backend: Backend,
    copies: list[GemmInputs],
    ref: torch.Tensor,
    device: torch.device,
    options: SweepOptions,
    capture: Callable[[Callable, torch.device], profile.KernelTrace | None] = lambda call, device: None,
    clocks: ClockWatch | None = None,
    l2_note: str = "",
) -> Record:
    """Check one backend's output against the reference, time it, then profile it. Failures become error rows."""
    try:
        calls = [backend.prepare(case, inputs) for inputs in copies]
        checked = copies[0]
        checked.out.fill_(math.nan)
        calls[0]()
        _sync(device)()
        rel_err = relative_error(checked.out, ref)
        if not rel_err <= WRONG_RESULT_REL_ERR:  # also catches NaN
            return Record.for_case(
                case,
                backend.name,
                ERROR,
                f"wrong result: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}",
                rel_err=rel_err,
            )
        call = rotating(calls)
        if not options.time_calls:
            return Record.for_case(case, backend.name, OK, rel_err=rel_err, **_kernel_values(capture(call, device)))
        timing.warm_up(call, options.warmup_s, _sync(device))
        before = clocks.read() if clocks else None
        latency, device_time, timer_note = _time(case, backend, call, len(calls), device, options)
        after = clocks.read() if clocks else None
        trace = capture(call, device)
        mismatch, routing_note = _routing(case, backend, device, options)
    except torch.cuda.OutOfMemoryError:
        _release(device)
        return Record.for_case(case, backend.name, ERROR, "out of memory")
    except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
        message = (str(exc).strip().splitlines() or [""])[0]
        return Record.for_case(case, backend.name, ERROR, f"{type(exc).__name__}: {message}"[:MAX_ERROR_CHARS])
    best_us = (device_time or latency).median_us
    values: dict = {
        "noisy": any(s.noisy for s in (latency, device_time) if s is not None),
        "tflops": case.flops / best_us / 1e6,  # FLOP per us = 1e6 FLOP/s; TFLOP/s = 1e12 FLOP/s
        "gbps": case.bytes_moved / best_us / 1e3,  # bytes per us = 1e6 B/s; GB/s = 1e9 B/s
        **_kernel_values(trace),
    }
    if mismatch is not None:
        values["topk_mismatch"] = mismatch
    if options.roofline is not None:
        values["floor_us"] = options.roofline.floor_us(case)
        values["pct_of_floor"] = 100 * values["floor_us"] / best_us
    if before and after:
        values.update(assess(before, after, clocks.max_sm_mhz))
    mode = l2_mode(device, options.l2)
    note = "; ".join(n for n in (l2_note, timer_note, routing_note) if n)
    return Record.for_case(
        case,
        backend.name,
        OK,
        note,
        latency=latency.summary(),
        device=device_time.summary() if device_time else None,
        rel_err=rel_err,
        l2_mode=mode,
        l2_copies=len(calls) if mode else None,
        **values,
    )


def _routing(case: Case, backend: Backend, device: torch.device, options: SweepOptions) -> tuple[float | None, str]:
    """The top-k mismatch of a router row, or why there is none; never fails the row."""
    if not routing.applies(case):
        return None, ""
    try:
        return routing.topk_mismatch(backend, case, device, options.seed), ""
    except torch.cuda.OutOfMemoryError:
        _release(device)
        return None, "routing check: out of memory"


def _time(
    case: Case, backend: Backend, call, copies: int, device: torch.device, options: SweepOptions
) -> tuple[Samples, Samples | None, str]:
    simulated = backend.simulated_times_us(case)
    if simulated is not None:
        latency_us, device_us = simulated
        return Samples(SIMULATED_TIMER, (latency_us,)), Samples(SIMULATED_TIMER, (device_us,)), ""
    if device.type != "cuda":
        return timing.time_host(call, options.target), None, ""
    latency = timing.time_events(call, options.target)
    try:
        # Each graph replay runs every copy the same number of times, so rotation continues across replays.
        unroll = timing.fit_graph_unroll(call, latency.min_us, multiple_of=copies)
        device_time = timing.time_graph(call, options.target, unroll)
    except RuntimeError as exc:  # a call that cannot be captured still has its eager latency
        return latency, None, f"graph timer failed: {str(exc).splitlines()[0][:MAX_NOTE_CHARS]}"
    return latency, device_time, ""


def _kernel_values(trace: profile.KernelTrace | None) -> dict:
    if trace is None:
        return {}
    return {"kernels": trace.kernels, "kernel_count": len(trace.kernels), "kernel_sum_us": trace.sum_us}
