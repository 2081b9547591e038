import math
import random
import statistics
import time

import pytest
from fakes import FAKE_TIMER

from gemmbench.measure.bench import placement_samples
from gemmbench.records.timers import HOST_TIMER
from gemmbench.timing import timers as timing


def sample_adaptively(batch, rule, clock=time.perf_counter) -> tuple[float, ...]:
    """A stopping rule driven alone: samples from repeated `batch()` calls until `rule` says done, its time
    read from `clock` (the timers drive their rules so, between their samples)."""
    values: list[float] = []
    started = clock()
    while not rule.done(values, clock() - started):
        values.extend(batch())
    return tuple(values)


def test_statistics_from_samples():
    samples = timing.Samples("host_clock", (1.0, 2.0, 3.0, 4.0, 100.0))
    assert samples.count == 5 and samples.median_us == 3.0 and samples.min_us == 1.0
    assert samples.iqr_us == pytest.approx(4.0 - 2.0)


def test_single_sample_has_zero_iqr():
    assert timing.Samples(FAKE_TIMER, (5.0,)).iqr_us == 0.0


def test_sampling_takes_at_least_the_minimum_samples_even_with_no_budget():
    calls = []
    values = sample_adaptively(lambda: calls.append(1) or [1.0], timing.Target(budget_s=0.0))
    assert len(values) == len(calls) == timing.MIN_SAMPLES


def test_sampling_stops_at_the_sample_cap():
    seen = []
    spread = lambda: seen.append(1) or [float(len(seen) % 3)]  # noqa: E731 - never converges
    assert len(sample_adaptively(spread, timing.Target(ci_rel=0.0, budget_s=60.0))) == timing.MAX_SAMPLES


def test_warm_up_runs_at_least_once():
    calls = []
    assert timing.warm_up(lambda: calls.append(1), 0.0, lambda: None) == 1 == len(calls)


@pytest.mark.parametrize("per_call_us, unroll", [(5.0, 40), (20.0, 10), (200.0, 1), (5000.0, 1), (0.0, 64)])
def test_graph_unroll_targets_a_replay_length(per_call_us, unroll):
    assert timing.graph_unroll(per_call_us) == unroll


@pytest.mark.parametrize("per_call_us, copies, unroll", [(20.0, 3, 9), (20.0, 35, 35), (5000.0, 2, 2), (5.0, 4, 40)])
def test_graph_unroll_is_a_multiple_of_the_rotated_copies(per_call_us, copies, unroll):
    assert timing.graph_unroll(per_call_us, multiple_of=copies) == unroll


def exact_coverage(n: int, low: int, high: int) -> float:
    """P(X(low) <= median <= X(high)) for 0-based ranks: the chance that between low+1 and high of n
    samples fall below the median, B ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, b) for b in range(low + 1, high + 1)) / 2**n


@pytest.mark.parametrize("n", [20, 50, 100, 1000, 4000])
def test_median_ci_covers_95_percent_with_the_narrowest_symmetric_ranks(n):
    low, high = timing.median_ci_ranks(n)
    assert low + high == n - 1  # symmetric
    assert exact_coverage(n, low, high) >= 0.95
    assert exact_coverage(n, low + 1, high - 1) < 0.95  # one rank narrower would not cover


def test_median_ci_uses_the_extremes_for_tiny_samples():
    assert timing.median_ci_ranks(5) == (0, 4) and timing.median_ci_ranks(1) == (0, 0)
    assert timing.median_ci(list(range(100, 0, -1))) == (40, 61)


def test_samples_flag_a_missed_target():
    spread = timing.Samples("cuda_graph", tuple(float(v) for v in range(1, 101)), target_ci_rel=0.01)
    tight = timing.Samples("cuda_graph", (10.0,) * 50, target_ci_rel=0.01)
    assert spread.noisy and spread.ci_rel > 0.1
    assert not tight.noisy and tight.ci_rel == 0.0
    assert not timing.Samples(FAKE_TIMER, (1.0,)).noisy


def test_sampling_stops_once_the_ci_meets_the_target():
    values = sample_adaptively(lambda: [1.0], timing.Target(ci_rel=10.0, budget_s=60.0, min_time_s=0.0))
    assert len(values) == timing.MIN_SAMPLES_FOR_CI


class FakeClock:
    """A host clock that moves only when a call made by `call_taking` runs: by its `seconds` each time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def call_taking(self, seconds: float, result=None):
        def call():
            self.now += seconds
            return result

        return call


def test_sampling_lasts_at_least_the_minimum_time():
    clock = FakeClock()
    batch = clock.call_taking(0.001, [1.0])  # a steady 1 us sample, each batch 1 ms of the clock
    values = sample_adaptively(batch, timing.Target(ci_rel=10.0, budget_s=60.0, min_time_s=0.05), clock)
    assert clock.now >= 0.05 and len(values) == 50  # steady from the start, so it stops at the minimum time


