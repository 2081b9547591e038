"""The sweep: for each case, random inputs and a float64 reference; for each backend, a correctness
check, then the timers, the clock watch and the kernel pass. Yields one Record per (case, backend),
skips and errors included; never prints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from gemmbench import profile, routing, timing
from gemmbench.backends import Backend, GemmInputs
from gemmbench.backends.base import TORCH_DTYPES
from gemmbench.clocks import ClockWatch, assess
from gemmbench.results import ERROR, OK, SKIPPED, Record
from gemmbench.roofline import Roofline
from gemmbench.shapes import Case

# Per point: calls before timing, so caches, clocks and lazy initialisation settle (DESIGN.md section 5).
POINT_WARMUP_S = 0.02
# Once per sweep on a GPU, run matmuls until the SM clock is stable: readings this far apart...
DEVICE_WARMUP_STEP_S = 0.1
# ...agreeing within this fraction over this many consecutive readings...
DEVICE_WARMUP_CLOCK_TOLERANCE = 0.01
DEVICE_WARMUP_STABLE_READINGS = 3
# ...after at least the minimum and at most the maximum time. Without NVML: the minimum, doubled.
DEVICE_WARMUP_MIN_S = 0.5
DEVICE_WARMUP_MAX_S = 5.0
DEVICE_WARMUP_SIZE = 4096
# A relative error above this is not rounding (bf16 rounding of the output gives ~1.5e-3): the output
# was not written, or is wrong. Such a row is an error and is not timed.
WRONG_RESULT_REL_ERR = 1e-2
# Cold L2: copies of (x, w, out) rotated so that the bytes between two uses of one copy exceed twice
# the L2 (DESIGN.md section 5), and never fewer than two, so consecutive calls never share buffers.
COLD_L2_FACTOR = 2
MIN_COLD_COPIES = 2
# Tiny cases would need thousands of copies; this many already spans 2x L2 for inputs of >= 250 KB.
MAX_COLD_COPIES = 512
# The copies may take at most this share of the free device memory; fewer copies are used otherwise.
COLD_MEMORY_FRACTION = 0.5

COLD = "cold"
HOT = "hot"


@dataclass(frozen=True)
class SweepOptions:
    warmup_s: float = POINT_WARMUP_S
    target: timing.Target = field(default_factory=timing.Target)
    l2: str = COLD  # "cold": rotate input copies past the L2; "hot": one set of buffers
    seed: int = 0
    time_calls: bool = True  # False: check and profile only (`gemmbench kernels`)
    capture_kernels: bool = True  # a torch.profiler pass per point, after the timers
    check_routing: bool = True  # routers with a top_k: the top-k expert mismatch against float64
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


def make_inputs(case: Case, device: torch.device, seed: int) -> GemmInputs:
    """Random normal operands (never zeros: they run faster and hide unwritten outputs)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    dtype = TORCH_DTYPES[case.in_dtype]
    x = torch.randn(case.m, case.k, device=device, dtype=dtype, generator=generator)
    w = torch.randn(case.n, case.k, device=device, dtype=dtype, generator=generator)
    out = torch.empty(case.m, case.n, device=device, dtype=TORCH_DTYPES[case.out_dtype])
    return GemmInputs(x, w, out)


