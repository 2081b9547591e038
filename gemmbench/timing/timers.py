"""How long a call takes: timers that return raw samples in microseconds.

- Device time, `time_graph`: a CUDA graph of `unroll` calls (sized by `fit_graph_unroll`), replays timed
  with events, divided per call: device time without launch gaps, what a CUDA-graph serving loop pays.
  Sampled adaptively: until the 95% confidence interval of the median is within the target (default
  ±1%) and the samples have settled (the two halves' medians agree), or the time budget runs out; a
  timer that missed the target says so (`noisy`). That interval assumes independent samples, which the
  device time gives.
- Eager latency, `sample_window`: CUDA events around back-to-back eager calls (host-inclusive: when the
  GPU work is shorter than the launch path, the sample shows what an eager caller pays), or a host clock
  around synchronous calls on the CPU. It moves with the host's state (docs/design.md, what was
  measured), so it is sampled in windows (`Samples.from_windows`) that the measurement spreads over a
  point and interleaves between the calls compared there; its interval is that of the median over the
  windows, from the window medians' order statistics (the range of six of them; narrower as windows are
  added where the host moved). The figure is the median of the window medians too, so that it always
  lies inside its interval: a median over all samples weighs a window by its count, and a window of many
  fast calls could put it outside every window's state (255 us against an interval of 12,203-16,055 us
  on a busy CPU host).

Statistics are derived from the samples; nothing here rounds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from gemmbench.records.flags import EAGER_STEADY_CI_REL
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER, TimerSummary
from gemmbench.timing.defaults import MAX_EAGER_WINDOWS
from gemmbench.timing.stopping import (  # noqa: F401 - the timers' rules and statistics, importable from here as before
    CI_LEVEL,
    MAX_SAMPLES,
    MIN_SAMPLES,
    MIN_SAMPLES_FOR_CI,
    FixedCount,
    FixedTime,
    StoppingRule,
    Target,
    median_ci,
    median_ci_ranks,
    settled,
)

# Samples recorded between two synchronisations: enough to keep the GPU queue busy, few enough that
# the budget check stays close to the budget.
EVENTS_BATCH = 16
# Graph replays of one batch take at most about this long: a graph of thousands of calls (the producer
# alone in a context, over enough layers to keep L2 cold: 37 ms a replay at DeepSeek-V3's M = 1) is
# replayed fewer times per batch, never fewer than two, so the queue stays busy and the budget is kept.
GRAPH_BATCH_US = 20_000.0
MIN_GRAPH_BATCH = 2
# Graph replays are sized to take about this long on the device, so that event resolution (~0.5 us)
# and each replay's own launch cost are small beside a replay, and the GPU never waits for the host to
# launch the next one (graph.replay() from Python took 2.5-3.3 us of host time on one H200 host, an
# eager GEMM launch 20-50 us; hosts differ); capped so a graph of the tiniest calls stays small.
GRAPH_TARGET_REPLAY_US = 200.0
MAX_GRAPH_UNROLL = 64
# Back-to-back replays timed together when sizing a graph: enough that the host runs ahead of the GPU
# once replays are long enough, few enough to cost well under a millisecond.
SIZING_REPLAYS = 4


# What a rerun in another process reads beyond the interval of one process: in three default sweeps on an
# H100, each its own process, 95% of the 254 rows' device-time medians lay within +-1.04% of their median
# of three (the largest 2.6%), while the intervals of one process (six placements) had a median
# half-width of 0.23%, and only 55 rows had every run's median inside every run's interval; widened by
# 1%, 238 (docs/measurement.md). A device time's reported interval is widened by this much each side;
# whether the sampling met its target (`noisy`) is judged on the interval before widening.
RERUN_MARGIN_REL = 0.01


@dataclass(frozen=True)
class Samples:
    """Raw per-call times of one timer, in microseconds."""

    timer: str
    values_us: tuple[float, ...]
    target_ci_rel: float | None = None
    window_medians_us: tuple[float, ...] = ()  # sampled in windows (or placements): each one's median
    rerun_margin_rel: float = 0.0  # the reported interval's widening for what a rerun reads (RERUN_MARGIN_REL)

    @classmethod
    def from_windows(
        cls,
        timer: str,
        windows: list[list[float]],
        target_ci_rel: float | None = EAGER_STEADY_CI_REL,
        rerun_margin_rel: float = 0.0,
    ) -> Samples:
        """Samples taken in windows (or placements); their median and interval come from each one's median."""
        values = tuple(v for window in windows for v in window)
        medians = tuple(statistics.median(window) for window in windows if window)
        return cls(timer, values, target_ci_rel, medians, rerun_margin_rel)

    @property
    def ci_us(self) -> tuple[float, float]:
        """95% confidence interval of the median: order statistics of independent samples, or of the
        window medians where sampled in windows (their range, for six windows or fewer)."""
        return median_ci(self.window_medians_us or self.values_us)

    @property
    def interval_us(self) -> tuple[float, float]:
        """The reported interval: the confidence interval, widened each side by the rerun margin."""
        low, high = self.ci_us
        return low * (1 - self.rerun_margin_rel), high * (1 + self.rerun_margin_rel)

    @property
    def ci_rel(self) -> float:
        """Half-width of the median's 95% confidence interval, relative to the median."""
        low, high = self.ci_us
        return (high - low) / 2 / self.median_us if self.median_us > 0 else math.inf

    @property
    def noisy(self) -> bool:
        """True when sampling stopped (budget spent) before the CI reached its target."""
        return self.target_ci_rel is not None and not self.ci_rel <= self.target_ci_rel

    @property
    def count(self) -> int:
        return len(self.values_us)

    @property
    def median_us(self) -> float:
        """The median, of the window medians where sampled in windows (as its interval is), else of the samples."""
        return statistics.median(self.window_medians_us or self.values_us)

    @property
    def min_us(self) -> float:
        return min(self.values_us)

    @property
    def iqr_us(self) -> float:
        if self.count < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.values_us, n=4, method="inclusive")
        return q3 - q1

    def summary(self) -> TimerSummary:
        """What a record keeps of these samples."""
        low, high = self.interval_us
        return TimerSummary(self.timer, self.median_us, self.iqr_us, self.min_us, low, high, self.count)


