import pytest

from gemmbench import timing


def test_statistics_from_samples():
    samples = timing.Samples("host_clock", (1.0, 2.0, 3.0, 4.0, 100.0))
    assert samples.count == 5 and samples.median_us == 3.0 and samples.min_us == 1.0
    assert samples.iqr_us == pytest.approx(4.0 - 2.0)


def test_single_sample_has_zero_iqr():
    assert timing.Samples("simulated", (5.0,)).iqr_us == 0.0


def test_host_timer_takes_at_least_the_minimum_samples_even_with_no_budget():
    calls = []
    samples = timing.time_host(lambda: calls.append(1), budget_s=0.0)
    assert samples.count == len(calls) == timing.MIN_SAMPLES
    assert samples.timer == timing.HOST_TIMER and all(v >= 0 for v in samples.values_us)


def test_host_timer_stops_at_the_sample_cap():
    assert timing.time_host(lambda: None, budget_s=60.0).count == timing.MAX_SAMPLES


def test_warm_up_runs_at_least_once():
    calls = []
    assert timing.warm_up(lambda: calls.append(1), 0.0, lambda: None) == 1 == len(calls)


@pytest.mark.parametrize("per_call_us, unroll", [(5.0, 32), (20.0, 10), (200.0, 1), (5000.0, 1), (0.0, 32)])
def test_graph_unroll_targets_a_replay_length(per_call_us, unroll):
    assert timing.graph_unroll(per_call_us) == unroll
