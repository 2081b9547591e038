import torch

from gemmbench.records import ClockSummary
from gemmbench.timing.clocks import ClockReading, ClockWatch, assess, slowdown_names

MAX_SM = 1980


def reading(sm=1980, mem=3201, temp=50, power=300.0, reasons=0):
    return ClockReading(sm, mem, temp, power, reasons)


def test_a_steady_point_is_not_throttled():
    values = assess(reading(temp=50), reading(temp=55, power=420.0), MAX_SM)
    assert values == ClockSummary(
        sm_clock_mhz=1980, mem_clock_mhz=3201, temp_c=55, power_w=420.0, throttle_reasons=None, throttled=False
    )


def test_a_sagging_clock_is_throttled():
    values = assess(reading(sm=1980), reading(sm=1700), MAX_SM)
    assert values.throttled and values.sm_clock_mhz == 1700


def test_power_and_thermal_reasons_throttle_but_idle_does_not():
    assert slowdown_names(0x1 | 0x2) == []  # GPU idle, application clocks
    values = assess(reading(reasons=0x4), reading(reasons=0x40), MAX_SM)
    assert values.throttled and values.throttle_reasons == "sw_power_cap,hw_thermal"


def test_no_clock_watch_on_the_cpu():
    watch = ClockWatch(torch.device("cpu"))
    assert watch.unavailable and watch.read() is None and watch.provenance() == {"nvml": watch.unavailable}