# The host clock the samplers read (seconds): the timers take another as `clock` (tests pass a fake one).
Clock = Callable[[], float]
HOST_CLOCK: Clock = time.perf_counter


def warm_up(fn: Callable[[], object], seconds: float, sync: Callable[[], None]) -> int:
    """Call `fn` until `seconds` have passed (at least once); returns the number of calls."""
    calls = 0
    deadline = time.perf_counter() + seconds
    while calls == 0 or time.perf_counter() < deadline:
        fn()
        sync()
        calls += 1
    return calls


def sample_window(fn: Callable[[], object], timer: str, seconds: float, clock: Clock = HOST_CLOCK) -> list[float]:
    """Samples of `timer` (EVENTS_TIMER, or HOST_TIMER for synchronous CPU calls) around back-to-back
    calls of `fn` for about `seconds`, at least one call; at most a window's share of MAX_SAMPLES. Event
    batches are sized to what is left of the window (one call first), so that a window of a slow call
    (1.5 ms for DeepSeek-V3's router at M = 16384 upcast) lasts about its time, not a batch of 16. The
    window's time, and HOST_TIMER's samples, are read from `clock`."""
    values: list[float] = []
    started = clock()
    deadline = started + seconds
    while not values or (clock() < deadline and len(values) < MAX_SAMPLES // MAX_EAGER_WINDOWS):
        if timer == EVENTS_TIMER:
            per_call_s = (clock() - started) / len(values) if values else math.inf
            left = (deadline - clock()) / per_call_s
            values.extend(_event_batch(fn, calls_per_launch=1, launches=max(1, min(EVENTS_BATCH, int(left)))))
        else:
            values.append(_host_sample(fn, clock))
    return values


def _host_sample(fn: Callable[[], object], clock: Clock = HOST_CLOCK) -> float:
    start = clock()
    fn()
    return (clock() - start) * 1e6


def _event_batch(launch: Callable[[], object], calls_per_launch: int, launches: int = EVENTS_BATCH) -> list[float]:
    """`launches` launches back to back, each between a pair of events; one synchronisation at the end. The
    events are recorded on a stream looked up once: `Event.record()` without one looks up the current
    stream in Python each time, host work that would fall inside every eager-latency sample."""
    stream = torch.cuda.current_stream()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(launches)]
    for start, end in pairs:
        start.record(stream)
        launch()
        end.record(stream)
    torch.cuda.synchronize()
    return [start.elapsed_time(end) * 1e3 / calls_per_launch for start, end in pairs]


def graph_unroll(per_call_us: float, multiple_of: int = 1) -> int:
    """Calls per captured graph so that one replay takes about GRAPH_TARGET_REPLAY_US, rounded to a
    multiple of `multiple_of` (so that rotating copies each run equally often per replay)."""
    calls = max(1, min(MAX_GRAPH_UNROLL, round(GRAPH_TARGET_REPLAY_US / max(per_call_us, 1e-3))))
    return multiple_of * max(1, round(calls / multiple_of))


