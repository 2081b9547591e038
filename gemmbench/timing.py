"""How long a call takes: timers with one signature, each returning raw samples in microseconds.

- `time_events`: CUDA events around each eager call, back to back. Host-inclusive: when the GPU work
  is shorter than the launch path, the GPU waits for the CPU and the sample shows what an eager
  caller pays.
- `time_graph`: a CUDA graph of `unroll` calls, replays timed with events, divided per call: device
  time without launch gaps, what a CUDA-graph serving loop pays.
- `time_host`: a host clock around each synchronised call, for the CPU.

Statistics are derived from the samples; nothing here rounds.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

EVENTS_TIMER = "cuda_events"
GRAPH_TIMER = "cuda_graph"
HOST_TIMER = "host_clock"

# Samples recorded between two synchronisations: enough to keep the GPU queue busy, few enough that
# the budget check stays close to the budget.
EVENTS_BATCH = 16
# Fewest samples a timer returns even when the budget runs out: a median and an IQR of fewer mean little.
MIN_SAMPLES = 5
# A cap on samples per timer: beyond a few thousand the median no longer moves.
MAX_SAMPLES = 4000
# Graph replays are sized to take about this long, so event resolution (~0.5 us) and the replay's
# own launch are small beside it; capped so a capture of slow calls stays small.
GRAPH_TARGET_REPLAY_US = 200.0
MAX_GRAPH_UNROLL = 32


@dataclass(frozen=True)
class Samples:
    """Raw per-call times of one timer, in microseconds."""

    timer: str
    values_us: tuple[float, ...]
    calls_per_sample: int = 1

    @property
    def count(self) -> int:
        return len(self.values_us)

    @property
    def median_us(self) -> float:
        return statistics.median(self.values_us)

    @property
    def min_us(self) -> float:
        return min(self.values_us)

    @property
    def iqr_us(self) -> float:
        if self.count < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.values_us, n=4, method="inclusive")
        return q3 - q1


def warm_up(fn: Callable[[], object], seconds: float, sync: Callable[[], None]) -> int:
    """Call `fn` until `seconds` have passed (at least once); returns the number of calls."""
    calls = 0
    deadline = time.perf_counter() + seconds
    while calls == 0 or time.perf_counter() < deadline:
        fn()
        sync()
        calls += 1
    return calls


def time_host(fn: Callable[[], object], budget_s: float) -> Samples:
    """Host clock around each call; `fn` must be synchronous (CPU tensors are)."""
    values: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(values) < MAX_SAMPLES and (len(values) < MIN_SAMPLES or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        values.append((time.perf_counter() - start) * 1e6)
    return Samples(HOST_TIMER, tuple(values))


def time_events(fn: Callable[[], object], budget_s: float) -> Samples:
    """CUDA events around each eager call, calls back to back on the current stream."""
    return Samples(EVENTS_TIMER, _sample_with_events(fn, budget_s, calls_per_launch=1))


def _sample_with_events(launch: Callable[[], object], budget_s: float, calls_per_launch: int) -> tuple[float, ...]:
    """Events around each `launch`, in batches between synchronisations, until the budget is spent."""
    values: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(values) < MAX_SAMPLES and (len(values) < MIN_SAMPLES or time.perf_counter() < deadline):
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(EVENTS_BATCH)]
        for start, end in pairs:
            start.record()
            launch()
            end.record()
        torch.cuda.synchronize()
        values.extend(start.elapsed_time(end) * 1e3 / calls_per_launch for start, end in pairs)
    return tuple(values)


def graph_unroll(per_call_us: float) -> int:
    """Calls per captured graph so that one replay takes about GRAPH_TARGET_REPLAY_US."""
    return max(1, min(MAX_GRAPH_UNROLL, round(GRAPH_TARGET_REPLAY_US / max(per_call_us, 1e-3))))


def time_graph(fn: Callable[[], object], budget_s: float, unroll: int) -> Samples:
    """Capture `unroll` calls in a CUDA graph; time replays with events; report time per call.

    `fn` must have run eagerly before (lazy initialisation such as cuBLAS workspaces cannot be captured).
    """
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(unroll):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    values = _sample_with_events(graph.replay, budget_s, calls_per_launch=unroll)
    del graph
    return Samples(GRAPH_TIMER, values, calls_per_sample=unroll)
