from dataclasses import replace
from itertools import takewhile

import pytest
from rich.console import Console
from samples import timed

from gemmbench.output import format as format_output
from gemmbench.output import kernels as kernels_output
from gemmbench.output import sweep as sweep_output
from gemmbench.records import ERROR, SKIPPED, KernelRun, Provenance, Record
from gemmbench.spec.cases import Case

CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)


def text_of(renderable) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def ok(backend, device_us, rel_err, kernels=()):
    return timed(backend, device_us, rel_err, kernels=tuple(KernelRun(k, 1.0) for k in kernels) or None)


def test_fastest_fp32_accurate_backend_is_highlighted_not_the_bf16_one():
    records = [ok("mm_out_dtype", 5.6, 1.4e-6), ok("linear_cast", 4.0, 1.5e-3), ok("upcast", 12.8, 1.1e-7)]
    assert sweep_output._fastest_accurate(records) == "mm_out_dtype"
    cell = sweep_output._cell(records[0], fastest=True)
    assert cell.plain == f"5.6 µs{sweep_output.WINNER_MARK} 1.4e-06\neager 25.6 µs" and "green" in str(cell.style)
    assert sweep_output._cell(records[1], fastest=False).plain.startswith("4 µs 1.5e-03")  # no mark


def test_sweep_table_shows_times_errors_and_reasons():
    records = [
        ok("mm_out_dtype", 5.6, 1.4e-6),
        Record.for_case(CASE, "upcast", SKIPPED, "no CUDA device"),
        Record.for_case(CASE, "linear_cast", ERROR, "out of memory"),
    ]
    text = text_of(sweep_output.sweep_tables(records))
    assert "DeepSeek-V3 router: x[M, 7168] @ w[256, 7168]ᵀ" in text
    assert "5.6 µs" in text and "skipped" in text and "error" in text
    assert "skipped (1 row) — no CUDA device: upcast" in text and "error (1 row) — out of memory: linear_cast" in text
    assert "CUDA-graph replay" in text


def test_units_scale_for_people():
    assert (
        format_output.format_us(5.634) == "5.63 µs"
        and format_output.format_us(1520.0) == "1.52 ms"
        and format_output.format_us(None) == "–"
    )


def test_kernel_tables_name_the_shared_gemm_kernel():
    gemm = "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT"
    records = [
        ok("mm_out_dtype", 5.6, 1e-6, [gemm, "splitKreduce_kernel"]),
        ok("cublas_ext", 5.6, 1e-6, [gemm]),
        ok("linear_cast", 4.0, 1e-3, ["nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT"]),
    ]
    text = text_of(kernels_output.kernel_tables(records))
    assert f"same GEMM kernel: mm_out_dtype, cublas_ext → {gemm}" in text
    assert "splitk_reduce" in text and "bf16·bf16→bf16 (acc fp32)" in text


def test_kernel_views_show_rows_alone_and_one_line_for_the_rows_in_a_layer():
    gemm = "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT"
    alone = ok("mm_out_dtype", 5.6, 1e-6, [gemm])
    in_layer = [replace(ok("mm_out_dtype", 9.0, 1e-6), context=name) for name in ("norm", "norm", "other_norm")]
    for text in (
        text_of(kernels_output.kernel_tables([alone, *in_layer])),
        kernels_output.kernel_markdown([alone, *in_layer]),
    ):
        assert gemm in text and "not recorded" not in text
        assert "3 rows in a layer (after norm, other_norm) are left out" in text
    assert "in a layer" not in kernels_output.kernel_markdown([alone])


def test_markdown_table_writes_any_cell_value():
    assert format_output.markdown_table(["n", "x"], [[3, 1.5]]).splitlines()[-1] == "| 3 | 1.5 |"


def test_markdown_table_pads_rows_and_escapes_pipes():
    text = format_output.markdown_table(["a", "b", "c"], [["x|y"], ["1", "2", "3"]])
    assert text.splitlines() == ["| a | b | c |", "|---|---|---|", "| x\\|y |  |  |", "| 1 | 2 | 3 |"]


def test_header_names_gpu_torch_and_cuda():
    text = format_output.header(
        Provenance(
            gemmbench="0.1.0",
            device_type="cuda",
            device_name="NVIDIA H200",
            arch="sm90",
            driver="580",
            torch="2.11.0",
            cuda="13.0",
            cublas="13.1.0",
        )
    ).plain
    assert "NVIDIA H200 (sm90" in text and "torch 2.11.0" in text and "CUDA 13.0" in text and "cuBLAS 13.1.0" in text


def test_the_table_marks_the_backend_recommend_chooses_within_a_tie():
    from gemmbench.analysis.recommend import recommend

    records = [ok("cublas_ext", 5.0, 1.4e-6), ok("mm_out_dtype", 5.1, 1.4e-6)]  # 2% apart: tied
    (rec,) = recommend(records)
    assert rec.winners == {1: "mm_out_dtype"} and rec.tied == {1: ["cublas_ext"]}
    markdown = sweep_output.sweep_markdown(records)
    assert "**5.1 µs**" in markdown and "**5 µs**" not in markdown


