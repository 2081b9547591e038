"""Does the eager latency's host state follow the CPU the launching thread runs on? (docs/validation.md)

On the GPU machine: eager mm_out_dtype at DeepSeek-V3's router, M = 1, sampled in WINDOWS windows of
WINDOW_S each, recording for every window its median and the CPU the process ran on at its end; first
with the process's own affinity, then pinned to one CPU of the GPU's NUMA node (NVML's CPU affinity), then
to one CPU of another node where there is one. Prints one line per mode: window medians' quartiles and,
unpinned, the medians by CPU. Usage: python research/experiments/host_states.py
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from gemmbench.backends import REGISTRY
from gemmbench.records.timers import EVENTS_TIMER
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import make_inputs

WINDOWS = 150
WINDOW_S = 0.01


def current_cpu() -> int:
    with open("/proc/self/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[36])  # field 39: the CPU last run on


def gpu_local_cpus() -> set[int]:
    import pynvml as nvml

    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    words = nvml.nvmlDeviceGetCpuAffinity(handle, (os.cpu_count() + 63) // 64)
    return {64 * i + bit for i, word in enumerate(words) for bit in range(64) if word >> bit & 1}


def sample(call) -> list[tuple[float, int]]:
    windows = []
    for _ in range(WINDOWS):
        values = timers.sample_window(call, EVENTS_TIMER, WINDOW_S)
        windows.append((statistics.median(values), current_cpu()))
    return windows


def describe(label: str, windows: list[tuple[float, int]]) -> None:
    medians = sorted(m for m, _ in windows)
    q = statistics.quantiles(medians, n=4)
    spread = f"min {medians[0]:.1f} q1 {q[0]:.1f} median {q[1]:.1f} q3 {q[2]:.1f} max {medians[-1]:.1f}"
    print(f"{label}: window medians {spread} us")
    by_cpu: dict[int, list[float]] = {}
    for m, cpu in windows:
        by_cpu.setdefault(cpu, []).append(m)
    cpus = ", ".join(f"{cpu}: {statistics.median(v):.1f} ({len(v)})" for cpu, v in sorted(by_cpu.items()))
    print(f"   by CPU: {cpus}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)
    device = torch.device("cuda")
    case = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    inputs = make_inputs(case, device, seed=0)
    call = REGISTRY["mm_out_dtype"].prepare(case, inputs)
    timers.warm_up(call, 0.5, torch.cuda.synchronize)
    everywhere = os.sched_getaffinity(0)
    local = gpu_local_cpus() & everywhere
    print(f"CPUs: {len(everywhere)}; the GPU's NUMA-local ones (NVML): {sorted(local)}")
    describe("own affinity", sample(call))
    pinned = min(local)
    os.sched_setaffinity(0, {pinned})
    describe(f"pinned to CPU {pinned} (GPU-local)", sample(call))
    remote = sorted(everywhere - local)
    if remote:
        os.sched_setaffinity(0, {remote[0]})
        describe(f"pinned to CPU {remote[0]} (another node)", sample(call))
    os.sched_setaffinity(0, everywhere)
    describe("own affinity again", sample(call))


if __name__ == "__main__":
    main()