def test_sampling_goes_on_while_the_samples_still_drift():
    calls = iter(range(10_000))
    # A call that reads 10 us for its first 15 samples (clocks ramping), then 5 us: the interval of the
    # median meets a loose target at 20 samples, but the two halves are apart until few slow ones are left.
    values = sample_adaptively(
        lambda: [10.0 if next(calls) < 15 else 5.0], timing.Target(ci_rel=0.2, budget_s=60.0, min_time_s=0.0)
    )
    assert len(values) > 2 * timing.MIN_SAMPLES_FOR_CI and statistics.median(values) == 5.0
    assert timing.settled(list(values), 0.005) and not timing.settled([10.0] * 15 + [5.0] * 15, 0.005)


def test_windowed_samples_take_their_interval_from_the_window_medians():
    steady = timing.Samples.from_windows("cuda_events", [[10.0, 10.1, 9.9], [10.2, 10.0], [9.8, 10.1]])
    assert steady.window_medians_us == (10.0, 10.1, 9.95) and steady.ci_us == (9.95, 10.1)
    assert not steady.noisy and steady.count == 7
    moved = timing.Samples.from_windows("cuda_events", [[24.0, 24.2], [40.0, 41.0], [25.0]])
    assert moved.ci_us == (24.1, 40.5) and moved.noisy  # the host's state moved between windows
    # With more windows the interval is the median's over them: one window of a host hiccup among nine
    # no longer decides it (the range is the interval up to eight windows).
    hiccup = [[30.0]] + [[10.0]] * 8
    assert timing.Samples.from_windows("cuda_events", hiccup[:8]).noisy
    assert timing.Samples.from_windows("cuda_events", hiccup).ci_us == (10.0, 10.0)


def adversarial_sample_sets(seed: int):
    """Sample sets built to pull a median away from its interval: windows of very different sizes and
    levels (one large window of fast calls among slow ones), bimodal values, ties, single samples."""
    rng = random.Random(seed)
    for _ in range(300):
        windows = []
        for _ in range(rng.randint(1, 12)):
            level = rng.choice([1.0, 5.0, 250.0, 14000.0]) * rng.uniform(0.9, 1.1)
            size = rng.choice([1, 2, 3, rng.randint(1, 400)])
            windows.append([rng.choice([level, level * rng.uniform(0.5, 3.0)]) for _ in range(size)])
        yield windows


@pytest.mark.parametrize("seed", range(5))
def test_every_median_lies_inside_its_own_interval(seed):
    for windows in adversarial_sample_sets(seed):
        for samples in (
            timing.Samples.from_windows("cuda_events", windows),
            timing.Samples("cuda_graph", tuple(v for window in windows for v in window)),
            placement_samples([tuple(window) for window in windows], 0.01),  # a device time in placements
        ):
            low, high = samples.ci_us
            assert low <= samples.median_us <= high, (windows, samples.median_us, (low, high))
            summary = samples.summary()
            assert summary.interval_us[0] <= summary.median_us <= summary.interval_us[1]


def test_a_device_time_in_placements_takes_the_median_and_interval_of_their_medians():
    # Six placements of one call, one of them a placement that reads 10% slower (where its buffers landed).
    placed = [(7.0, 7.01, 6.99)] * 5 + [(7.7, 7.71, 7.69)]
    samples = placement_samples(placed, 0.01)
    assert samples.window_medians_us == (7.0,) * 5 + (7.7,) and samples.count == 18
    assert samples.median_us == 7.0 and samples.ci_us == (7.0, 7.7) and samples.noisy
    # What a record keeps: that interval widened by what a rerun in another process reads beyond it.
    margin = timing.RERUN_MARGIN_REL
    assert samples.summary().interval_us == pytest.approx((7.0 * (1 - margin), 7.7 * (1 + margin)))
    steady = placement_samples([(7.0, 7.001)] * 3, 0.01)
    assert not steady.noisy and steady.summary().interval_us != steady.ci_us  # noisy: judged before widening
    assert placement_samples([(7.0, 7.02, 6.9)], 0.01).ci_us == timing.median_ci((7.0, 7.02, 6.9))  # one: its own
    assert placement_samples([], 0.01) is None


def test_a_large_window_of_fast_calls_does_not_take_the_windowed_median():
    samples = timing.Samples.from_windows("cuda_events", [[255.0] * 500, [12203.0], [16055.0], [14000.0]])
    assert samples.median_us == (12203.0 + 14000.0) / 2 and samples.ci_us == (255.0, 16055.0)


def test_a_window_samples_for_about_its_time_and_at_least_once():
    assert len(timing.sample_window(lambda: None, HOST_TIMER, 0.0)) == 1
    clock = FakeClock()
    values = timing.sample_window(clock.call_taking(0.001), HOST_TIMER, 0.02, clock)
    assert len(values) == 20 and values == pytest.approx([1000.0] * 20)  # 1 ms calls, read as 1000 us


