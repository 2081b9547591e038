"""The fleet report: ratios to the fleet's median and outlier verdicts, on made-up records of three
devices (the torchrun path itself is tests/test_measure_fleet.py)."""

from dataclasses import replace

import pytest

from gemmbench.analysis.fleet import OUTLIER, OUTLIER_MIN_POINTS, fleet_report
from gemmbench.errors import GemmbenchError
from gemmbench.records import OK, ClockSummary, Provenance, Record
from gemmbench.records.runfile import Run
from gemmbench.records.timers import GRAPH_TIMER, TimerSummary
from gemmbench.spec.cases import Case

DEVICES = ("node1:cuda:0", "node1:cuda:1", "node2:cuda:0")


def row(device, m, median_us, half_width_us=0.05, **values):
    case = Case("DeepSeek-V3", "router", "router", m, 256, 7168)
    timer = TimerSummary(
        GRAPH_TIMER, median_us, 0.1, median_us - 0.1, median_us - half_width_us, median_us + half_width_us, 100
    )
    return Record.for_case(
        case, "mm_out_dtype", OK, device=timer, rank=DEVICES.index(device), device_id=device, **values
    )


def run_of(times: dict[str, list[float]], **values) -> Run:
    rows = [row(d, m, t, **values) for d, ts in times.items() for m, t in zip((1, 2, 4, 8), ts, strict=True)]
    return Run(Provenance(), rows)


def test_a_device_slower_at_several_points_is_an_outlier():
    report = fleet_report(
        run_of(
            {
                DEVICES[0]: [6.0, 6.1, 6.2, 6.3],
                DEVICES[1]: [6.0, 6.1, 6.2, 6.3],
                DEVICES[2]: [6.6, 6.8, 6.9, 6.4],  # 10% slower at three points, 1.6% at one
            }
        )
    )
    verdicts = {d.device_id: (d.verdict, d.slower_points) for d in report.devices}
    assert verdicts[DEVICES[2]] == (OUTLIER, OUTLIER_MIN_POINTS)
    assert verdicts[DEVICES[0]] == ("ok", 0)
    slow = next(d for d in report.devices if d.device_id == DEVICES[2])
    assert slow.median_ratio == pytest.approx((6.6 / 6.0 + 6.9 / 6.2) / 2) and report.failing(5) == [slow]
    assert report.failing(20) == []


def test_a_layer_row_is_its_own_point_beside_the_gemm_alone():
    alone = run_of({device: [6.0, 6.1, 6.2, 6.3] for device in DEVICES})
    in_layer = run_of({device: [19.0, 19.1, 19.2, 19.3] for device in DEVICES}, context="norm")
    report = fleet_report(Run(Provenance(), alone.records + in_layer.records))
    assert len(report.points) == 2 * 4 * len(DEVICES)
    assert all(p.ratio == pytest.approx(1.0) for p in report.points)  # each against its own view's median
    assert {p.context for p in report.points} == {None, "norm"}


def test_a_difference_within_the_rows_own_interval_is_not_slower():
    report = fleet_report(
        run_of(
            {
                DEVICES[0]: [6.0, 6.0, 6.0, 6.0],
                DEVICES[1]: [6.5, 6.5, 6.5, 6.5],  # 8% slower, but each row's interval is +-0.5 us
                DEVICES[2]: [6.0, 6.0, 6.0, 6.0],
            },
            half_width_us=0.5,
        )
    )
    assert all(d.verdict == "ok" for d in report.devices)


def test_clocks_power_and_slowdowns_are_reported_beside_the_verdict():
    report = fleet_report(
        run_of(
            {d: [6.0] * 4 for d in DEVICES},
            clocks=ClockSummary(sm_clock_mhz=1500, power_w=690.0, throttle_reasons="sw_power_cap"),
        )
    )
    first = report.devices[0]
    assert (first.min_sm_clock_mhz, first.max_power_w, first.throttle_reasons) == (1500, 690.0, ["sw_power_cap"])


def test_a_run_that_is_not_a_fleet_check_is_refused():
    with pytest.raises(GemmbenchError, match="not a fleet"):
        fleet_report(run_of({DEVICES[0]: [6.0] * 4}))
    plain = Run(Provenance(), [replace(row(DEVICES[0], m, 6.0), device_id=None) for m in (1, 2)])
    with pytest.raises(GemmbenchError, match="timed rows of 1 device"):  # a plain sweep: one device
        fleet_report(plain)
    split_points = Run(Provenance(), [row(DEVICES[i % 2], m, 6.0) for i, m in enumerate((1, 2, 4, 8))])
    with pytest.raises(GemmbenchError, match="measured no point on more than one device"):
        fleet_report(split_points)


def test_a_group_run_is_refused_as_what_it_is():
    from gemmbench.records import GroupRecord

    group_run = Run(
        Provenance(), [], groups=[GroupRecord("DeepSeek-V4-Pro", "attention_inputs", 1, 7168, "mm_out_dtype", OK)]
    )
    with pytest.raises(GemmbenchError, match="is a group run \\(gemmbench group\\): fleet reads sweep runs"):
        fleet_report(group_run, "groups.json")
