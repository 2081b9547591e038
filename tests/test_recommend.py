from gemmbench.analysis.policy import PREFERENCE
from gemmbench.analysis.recommend import recommend
from gemmbench.output.recommend import recommendation_dicts, recommendation_summary
from gemmbench.records import ERROR, OK, Record, TimerSummary
from gemmbench.spec.cases import Case


def spans(rec):
    return [(r.first_m, r.last_m, r.backend) for r in rec.ranges]


def row(backend, m, time_us, rel_err=1e-6, status=OK):
    case = Case("DeepSeek-V3", "router", "router", m, 256, 7168)
    if status != OK:
        return Record.for_case(case, backend, status, "out of memory")
    return Record.for_case(case, backend, OK, rel_err=rel_err, device=TimerSummary("cuda_graph", time_us))


def test_crossover_becomes_m_ranges():
    records = []
    for m in (1, 2, 4, 8, 16, 64):
        records.append(row("special", m, 3.0 if m <= 8 else 9.0))
        records.append(row("mm_out_dtype", m, 5.0))
    (rec,) = recommend(records)
    assert spans(rec) == [(1, 8, "special"), (16, 64, "mm_out_dtype")]
    assert recommendation_summary(rec) == "M <= 8: special; 8 < M <= 64: mm_out_dtype"


def test_bf16_rounding_is_excluded_unless_the_tolerance_admits_it():
    records = [row("linear_cast", 1, 2.0, rel_err=1.5e-3), row("mm_out_dtype", 1, 5.0)]
    (strict,) = recommend(records)
    assert spans(strict) == [(1, 1, "mm_out_dtype")] and strict.excluded["linear_cast"] == records[0]
    assert recommendation_summary(strict) == "M <= 1: mm_out_dtype"
    assert recommendation_dicts([strict])[0]["excluded"] == {"linear_cast": "rel_err 1.5e-03 > 0.0001"}
    (loose,) = recommend(records, tolerance=1e-2)
    assert spans(loose) == [(1, 1, "linear_cast")]


def test_ties_go_to_the_preferred_backend_and_name_the_runner_up():
    records = []
    for m, (plain, ext) in zip((1, 2, 4, 8), ((5.0, 5.05), (5.1, 5.0), (5.0, 5.1), (5.12, 5.0)), strict=True):
        records += [row("cublas_ext", m, ext), row("mm_out_dtype", m, plain)]
    (rec,) = recommend(records)
    assert spans(rec) == [(1, 8, "mm_out_dtype")]  # within 3% at every M: the plain torch call
    assert rec.tied == {1: ["cublas_ext"], 2: ["cublas_ext"], 4: ["cublas_ext"], 8: ["cublas_ext"]}
    assert PREFERENCE[0] == "mm_out_dtype"


def test_a_backend_that_qualified_somewhere_is_not_excluded():
    records = [row("x", 1, 1.0), row("x", 2, 1.0, status=ERROR), row("y", 1, 2.0), row("y", 2, 2.0)]
    (rec,) = recommend(records)
    assert rec.excluded == {} and spans(rec) == [(1, 1, "x"), (2, 2, "y")]
    assert rec.errors_by_backend() == {"x": ([2], "out of memory")}  # said beside the choice, not hidden


def test_three_ranges_and_errors():
    records = [
        row("x", 1, 1.0),
        row("y", 1, 2.0),
        row("x", 2, 5.0),
        row("y", 2, 2.0),
        row("x", 4, 1.0),
        row("y", 4, 2.0),
        row("z", 1, 0.0, status=ERROR),
    ]
    (rec,) = recommend(records)
    assert spans(rec) == [(1, 1, "x"), (2, 2, "y"), (4, 4, "x")] and list(rec.excluded) == ["z"]
    as_json = recommendation_dicts([rec])[0]
    assert as_json["summary"] == recommendation_summary(rec) == "M <= 1: x; 1 < M <= 2: y; 2 < M <= 4: x"
    assert as_json["excluded"] == {"z": "error: out of memory"}
    assert [r["rule"] for r in as_json["ranges"]] == ["M <= 1", "1 < M <= 2", "2 < M <= 4"]