def test_stopping_rules_are_objects_the_samplers_take():
    from gemmbench.timing.stopping import EagerWindows, FixedCount, FixedTime

    clock = FakeClock()
    calls = iter(range(10_000))
    counted = sample_adaptively(lambda: [10.0 + next(calls) % 3], FixedCount(37), clock)
    assert len(counted) == 37 and FixedCount(37).target_ci_rel is None
    clock = FakeClock()
    timed = sample_adaptively(clock.call_taking(0.001, [10.0]), FixedTime(0.02), clock)
    assert len(timed) == 20  # 1 ms a sample for 20 ms
    # Over placements: the sets together cost what one did.
    assert not FixedCount(50).done_placed([[1.0] * 9] * 5 + [[1.0] * 8], 0.0)
    assert FixedCount(50).done_placed([[1.0] * 9] * 6, 0.0)
    assert not FixedCount(6).done_placed([[1.0] * 4] * 6, 0.0) and FixedCount(6).done_placed([[1.0] * 5] * 6, 0.0)
    assert not FixedTime(0.3).done_placed([[1.0] * 5] * 3, 0.29) and FixedTime(0.3).done_placed([[1.0] * 5] * 3, 0.3)
    windows = EagerWindows(least=6, most=8)
    never = lambda: pytest.fail("steadiness asked before the least windows")  # noqa: E731
    assert windows.wants_more(5, never) and not windows.wants_more(6, lambda: False)
    assert windows.wants_more(7, lambda: True) and not windows.wants_more(8, lambda: True)


def test_a_sweep_plan_samples_a_fixed_count_where_asked():
    from gemmbench.errors import UsageError
    from gemmbench.measure.session import plan_sweep
    from gemmbench.timing.stopping import FixedCount, Target

    assert plan_sweep(shapes=["8x64"], m=[1], device="cpu", samples=40).options.target == FixedCount(40)
    assert isinstance(plan_sweep(shapes=["8x64"], m=[1], device="cpu").options.target, Target)
    with pytest.raises(UsageError, match="samples"):
        plan_sweep(shapes=["8x64"], m=[1], device="cpu", samples=0)


def test_the_row_stops_once_its_placements_medians_agree():
    """Target over placements judges the interval of the row's median (over its placements' medians), not each
    placement's own: six placements of one batch each whose medians agree stop, though each placement alone
    is too short for its own interval."""
    from gemmbench.timing.stopping import Target

    rule = Target(ci_rel=0.01, budget_s=0.2, min_time_s=0.01)
    agree = [[10.0 + 0.01 * (i % 3) for i in range(16)] for _ in range(6)]
    assert not rule.done(agree[0], 0.02)  # one placement alone: fewer samples than its interval needs
    assert rule.done_placed(agree, 0.02)
    assert not rule.done_placed(agree, 0.005)  # before the minimum time
    apart = [[10.0 * (1 + 0.01 * p)] * 16 for p in range(6)]  # medians 5% apart, each placement steady
    assert not rule.done_placed(apart, 0.02)  # each placement still too short to say it is steady
    assert rule.done_placed([values * 2 for values in apart], 0.02)  # now it is: more samples would not help
    assert rule.done_placed(apart, 0.2)  # the budget
    drifting = [[10.0] * 8 + [10.5] * 8 for _ in range(6)]  # every placement's second half 5% slower
    assert not rule.done_placed(drifting, 0.02)
    assert rule.done_placed([agree[0]], 0.02) == rule.done(agree[0], 0.02)
    assert not rule.done_placed([[10.0] * 4] * 6, 0.1)  # too few samples to report even past the budget


class _FakeGraph:
    """A captured graph whose replays read `per_call_us` each, for timers.time_placed_graphs on the CPU."""

    def __init__(self, per_call_us: float):
        self.per_call_us = per_call_us
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1


def test_placed_graphs_are_sampled_in_rounds_until_each_units_rule_is_met(monkeypatch):
    from gemmbench.timing import timers
    from gemmbench.timing.stopping import FixedCount, Target

    def event_batch(launch, calls_per_launch, launches):
        for _ in range(launches):
            launch()
        return [launch.__self__.per_call_us] * launches

    monkeypatch.setattr(timers, "_event_batch", event_batch)
    monkeypatch.setattr(timers, "_replay_us", lambda graph: 100.0)  # 16 replays a batch
    agree = [(_FakeGraph(10.0), 4) for _ in range(6)]
    apart = [(_FakeGraph(10.0 * (1 + 0.01 * p)), 4) for p in range(6)]
    rule = Target(ci_rel=0.01, budget_s=60.0, min_time_s=0.0)
    samples = timers.time_placed_graphs({"agree": agree, "apart": apart}, rule)
    assert [len(values) for values in samples["agree"]] == [timers.EVENTS_BATCH] * 6  # one round
    assert [len(values) for values in samples["apart"]] == [2 * timers.EVENTS_BATCH] * 6  # until each is narrow
    assert [graph.replays for graph, _ in apart] == [2 * timers.EVENTS_BATCH] * 6
    assert samples["apart"][5][0] == pytest.approx(10.5)
    counted = timers.time_placed_graphs({"unit": [(_FakeGraph(3.0), 1) for _ in range(3)]}, FixedCount(90))
    assert [len(values) for values in counted["unit"]] == [32, 32, 32]  # 30 each, in whole batches
    single = timers.time_graphs({"a": (_FakeGraph(7.0), 2)}, FixedCount(20))["a"]
    assert single.count == 32 and single.median_us == 7.0
