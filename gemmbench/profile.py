"""Which kernels a call runs: a torch.profiler pass, separate from the timed loops.

Each profiled call sits in a `record_function` range. A device kernel belongs to the call whose range
holds the CUDA runtime call (cudaLaunchKernel, cudaMemsetAsync, ...) that launched it: the profiler
links the two by CUPTI's correlation id. So the kernels of one call are known exactly, in launch
order, however many a call launches (a split-K GEMM plus its reduce; upcast's copies plus a GEMM).
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from gemmbench.results import KernelRun

# Calls profiled per point; the reported kernel sum is their median.
PROFILED_CALLS = 3
# Eager calls before profiling, so lazy work (handle creation, heuristics caches) stays out of the trace.
WARM_CALLS = 2
CALL_PREFIX = "gemmbench.call."
# CUDA runtime and driver API names start so (cudaLaunchKernel, cuLaunchKernelEx, cudaMemsetAsync);
# aten ops and Python frames do not.
_RUNTIME_PREFIX = "cu"


class ProfilerUnavailable(Exception):
    """torch.profiler recorded no device kernels here (no CUPTI, or CUPTI refused)."""


@dataclass(frozen=True)
class KernelTrace:
    kernels: tuple[KernelRun, ...]  # one call's kernels, in launch order
    sum_us: float  # median over the profiled calls of the sum of one call's kernel durations


def capture_kernels(call: Callable[[], object], device: torch.device) -> KernelTrace:
    for _ in range(WARM_CALLS):
        call()
    torch.cuda.synchronize(device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the profiler's own notices would reach the user's terminal
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for index in range(PROFILED_CALLS):
                    with record_function(f"{CALL_PREFIX}{index}"):
                        call()
                    torch.cuda.synchronize(device)
            events = prof.events()
    except RuntimeError as exc:
        raise ProfilerUnavailable(f"torch.profiler failed: {str(exc).splitlines()[0][:200]}") from exc
    per_call = group_by_call(events, PROFILED_CALLS)
    if not all(per_call):
        raise ProfilerUnavailable("torch.profiler recorded no device kernels (CUPTI unavailable or not permitted)")
    sums = [sum(k.duration_us or 0.0 for k in kernels) for kernels in per_call]
    median_call = sorted(range(len(sums)), key=sums.__getitem__)[len(sums) // 2]
    return KernelTrace(tuple(per_call[median_call]), statistics.median(sums))


def group_by_call(events, calls: int) -> list[list[KernelRun]]:
    """Assign each device kernel to the profiled call whose range holds its launch."""
    windows: dict[int, tuple[float, float]] = {}
    launch_times: dict[int, float] = {}
    device_events = []
    for event in events:
        if event.name.startswith(CALL_PREFIX):
            if event.device_type == DeviceType.CPU:
                windows[int(event.name[len(CALL_PREFIX) :])] = (event.time_range.start, event.time_range.end)
        elif event.device_type == DeviceType.CPU:
            if event.name.startswith(_RUNTIME_PREFIX):
                launch_times[event.id] = event.time_range.start
        elif event.device_type == DeviceType.CUDA:
            device_events.append(event)
    per_call: list[list[KernelRun]] = [[] for _ in range(calls)]
    for event in sorted(device_events, key=lambda e: e.time_range.start):
        launched = launch_times.get(event.linked_correlation_id)
        if launched is None:
            continue
        for index, (start, end) in windows.items():
            if start <= launched <= end and index < calls:
                per_call[index].append(KernelRun(event.name, event.time_range.end - event.time_range.start))
                break
    return per_call
