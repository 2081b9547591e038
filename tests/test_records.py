import pytest
from samples import CASE, sample_records

from gemmbench.analysis.policy import accurate
from gemmbench.records import ERROR, OK, SKIPPED, Record, by_case, by_shape
from gemmbench.records.schema import from_row, to_row
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER, TimerSummary
from gemmbench.spec.cases import Case


def test_fp32_accuracy_threshold():
    ok, skipped, error = sample_records()
    assert [accurate(r.status, r.rel_err) for r in (ok, skipped, error)] == [True, False, False]
    assert ok.best_time_us == 5.6 and ok.throttled and not skipped.throttled


def test_a_record_is_its_case_then_its_results():
    record = sample_records()[0]
    assert record.case == CASE and (record.m, record.n, record.k) == (1, 256, 7168)


def test_timer_summaries_spread_into_flat_columns_and_read_back():
    latency = TimerSummary(EVENTS_TIMER, 27.5, 1.0, 26.0, 27.0, 28.0, 100)
    device = TimerSummary(GRAPH_TIMER, 5.6, 0.1, 5.5, 5.55, 5.65, 50)
    record = Record.for_case(CASE, "mm_out_dtype", OK, latency=latency, device=device)
    row = to_row(record)
    assert row["device_median_us"] == 5.6 and row["latency_ci_high_us"] == 28.0 and row["device_samples"] == 50
    assert from_row(Record, row, "test") == record
    assert Record.for_case(CASE, "upcast", SKIPPED, "no CUDA device").device is None


def test_interval_falls_back_to_the_iqr_for_runs_without_a_ci():
    assert TimerSummary(GRAPH_TIMER, 10.0, 2.0, 9.0).interval_us == (9.0, 11.0)
    assert TimerSummary(GRAPH_TIMER, 10.0, 2.0, 9.0, 9.5, 10.4).interval_us == (9.5, 10.4)


def test_grouping_keeps_first_seen_order():
    other = Case("DeepSeek-V3", "router", "router", 16, 256, 7168)
    records = [Record.for_case(c, b, ERROR, "x") for c in (CASE, other) for b in ("a", "b")]
    assert list(by_case(records)) == [CASE, other]
    assert [len(group) for group in by_case(records).values()] == [2, 2]
    assert list(by_shape(records)) == [("DeepSeek-V3", "router", 256, 7168, None)]
    assert len(by_shape(records)[(*CASE.shape_key, None)]) == 4


def test_a_shape_in_its_layer_is_a_view_of_its_own_after_the_views_seen_first():
    in_layer = [Record.for_case(CASE, b, ERROR, "x", context="norm") for b in ("a", "b")]
    alone = [Record.for_case(CASE, b, ERROR, "x") for b in ("a", "b")]
    views = by_shape(in_layer + alone)
    assert list(views) == [(*CASE.shape_key, "norm"), (*CASE.shape_key, None)]
    assert views[(*CASE.shape_key, "norm")] == in_layer and all(r.in_layer for r in in_layer)
    assert not any(r.in_layer for r in alone) and alone[0].view == (*CASE.shape_key, None)
    assert list(by_case(in_layer + alone)) == [CASE]  # one point: its rows alone and in its layer


@pytest.mark.parametrize(
    "tail, whole",
    [
        ('1,"a reason\nover two lines",3', True),  # the last record whole, without its newline
        ('1,2,3\n4,"a reason cut', False),  # cut inside a quoted field
        ("1,2,3\n4,5", False),  # cut between fields
        ("1,2,3\n", True),
    ],
)
def test_a_csv_exports_last_record_is_cut_short_only_where_it_lacks_fields(tail, whole):
    from gemmbench.records.table import _whole_rows

    text, was_whole = _whole_rows("a,b,c\n" + tail)
    assert was_whole == whole and (text == "a,b,c\n" + tail) == whole
