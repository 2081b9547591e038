"""The sweep: for each case, random inputs and a float64 reference; for each backend, a correctness
check, then the timers. Yields one Record per (case, backend), skips and errors included; never prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from gemmbench import profile, timing
from gemmbench.backends import Backend, GemmInputs
from gemmbench.backends.base import TORCH_DTYPES
from gemmbench.results import ERROR, OK, SKIPPED, Record
from gemmbench.shapes import Case

# Per point: calls before timing, so caches, clocks and lazy initialisation settle (DESIGN.md section 5).
POINT_WARMUP_S = 0.02
# Per point and timer: the time spent sampling. 0.1 s gives thousands of samples of a 5 us call and
# still tens of a 1 ms one.
POINT_BUDGET_S = 0.1
# Once per sweep on a GPU: clocks ramp up from idle over a few hundred milliseconds.
DEVICE_WARMUP_S = 1.0
DEVICE_WARMUP_SIZE = 4096
# A relative error above this is not rounding (bf16 rounding of the output gives ~1.5e-3): the output
# was not written, or is wrong. Such a row is an error and is not timed.
WRONG_RESULT_REL_ERR = 1e-2


@dataclass(frozen=True)
class SweepOptions:
    warmup_s: float = POINT_WARMUP_S
    budget_s: float = POINT_BUDGET_S
    seed: int = 0
    time_calls: bool = True  # False: check and profile only (`gemmbench kernels`)
    capture_kernels: bool = True  # a torch.profiler pass per point, after the timers


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


def warm_device(device: torch.device, seconds: float = DEVICE_WARMUP_S) -> None:
    a = torch.randn(DEVICE_WARMUP_SIZE, DEVICE_WARMUP_SIZE, device=device, dtype=torch.bfloat16)
    timing.warm_up(lambda: torch.mm(a, a), seconds, lambda: torch.cuda.synchronize(device))


def run_sweep(
    cases: list[Case],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions = SweepOptions(),
    warn: Callable[[str], None] = lambda message: None,
) -> Iterator[Record]:
    """One record per (case, backend), in case order then backend order. `warn` gets sweep-wide notices."""
    capture = _KernelCapture(options.capture_kernels, warn)
    device_warm = device.type != "cuda" or not options.time_calls
    for case in cases:
        reasons = {b.name: b.supports(case, device) for b in backends}
        runnable = [b for b in backends if reasons[b.name] is None]
        inputs = ref = None
        setup_error = ""
        if runnable:
            try:
                inputs = make_inputs(case, device, options.seed)
                ref = reference(inputs)
            except torch.cuda.OutOfMemoryError:
                inputs = ref = None
                setup_error = "out of memory (inputs and float64 reference)"
                _release(device)
            if not device_warm and any(b.real for b in runnable):
                warm_device(device)
                device_warm = True
        for backend in backends:
            if reasons[backend.name]:
                yield Record.for_case(case, backend.name, SKIPPED, reasons[backend.name])
            elif setup_error:
                yield Record.for_case(case, backend.name, ERROR, setup_error)
            else:
                yield measure_point(case, backend, inputs, ref, device, options, capture)
        del inputs, ref
        _release(device)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def measure_point(
    case: Case,
    backend: Backend,
    inputs: GemmInputs,
    ref: torch.Tensor,
    device: torch.device,
    options: SweepOptions,
    capture: Callable[[Callable, torch.device], profile.KernelTrace | None] = lambda call, device: None,
) -> Record:
    """Check one backend's output against the reference, time it, then profile it. Failures become error rows."""
    try:
        call = backend.prepare(case, inputs)
        inputs.out.fill_(math.nan)
        call()
        _sync(device)()
        rel_err = relative_error(inputs.out, ref)
        if not rel_err <= WRONG_RESULT_REL_ERR:  # also catches NaN
            return Record.for_case(
                case, backend.name, ERROR, f"wrong result: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}",
                rel_err=rel_err,
            )
        if not options.time_calls:
            return Record.for_case(case, backend.name, OK, rel_err=rel_err, **_kernel_values(capture(call, device)))
        latency, device_time, note = _time(case, backend, call, device, options)
        trace = capture(call, device)
    except torch.cuda.OutOfMemoryError:
        _release(device)
        return Record.for_case(case, backend.name, ERROR, "out of memory")
    except Exception as exc:  # noqa: BLE001 - any backend failure is a row, never a traceback
        message = (str(exc).strip().splitlines() or [""])[0]
        return Record.for_case(case, backend.name, ERROR, f"{type(exc).__name__}: {message}"[:300])
    return _ok_record(case, backend.name, rel_err, latency, device_time, note, trace)


def _time(
    case: Case, backend: Backend, call, device: torch.device, options: SweepOptions
) -> tuple[timing.Samples, timing.Samples | None, str]:
    simulated = backend.simulated_times_us(case)
    if simulated is not None:
        latency_us, device_us = simulated
        return timing.Samples("simulated", (latency_us,)), timing.Samples("simulated", (device_us,)), ""
    timing.warm_up(call, options.warmup_s, _sync(device))
    if device.type != "cuda":
        return timing.time_host(call, options.budget_s), None, ""
    latency = timing.time_events(call, options.budget_s)
    try:
        device_time = timing.time_graph(call, options.budget_s, timing.graph_unroll(latency.min_us))
    except RuntimeError as exc:  # a call that cannot be captured still has its eager latency
        return latency, None, f"graph timer failed: {str(exc).splitlines()[0][:200]}"
    return latency, device_time, ""


def _kernel_values(trace: profile.KernelTrace | None) -> dict:
    if trace is None:
        return {}
    return {"kernels": trace.kernels, "kernel_count": len(trace.kernels), "kernel_sum_us": trace.sum_us}


def _ok_record(
    case: Case,
    backend: str,
    rel_err: float,
    latency: timing.Samples,
    device_time: timing.Samples | None,
    note: str,
    trace: profile.KernelTrace | None,
) -> Record:
    values = {
        "rel_err": rel_err,
        "latency_timer": latency.timer,
        "latency_median_us": latency.median_us,
        "latency_iqr_us": latency.iqr_us,
        "latency_min_us": latency.min_us,
        "latency_samples": latency.count,
    }
    if device_time is not None:
        values.update(
            device_timer=device_time.timer,
            device_median_us=device_time.median_us,
            device_iqr_us=device_time.iqr_us,
            device_min_us=device_time.min_us,
            device_samples=device_time.count,
        )
    best_us = (device_time or latency).median_us
    values["tflops"] = case.flops / best_us / 1e6
    values["gbps"] = case.bytes_moved / best_us / 1e3
    values.update(_kernel_values(trace))
    return Record.for_case(case, backend, OK, note, **values)
