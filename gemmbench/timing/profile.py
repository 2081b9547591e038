"""Which kernels a call runs: a torch.profiler pass, separate from the timed loops.

Each profiled call sits in a `record_function` range. A device kernel belongs to the call whose range
holds the CUDA runtime call (cudaLaunchKernel, cuLaunchKernelEx, cudaMemsetAsync, ...) that launched
it: in the profiler's raw (kineto) events the kernel and its launch carry the same CUPTI correlation id.
So the kernels of one call are known exactly, in launch order, however many a call launches (a split-K
GEMM plus its reduce; upcast's copies plus a GEMM).
"""

from __future__ import annotations

import bisect
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from gemmbench.errors import BACKEND_FAILURES, first_line
from gemmbench.records import KernelRun

# Calls profiled per point; the reported kernel sum is their median.
PROFILED_CALLS = 3
# Eager calls before profiling, so lazy work (handle creation, heuristics caches) stays out of the trace.
WARM_CALLS = 2
CALL_PREFIX = "gemmbench.call."
# A profiler failure's message keeps its first line, cut to this many characters.
MAX_FAILURE_CHARS = 200
# CUDA runtime and driver API names start so (cudaLaunchKernel, cuLaunchKernelEx, cudaMemsetAsync);
# aten ops and Python frames do not.
_RUNTIME_PREFIX = "cu"


class ProfilerUnavailable(Exception):
    """torch.profiler recorded no device kernels here (no CUPTI, or CUPTI refused)."""


@dataclass(frozen=True)
class KernelTrace:
    kernels: tuple[KernelRun, ...]  # one call's kernels, in launch order
    sum_us: float  # median over the profiled calls of the sum of one call's kernel durations


@dataclass(frozen=True)
class ProfiledEvent:
    """The part of a raw profiler event this module reads (times in microseconds)."""

    name: str
    on_device: bool
    start_us: float
    end_us: float
    correlation_id: int


def capture_many(
    count: int,
    make_call: Callable[[int], Callable[[], object]],
    device: torch.device,
    done: Callable[[int], None] = lambda key: None,
) -> tuple[dict[int, KernelTrace], dict[int, Exception]]:
    """The kernels of calls 0..count-1, all in one profiler session: starting and reading a session
    costs tenths of a second, which a session per call would pay for every point of a sweep.

    `make_call(key)` gives call `key` (it may allocate its inputs); `done(key)` is told as each finishes.
    Returns the traces, and the exceptions of the calls that failed (which do not stop the others).
    Raises ProfilerUnavailable if the profiler recorded no device kernel at all.
    """
    traces: dict[int, KernelTrace] = {}
    failures: dict[int, Exception] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the profiler's own notices would reach the user's terminal
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for key in range(count):
                    try:
                        _profiled_calls(make_call(key), key, device)
                    except BACKEND_FAILURES as exc:  # one call's failure is its own, reported to the caller
                        failures[key] = exc
                    done(key)
        events = [
            ProfiledEvent(
                e.name(), e.device_type() == DeviceType.CUDA, e.start_ns() / 1e3, e.end_ns() / 1e3, e.correlation_id()
            )
            for e in prof.profiler.kineto_results.events()
        ]
    except (RuntimeError, AttributeError) as exc:
        raise ProfilerUnavailable(f"torch.profiler failed: {first_line(exc)[:MAX_FAILURE_CHARS]}") from exc
    per_call = group_by_call(events, count * PROFILED_CALLS)
    if count > len(failures) and not any(per_call):
        raise ProfilerUnavailable("torch.profiler recorded no device kernels (CUPTI unavailable or not permitted)")
    for key in range(count):
        calls = per_call[key * PROFILED_CALLS : (key + 1) * PROFILED_CALLS]
        if key in failures:
            continue
        if not all(calls):
            failures[key] = ProfilerUnavailable("torch.profiler recorded no device kernel for this call")
            continue
        sums = [sum(k.duration_us or 0.0 for k in kernels) for kernels in calls]
        median_call = sorted(range(len(sums)), key=sums.__getitem__)[len(sums) // 2]
        traces[key] = KernelTrace(tuple(calls[median_call]), statistics.median(sums))
    return traces, failures


def _profiled_calls(call: Callable[[], object], key: int, device: torch.device) -> None:
    """WARM_CALLS calls outside any range (lazy work stays out), then PROFILED_CALLS, each in its range."""
    for _ in range(WARM_CALLS):
        call()
    torch.cuda.synchronize(device)
    for index in range(PROFILED_CALLS):
        with record_function(f"{CALL_PREFIX}{key * PROFILED_CALLS + index}"):
            call()
        torch.cuda.synchronize(device)


def group_by_call(events: list[ProfiledEvent], calls: int) -> list[list[KernelRun]]:
    """Assign each device kernel to the profiled call whose host range holds its launch.

    The calls ran one after another, so their ranges are disjoint: a launch's call is found by bisecting
    the ranges' starts (a sweep's kernel pass holds thousands of calls).
    """
    windows: list[tuple[float, float, int]] = []
    launch_times: dict[int, float] = {}
    for event in events:
        if event.on_device:
            continue
        if event.name.startswith(CALL_PREFIX):
            index = int(event.name[len(CALL_PREFIX) :])
            if index < calls:
                windows.append((event.start_us, event.end_us, index))
        elif event.name.startswith(_RUNTIME_PREFIX):
            launch_times[event.correlation_id] = event.start_us
    windows.sort()
    starts = [start for start, _, _ in windows]
    per_call: list[list[KernelRun]] = [[] for _ in range(calls)]
    kernels = [e for e in events if e.on_device and not e.name.startswith(CALL_PREFIX)]
    for kernel in sorted(kernels, key=lambda e: e.start_us):
        launched = launch_times.get(kernel.correlation_id)
        if launched is None:
            continue
        position = bisect.bisect_right(starts, launched) - 1
        if position >= 0 and launched <= windows[position][1]:
            per_call[windows[position][2]].append(KernelRun(kernel.name, kernel.end_us - kernel.start_us))
    return per_call


def kernel_intervals(call: Callable[[], object], device: torch.device) -> list[tuple[int, float, float]]:
    """(stream, start µs, end µs) of each kernel that one `call` ran, in a profiler session of its own."""
    torch.cuda.synchronize(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize(device)
    return [
        (e.device_resource_id(), e.start_ns() / 1e3, e.end_ns() / 1e3)
        for e in prof.profiler.kineto_results.events()
        if e.device_type() == DeviceType.CUDA
    ]


def overlap_us(kernels: list[tuple[int, float, float]]) -> float:
    """Time during which kernels of two or more lanes ran at once, from (lane, start, end) in µs."""
    edges = sorted((t, kind, lane) for lane, start, end in kernels for t, kind in ((start, 1), (end, -1)))
    running: dict[int, int] = {}
    total, last = 0.0, None
    for t, kind, lane in edges:
        if last is not None and sum(1 for count in running.values() if count > 0) >= 2:
            total += t - last
        running[lane] = running.get(lane, 0) + kind
        last = t
    return total
