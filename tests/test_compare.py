import pytest

from gemmbench.analysis.compare import FASTER, NOISY, NOT_TIMED, SAME, SLOWER, compare_runs
from gemmbench.records import ERROR, OK, ClockSummary, Provenance, Record, TimerSummary
from gemmbench.records.runfile import Run
from gemmbench.spec.cases import Case

CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)


def timed(backend, median, half_ci=0.05, m=1, **flags):
    case = Case(CASE.model, CASE.gemm, CASE.role, m, CASE.n, CASE.k)
    return Record.for_case(
        case,
        backend,
        OK,
        rel_err=1e-6,
        device=TimerSummary("cuda_graph", median, ci_low_us=median - half_ci, ci_high_us=median + half_ci),
        latency=TimerSummary("cuda_events", median + 20),
        **flags,
    )


def run(*records, device="NVIDIA H100 80GB HBM3"):
    return Run(Provenance(device_name=device, started="2026-11-28"), list(records))


def verdicts(base, new):
    return {row.base.backend: row.verdict for row in compare_runs(base, new).rows}


def test_verdicts_faster_slower_same_noisy():
    base = run(timed("a", 10.0), timed("b", 10.0), timed("c", 10.0), timed("d", 10.0, half_ci=2.0), timed("e", 10.0))
    new = run(timed("a", 8.0), timed("b", 12.0), timed("c", 10.2), timed("d", 12.0), timed("e", 10.8, noisy=True))
    assert verdicts(base, new) == {"a": FASTER, "b": SLOWER, "c": SAME, "d": NOISY, "e": NOISY}


def test_a_flagged_row_still_shows_a_large_change():
    assert verdicts(run(timed("a", 10.0)), run(timed("a", 13.0, noisy=True))) == {"a": SLOWER}


def test_throttled_rows_are_noisy_not_regressions():
    # 12%: what a power-capped row moved between two runs of the same sweep on an H200
    assert verdicts(run(timed("a", 10.0)), run(timed("a", 11.2, clocks=ClockSummary(throttled=True)))) == {"a": NOISY}


def test_rows_only_in_one_run_are_listed_and_untimed_rows_are_not_judged():
    base = run(timed("a", 10.0), timed("gone", 5.0), Record.for_case(CASE, "err", ERROR, "out of memory"))
    new = run(timed("a", 10.0), timed("added", 5.0, m=16), timed("err", 5.0))
    comparison = compare_runs(base, new)
    assert [r.backend for r in comparison.only_base] == ["gone"]
    assert [(r.backend, r.m) for r in comparison.only_new] == [("added", 16)]
    assert {row.base.backend: row.verdict for row in comparison.rows} == {"a": SAME, "err": NOT_TIMED}
    assert comparison.counts()[SAME] == 1 and comparison.geomean_ratio == pytest.approx(1.0)


def test_regressions_above_a_threshold():
    comparison = compare_runs(run(timed("a", 10.0), timed("b", 10.0)), run(timed("a", 10.6), timed("b", 13.0)))
    assert [r.base.backend for r in comparison.regressions(5.0)] == ["a", "b"]
    assert [r.base.backend for r in comparison.regressions(10.0)] == ["b"]


def test_runs_from_different_gpus_compare():
    comparison = compare_runs(run(timed("a", 10.0)), run(timed("a", 5.0), device="NVIDIA B200"))
    assert comparison.rows[0].verdict == FASTER
    assert comparison.new_provenance.device_name == "NVIDIA B200"


def test_a_fleet_compared_with_a_one_device_run_is_compared_device_by_device():
    from dataclasses import replace

    plain = run(timed("a", 10.0))
    fleet = run(*(replace(timed("a", median), device_id=f"node:cuda:{i}") for i, median in enumerate((10.0, 13.0))))
    comparison = compare_runs(plain, fleet)
    assert [(row.new.device_id, row.verdict) for row in comparison.rows] == [
        ("node:cuda:0", SAME),
        ("node:cuda:1", SLOWER),
    ]
    assert [row.base.device_id for row in compare_runs(fleet, plain).rows] == ["node:cuda:0", "node:cuda:1"]
    other = run(*(replace(timed("a", 10.0), device_id=f"node:cuda:{i}") for i in (1, 2)))
    by_device = compare_runs(fleet, other)
    assert [(r.base.device_id, r.verdict) for r in by_device.rows] == [("node:cuda:1", FASTER)]
    assert [r.device_id for r in by_device.only_base] == ["node:cuda:0"]
    assert [r.device_id for r in by_device.only_new] == ["node:cuda:2"]