def rendered_lines(renderable, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_kernel_tables_fold_to_a_narrow_terminal_and_keep_every_field():
    record = ok("mm_out_dtype", 6.4, 1.4e-6, kernels=("nvjet_sm90_tss_64x16_64x16_4x1_v_bz_splitK_TNT",))
    lines = rendered_lines(kernels_output.kernel_tables([record]), 100)
    assert all(len(line) <= 100 for line in lines)
    text = "\n".join(lines)
    for field in ("nvjet", "sm90", "bf16·bf16→fp32 (acc fp32)", "tile 64x16x64", "16 stages", "cluster 4x1"):
        assert field in text
    assert "split-K" in text and "nvjet_sm90_tss_64x16_64x16_4x1_v_bz_splitK_TNT" in text


# The longest kernel name of the H200 runs (h200_deepseek_v3_hot.json among the fixtures): cuBLAS's fp32 SIMT
# split-K GEMM, 131 characters.
LONGEST_NAME = (
    "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize128x128x8_stage3_warpsize2x2x1_ffma_aligna4_alignc4"
    "_execute_split_k_kernel__5x_cublas"
)


@pytest.mark.parametrize("width", [80, 100])
def test_kernel_names_fold_only_between_their_parts_and_backends_never_wrap(width):
    record = ok("cublaslt_tuned_ext", 6.4, 1.4e-6, kernels=(LONGEST_NAME,))
    lines = rendered_lines(kernels_output.kernel_tables([record]), width)
    header = next(index for index, line in enumerate(lines) if "backend" in line)
    first_row = lines[header + 2]
    assert first_row.split()[0] == "cublaslt_tuned_ext"
    column = [line[lines[header].index("kernel") :].rstrip() for line in lines[header + 2 :]]
    name_lines = list(takewhile(lambda cell: cell and not cell.startswith(" "), column))
    assert len(name_lines) > 1 and "".join(name_lines) == LONGEST_NAME  # whole, on more lines than one
    assert all(line.endswith(("_", "::", "<")) for line in name_lines[:-1])


def test_kernel_name_parts_pack_onto_lines_at_their_boundaries():
    parts = kernels_output.name_parts("cublasLt::splitKreduce_kernel<…>")
    assert parts == ["cublasLt::", "splitKreduce_", "kernel<", "…>"]
    assert kernels_output.pack(parts, "", 20) == ["cublasLt::", "splitKreduce_kernel<", "…>"]
    assert kernels_output.pack(["tile 64x8x64", "16 stages", "split-K"], " · ", 30) == [
        "tile 64x8x64 · 16 stages",
        "split-K",
    ]


def test_kernel_times_read_in_one_unit_with_it_in_every_cell_of_both_kernel_tables():
    kernels = tuple(KernelRun(f"kernel_{index}", us) for index, us in enumerate((4.25, 999.7, 1170.4)))
    record = timed("upcast", 1200.0, 1e-7, kernels=kernels)
    text = text_of(kernels_output.kernel_tables([record]))
    markdown = kernels_output.kernel_markdown([record])
    for cell in ("4.25 µs", "1000 µs", "1170 µs"):  # one unit down the column: the times compare at a glance
        assert cell in text and f"| {cell} |" in markdown
    assert " ms" not in text and " ms" not in markdown
    assert "e+0" not in text and "e+0" not in markdown


def test_durations_never_print_in_scientific_notation():
    cases = {999.7: "1 ms", 999_700.0: "1 s", 1.2e6: "1.2 s", 3.6e9: "3600 s", 4e-5: "0.00004 µs", 0.0: "0 µs"}
    assert {value: format_output.format_us(value) for value in cases} == cases
    magnitudes = [mantissa * 10.0**exponent for exponent in range(-5, 10) for mantissa in (1.0, 2.5, 9.996)]
    assert not [text for text in map(format_output.format_us, magnitudes) if "e" in text]


# The widths of the sweep-table tests: a common terminal, and one where the six-backend table fits.
TERMINAL_COLUMNS = 80
WIDE_CONSOLE_COLUMNS = 200
SIX_BACKENDS = ("mm_out_dtype", "upcast", "linear_cast", "cublas_ext", "cublaslt_ext", "cublaslt_tuned_ext")


def six_backend_records():
    """Two points of six backends, with a floor, a top-k mismatch and a flag: every note the tables write."""
    return [
        timed(backend, 6.4 + index, 1.4e-6, replace(CASE, m=m), floor_us=0.87, pct_of_floor=13.0, topk_mismatch=0.0)
        for m in (1, 16)
        for index, backend in enumerate(SIX_BACKENDS)
    ] + [timed("upcast", 28.7, 1.4e-7, replace(CASE, m=4096), noisy=True)]


def test_sweep_tables_keep_one_column_per_backend_where_they_fit():
    lines = rendered_lines(sweep_output.sweep_tables(six_backend_records()), WIDE_CONSOLE_COLUMNS)
    header = next(line for line in lines if " M " in line)
    assert all(backend in header for backend in SIX_BACKENDS) and "rel_err" not in header
    assert any(line.startswith("second number:") for line in lines)


def test_sweep_tables_turn_to_one_row_per_m_and_backend_where_the_wide_table_would_not_fit():
    lines = rendered_lines(sweep_output.sweep_tables(six_backend_records()), TERMINAL_COLUMNS)
    assert all(len(line) <= TERMINAL_COLUMNS for line in lines)
    header = next(line for line in lines if " M " in line)
    assert [name.strip() for name in header.split("┃")[1:-1]] == ["M", "backend", "time", "rel_err", "eager", "notes"]
    rows = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    backends = [row[1].strip() for row in rows if row[1].strip()]
    assert backends == ["floor", *SIX_BACKENDS] * 2 + ["upcast"]
    assert [row[0].strip() for row in rows if row[0].strip()] == ["1", "16", "4096"]
    first = rows[1]  # mm_out_dtype at M = 1, the fastest: its values whole, one to a column
    assert [cell.strip() for cell in first] == ["", "mm_out_dtype", "6.4 µs*", "1.4e-06", "26.4 µs", "13% of roofline"]
    assert any(line.startswith("rel_err: ||out − ref||") for line in lines)
    assert not any(line.startswith("second number:") for line in lines)


def test_long_sweep_tables_head_a_layer_view_with_its_producer_and_show_per_layer_times():
    context = "gemmbench_norm_pdl_start"
    backends = ("mm_out_dtype", "router_small_m", "router_small_m_ext")
    records = [timed(b, 4.0, 1e-7, pdl=pdl) for b in backends for pdl in (False, True)]
    records += [timed(b, 7.14, 1e-7, pdl=pdl, context=context) for b in backends for pdl in (False, True)]
    lines = rendered_lines(sweep_output.sweep_tables(records), TERMINAL_COLUMNS)
    assert all(len(line) <= TERMINAL_COLUMNS for line in lines)
    headings = [i for i, line in enumerate(lines) if line.startswith("DeepSeek-V3 router")]
    assert len(headings) == 2  # one table alone, one of the layer
    assert "in the layer" not in lines[headings[0]]
    layer = " ".join(lines[headings[1] : headings[1] + 2])  # the heading, over two lines at this width
    assert f"· in the layer after {context}: time per layer, {context} then the GEMM" in layer
    tables = ["\n".join(lines[headings[0] : headings[1]]), "\n".join(lines[headings[1] :])]
    times = [[line.split("│")[3].strip() for line in table.splitlines() if line.startswith("│")] for table in tables]
    # the layer's rows: its times, no figure subtracted; the first of the tied is the one marked
    assert times == [["4 µs*"] + ["4 µs"] * 5, ["7.14 µs*"] + ["7.14 µs"] * 5]
    assert f"after {context} 7.14" not in "\n".join(lines)  # no annotation of an in-layer time beside a row alone


def test_backends_skipped_for_one_reason_share_one_line():
    case = Case("m", "g", "router", 1, 8, 16)
    rows = [Record.for_case(case, name, SKIPPED, "no CUDA device") for name in ("cublas_ext", "router_small_m_ext")] + [
        Record.for_case(replace(case, m=2), "cublas_ext", SKIPPED, "no CUDA device")
    ]
    assert format_output.reason_lines(rows) == [
        (SKIPPED, "skipped (3 rows) — no CUDA device: cublas_ext, router_small_m_ext")
    ]


def test_rows_beyond_a_backends_m_range_are_kept_but_shown_only_when_asked(tmp_path):
    from typer.testing import CliRunner

    from gemmbench.cli import app
    from gemmbench.records.runfile import load_run

    runner = CliRunner()
    args = ["sweep", "--shape", "8x16", "--m", "1,32", "--backend", "upcast,router_small_m_ext", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--budget-ms", "1", "--out-dir", str(tmp_path), "--md", "-q"])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.json")
    rows = {(r.m, r.backend): r for r in load_run(path).records}
    assert rows[32, "router_small_m_ext"].out_of_range and rows[32, "router_small_m_ext"].status == "skipped"
    assert not rows[1, "router_small_m_ext"].out_of_range  # skipped here for another reason: no CUDA device
    assert "runs M <= 16 only" not in result.stdout and "no CUDA device" in result.stdout
    shown = runner.invoke(app, ["show", str(path), "--md"]).stdout
    assert "runs M <= 16 only" not in shown
    assert "runs M <= 16 only" in runner.invoke(app, ["show", str(path), "--md", "--all-rows"]).stdout
    compared = runner.invoke(app, ["compare", str(path), str(path), "--md"]).stdout
    assert "not timed 2\n" in compared  # M = 1's rows, PDL off and on; with --all-rows, M = 32's too
    assert "not timed 4\n" in runner.invoke(app, ["compare", str(path), str(path), "--md", "--all-rows"]).stdout


def test_an_older_run_files_out_of_range_rows_are_recognised_by_their_reason():
    from gemmbench.records.runfile import _marked_out_of_range

    old = {"status": "skipped", "reason": "runs M <= 16 only (the torch.mm tier takes larger M)"}
    assert _marked_out_of_range(old)["out_of_range"] is True
    assert "out_of_range" not in _marked_out_of_range({"status": "skipped", "reason": "no CUDA device"})