def fit_graph_unroll(fn: Callable[[], object], upper_bound_us: float, multiple_of: int = 1) -> int:
    """Calls per graph so that one replay takes about GRAPH_TARGET_REPLAY_US of *device* time.

    `upper_bound_us` is any figure at least the device time per call, such as the eager latency. Where
    the eager latency is host-bound (small calls), it overstates the device time several times, and a
    graph sized from it is short: each replay's launch cost weighs on few calls (+2.5-4% at ~6 us per
    call on an H200), and where launching a replay costs the host more than the replay's GPU work, the
    GPU idles between replays and the idle time is timed (docs/validation.md: a 7.4 us call read
    10.6 us in one hot sweep). So the size is refined: time a few replays back to back; their per-call
    time is again an upper bound, tighter each round; grow the graph until it no longer grows. `fn`
    must have run eagerly before.
    """
    if multiple_of >= MAX_GRAPH_UNROLL:  # one rotation already holds as many calls as a graph is sized to
        return multiple_of
    unroll = graph_unroll(upper_bound_us, multiple_of)
    while True:
        per_call_us = _replays_per_call_us(fn, unroll)
        grown = graph_unroll(per_call_us, multiple_of)
        if grown <= unroll:
            return unroll
        unroll = grown


def capture_graph(fn: Callable[[], object], unroll: int) -> torch.cuda.CUDAGraph:
    """A CUDA graph of `unroll` calls of `fn`, replayed once so that its first timed replay is not its upload."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(unroll):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def _replays_per_call_us(fn: Callable[[], object], unroll: int) -> float:
    """Per-call time of SIZING_REPLAYS back-to-back replays of a graph of `unroll` calls."""
    return mean_time_us(capture_graph(fn, unroll).replay, SIZING_REPLAYS) / unroll


def mean_time_us(fn: Callable[[], object], repeats: int) -> float:
    """Mean time of `repeats` back-to-back calls of `fn`, between one pair of CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    stream = torch.cuda.current_stream()
    start.record(stream)
    for _ in range(repeats):
        fn()
    end.record(stream)
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / repeats


def time_graph(fn: Callable[[], object], rule: StoppingRule, unroll: int) -> Samples:
    """Capture `unroll` calls in a CUDA graph; time replays with events; report time per call.

    `fn` must have run eagerly before (lazy initialisation such as cuBLAS workspaces cannot be captured).
    """
    return time_graphs({None: (capture_graph(fn, unroll), unroll)}, rule)[None]


def time_graphs(
    graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, int]], rule: StoppingRule
) -> dict[Hashable, Samples]:
    """Device time per call of each captured graph (of the given number of calls), sampled in rounds until
    `rule` says each is done (`time_placed_graphs`, each graph its own unit)."""
    placed = time_placed_graphs({key: [graph] for key, graph in graphs.items()}, rule)
    return {key: Samples(GRAPH_TIMER, values[0], target_ci_rel=rule.target_ci_rel) for key, values in placed.items()}


def time_placed_graphs(
    units: dict[Hashable, list[tuple[torch.cuda.CUDAGraph, int]]], rule: StoppingRule
) -> dict[Hashable, list[tuple[float, ...]]]:
    """Device times per call of each unit's graphs (its placements: the same calls on other buffers, each
    graph of the given number of calls), sampled in rounds: one batch of replays of every placement of
    every unit still sampling, in turn, until `rule.done_placed` says a unit is done (its share of the
    elapsed time counted). The graphs compared at one point are thus sampled under the same device
    states: a drift of the clocks or the memory moves them alike. Batches are not made smaller where
    there are many graphs: on an H100, batches of 5 replays (16 / 3 placements) left the GPU idle between
    synchronisations, and up to 137 of 254 rows of a default sweep read noisy (17-33 with batches of 16)."""
    if not units:
        return {}
    batches = {
        key: [
            (graph.replay, unroll, max(MIN_GRAPH_BATCH, min(EVENTS_BATCH, int(GRAPH_BATCH_US / _replay_us(graph)))))
            for graph, unroll in graphs
        ]
        for key, graphs in units.items()
    }
    values: dict[Hashable, list[list[float]]] = {key: [[] for _ in graphs] for key, graphs in units.items()}
    started = time.perf_counter()
    pending = list(units)  # a unit done stays done: its samples no longer change, and its time only grows
    while pending := [
        key for key in pending if not rule.done_placed(values[key], (time.perf_counter() - started) / len(units))
    ]:
        for key in pending:
            for placed, (replay, unroll, launches) in zip(values[key], batches[key], strict=True):
                placed.extend(_event_batch(replay, calls_per_launch=unroll, launches=launches))
    return {key: [tuple(placed) for placed in unit_values] for key, unit_values in values.items()}


def _replay_us(graph: torch.cuda.CUDAGraph) -> float:
    return mean_time_us(graph.replay, 1)