def reference(inputs: GemmInputs) -> torch.Tensor:
    """x @ w.T in float64, on the same device."""
    return torch.mm(inputs.x.double(), inputs.w.double().t())


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; NaN when any element of `out` is NaN (e.g. never written)."""
    return (torch.linalg.vector_norm(out.double() - ref) / torch.linalg.vector_norm(ref)).item()


def cold_copies(case: Case, l2_bytes: int, free_bytes: int) -> tuple[int, int]:
    """(copies to use, copies wanted) so that rotating them keeps every call's inputs out of L2."""
    wanted = min(MAX_COLD_COPIES, max(MIN_COLD_COPIES, math.ceil(COLD_L2_FACTOR * l2_bytes / case.bytes_moved)))
    fitting = max(1, int(COLD_MEMORY_FRACTION * free_bytes // case.bytes_moved))
    return min(wanted, fitting), wanted


def warm_device(device: torch.device, clocks: ClockWatch) -> None:
    """Run bf16 matmuls until the SM clock has settled (DESIGN.md section 5: clocks ramp from idle)."""
    a = torch.randn(DEVICE_WARMUP_SIZE, DEVICE_WARMUP_SIZE, device=device, dtype=torch.bfloat16)
    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    start = time.perf_counter()
    readings: list[int] = []
    while time.perf_counter() - start < DEVICE_WARMUP_MAX_S:
        timing.warm_up(lambda: torch.mm(a, a), DEVICE_WARMUP_STEP_S, sync)
        reading = clocks.read()
        if reading is None:
            if time.perf_counter() - start >= 2 * DEVICE_WARMUP_MIN_S:
                return
            continue
        readings.append(reading.sm_mhz)
        recent = readings[-DEVICE_WARMUP_STABLE_READINGS:]
        settled = len(recent) == DEVICE_WARMUP_STABLE_READINGS and (
            max(recent) - min(recent) <= DEVICE_WARMUP_CLOCK_TOLERANCE * max(recent)
        )
        if settled and time.perf_counter() - start >= DEVICE_WARMUP_MIN_S:
            return


def run_sweep(
    cases: list[Case],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions = SweepOptions(),
    warn: Callable[[str], None] = lambda message: None,
) -> Iterator[Record]:
    """One record per (case, backend), in case order then backend order. `warn` gets sweep-wide notices."""
    capture = _KernelCapture(options.capture_kernels, warn)
    clocks = ClockWatch(device)
    if device.type == "cuda" and clocks.unavailable and options.time_calls:
        warn(f"no clock watch: {clocks.unavailable}; the clock and throttle columns stay empty")
    device_warm = device.type != "cuda" or not options.time_calls
    for case in cases:
        reasons = {b.name: b.supports(case, device) for b in backends}
        runnable = [b for b in backends if reasons[b.name] is None]
        copies: list[GemmInputs] = []
        ref = None
        setup_error = ""
        l2_note = ""
        if runnable:
            try:
                copies, l2_note = input_copies(case, device, options)
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


def l2_mode(device: torch.device, options: SweepOptions) -> str | None:
    """The L2 mode of a sweep's rows; None on the CPU, where gemmbench does not manage caches."""
    return options.l2 if device.type == "cuda" else None


def input_copies(case: Case, device: torch.device, options: SweepOptions) -> tuple[list[GemmInputs], str]:
    """One set of inputs (hot, CPU, or checks only) or enough rotating copies to keep L2 cold."""
    first = make_inputs(case, device, options.seed)
    if l2_mode(device, options) != COLD or not options.time_calls:
        return [first], ""
    l2_bytes = torch.cuda.get_device_properties(device).L2_cache_size
    count, wanted = cold_copies(case, l2_bytes, torch.cuda.mem_get_info(device)[0])
    copies = [first] + [make_inputs(case, device, options.seed + i) for i in range(1, count)]
    note = "" if count == wanted else f"cold L2: only {count} of {wanted} input copies fit in memory"
    return copies, note


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
                case, backend.name, ERROR, f"wrong result: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}",
                rel_err=rel_err,
            )
        call = timing.rotating(calls)
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
        return Record.for_case(case, backend.name, ERROR, f"{type(exc).__name__}: {message}"[:300])
    values = _timer_values(case, latency, device_time)
    values.update(_kernel_values(trace))
    if mismatch is not None:
        values["topk_mismatch"] = mismatch
    if options.roofline is not None:
        values["floor_us"] = options.roofline.floor_us(case)
        values["pct_of_floor"] = 100 * values["floor_us"] / (device_time or latency).median_us
    if before and after:
        values.update(assess(before, after, clocks.max_sm_mhz))
    mode = l2_mode(device, options)
    note = "; ".join(n for n in (l2_note, timer_note, routing_note) if n)
    return Record.for_case(
        case, backend.name, OK, note, rel_err=rel_err, l2_mode=mode, l2_copies=len(calls) if mode else None, **values
    )


def _routing(case: Case, backend: Backend, device: torch.device, options: SweepOptions) -> tuple[float | None, str]:
    """The top-k mismatch of a router row, or why there is none; never fails the row."""
    if not options.check_routing or not routing.applies(case):
        return None, ""
    try:
        return routing.topk_mismatch(backend, case, device, options.seed), ""
    except torch.cuda.OutOfMemoryError:
        _release(device)
        return None, "routing check: out of memory"


def _time(
    case: Case, backend: Backend, call, copies: int, device: torch.device, options: SweepOptions
) -> tuple[timing.Samples, timing.Samples | None, str]:
    simulated = backend.simulated_times_us(case)
    if simulated is not None:
        latency_us, device_us = simulated
        return timing.Samples("simulated", (latency_us,)), timing.Samples("simulated", (device_us,)), ""
    if device.type != "cuda":
        return timing.time_host(call, options.target), None, ""
    latency = timing.time_events(call, options.target)
    try:
        # Each graph replay runs every copy the same number of times, so rotation continues across replays.
        unroll = timing.fit_graph_unroll(call, latency.min_us, multiple_of=copies)
        device_time = timing.time_graph(call, options.target, unroll)
    except RuntimeError as exc:  # a call that cannot be captured still has its eager latency
        return latency, None, f"graph timer failed: {str(exc).splitlines()[0][:200]}"
    return latency, device_time, ""


def _kernel_values(trace: profile.KernelTrace | None) -> dict:
    if trace is None:
        return {}
    return {"kernels": trace.kernels, "kernel_count": len(trace.kernels), "kernel_sum_us": trace.sum_us}


def _timer_values(case: Case, latency: timing.Samples, device_time: timing.Samples | None) -> dict:
    values: dict = {}
    for prefix, samples in (("latency", latency), ("device", device_time)):
        if samples is None:
            continue
        low, high = samples.ci_us
        values.update({
            f"{prefix}_timer": samples.timer,
            f"{prefix}_median_us": samples.median_us,
            f"{prefix}_iqr_us": samples.iqr_us,
            f"{prefix}_min_us": samples.min_us,
            f"{prefix}_ci_low_us": low,
            f"{prefix}_ci_high_us": high,
            f"{prefix}_samples": samples.count,
        })
    values["noisy"] = any(s.noisy for s in (latency, device_time) if s is not None)
    best_us = (device_time or latency).median_us
    values["tflops"] = case.flops / best_us / 1e6
    values["gbps"] = case.bytes_moved / best_us / 1e3
    return values
