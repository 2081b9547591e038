import torch

from gemmbench.records import ClockSummary
from gemmbench.timing.clocks import ClockReading, ClockWatch, assess, slowdown_names

MAX_SM = 1980


def reading(sm=1980, mem=3201, temp=50, power=300.0, reasons=0):
    return ClockReading(sm, mem, temp, power, reasons)


def test_a_steady_point_is_not_throttled():
    values = assess([reading(temp=50), reading(temp=55, power=420.0)], MAX_SM)
    assert values == ClockSummary(
        sm_clock_mhz=1980, mem_clock_mhz=3201, temp_c=55, power_w=420.0, throttle_reasons=None, throttled=False
    )


def test_a_sagging_clock_is_throttled():
    values = assess([reading(sm=1980), reading(sm=1700)], MAX_SM)
    assert values.throttled and values.sm_clock_mhz == 1700


def test_thermal_and_hardware_reasons_throttle_but_idle_does_not():
    assert slowdown_names(0x1 | 0x2) == []  # GPU idle, application clocks
    values = assess([reading(reasons=0x4), reading(reasons=0x40)], MAX_SM)
    assert values.throttled and values.throttle_reasons == "sw_power_cap,hw_thermal"
    assert assess([reading(reasons=0x8)], MAX_SM).throttled  # hw_slowdown


def test_the_power_cap_flags_a_row_only_through_the_clock_it_lowered():
    # As on an H100: the power cap reported while the SM clock read 1965 of 1980 MHz (0.8% down).
    capped = assess([reading(reasons=0x4), reading(sm=1965, reasons=0x4)], MAX_SM)
    assert capped.throttle_reasons == "sw_power_cap" and not capped.throttled
    assert assess([reading(sm=1900, reasons=0x4)], MAX_SM).throttled  # 4% down: beyond the spread
    assert not assess([reading(sm=1930)], MAX_SM).throttled  # 2.5% down, no reason: within it


def test_no_clock_watch_on_the_cpu():
    watch = ClockWatch(torch.device("cpu"))
    assert watch.unavailable and watch.read() is None and watch.provenance() == {"nvml": watch.unavailable}


def test_a_row_covers_the_rounds_of_its_point_not_the_points_timed_before_it(monkeypatch, small_case):
    """Readings: each point's start and end. Every row of a point, alone and in its layer, is sampled in the
    same rounds (measure/layers.py), so a thermal limit seen while the first point ran flags all its rows, and
    none of the second point's."""
    from dataclasses import replace

    from fakes import Fake
    from samples import measure_all

    from gemmbench.backends import REGISTRY
    from gemmbench.measure import bench as bench_module
    from gemmbench.measure.bench import MeasureOptions
    from gemmbench.timing import timers

    readings = iter([reading(), reading(reasons=0x40), reading(), reading()])
    monkeypatch.setattr(bench_module.Bench, "read_clocks", lambda self: next(readings))
    monkeypatch.setattr(bench_module.ClockWatch, "max_sm_mhz", MAX_SM, raising=False)
    fast = MeasureOptions(warmup_s=0.0, target=timers.Target(budget_s=0.001, min_time_s=0.0), eager_windows=1)
    cases = [small_case, replace(small_case, m=8)]
    rows = measure_all(cases, [REGISTRY["upcast"], Fake()], torch.device("cpu"), fast)
    assert [(r.m, r.backend) for r in rows] == [(4, "upcast"), (4, "fake"), (8, "upcast"), (8, "fake")]
    assert all(r.throttled and r.clocks.throttle_reasons == "hw_thermal" for r in rows[:2])
    assert not any(r.throttled or r.clocks.throttle_reasons for r in rows[2:])
    assert next(readings, None) is None  # two readings a point, whatever its number of rows
