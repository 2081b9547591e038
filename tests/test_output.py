from rich.console import Console
from samples import timed

from gemmbench.output import format as format_output
from gemmbench.output import kernels as kernels_output
from gemmbench.output import sweep as sweep_output
from gemmbench.records import ERROR, SKIPPED, KernelRun, Record
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
    assert cell.plain == "5.6 µs 1.4e-06\neager 25.6 µs" and "green" in str(cell.style)


def test_sweep_table_shows_times_errors_and_reasons():
    records = [
        ok("mm_out_dtype", 5.6, 1.4e-6),
        Record.for_case(CASE, "upcast", SKIPPED, "no CUDA device"),
        Record.for_case(CASE, "linear_cast", ERROR, "out of memory"),
    ]
    text = text_of(sweep_output.sweep_tables(records))
    assert "DeepSeek-V3 router: x[M, 7168] @ w[256, 7168]ᵀ" in text
    assert "5.6 µs" in text and "skipped" in text and "error" in text
    assert "upcast skipped (1 row): no CUDA device" in text and "linear_cast error (1 row): out of memory" in text
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


def test_markdown_table_writes_any_cell_value():
    assert format_output.markdown_table(["n", "x"], [[3, 1.5]]).splitlines()[-1] == "| 3 | 1.5 |"


def test_markdown_table_pads_rows_and_escapes_pipes():
    text = format_output.markdown_table(["a", "b", "c"], [["x|y"], ["1", "2", "3"]])
    assert text.splitlines() == ["| a | b | c |", "|---|---|---|", "| x\\|y |  |  |", "| 1 | 2 | 3 |"]


def test_header_names_gpu_torch_and_cuda():
    text = format_output.header(
        {
            "gemmbench": "0.1.0",
            "device_type": "cuda",
            "device_name": "NVIDIA H200",
            "arch": "sm90",
            "driver": "580",
            "torch": "2.11.0",
            "cuda": "13.0",
            "cublas": "13.1.0",
        }
    ).plain
    assert "NVIDIA H200 (sm90" in text and "torch 2.11.0" in text and "CUDA 13.0" in text and "cuBLAS 13.1.0" in text


def test_the_table_marks_the_backend_recommend_chooses_within_a_tie():
    from gemmbench.analysis.recommend import recommend

    records = [ok("cublas_ext", 5.0, 1.4e-6), ok("mm_out_dtype", 5.1, 1.4e-6)]  # 2% apart: tied
    (rec,) = recommend(records)
    assert rec.winners == {1: "mm_out_dtype"} and rec.tied == {1: ["cublas_ext"]}
    markdown = sweep_output.sweep_markdown(records)
    assert "**5.1 µs**" in markdown and "**5 µs**" not in markdown


def test_kernel_tables_fold_to_a_narrow_terminal_and_keep_every_column():
    record = ok("mm_out_dtype", 6.4, 1.4e-6, kernels=("nvjet_sm90_tss_64x16_64x16_4x1_v_bz_splitK_TNT",))
    console = Console(width=100, record=True, color_system=None)
    console.print(kernels_output.kernel_tables([record]))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 100 for line in lines)
    header = next(line for line in lines if "backend" in line)
    assert "split-K" in header and "µs" in header
    assert "splitK_TNT" in "".join(lines).replace(" ", "")  # the name folds onto more lines, not cut


def test_kernel_durations_read_in_one_unit_without_exponents():
    from gemmbench.output.kernels import format_duration_us

    assert [format_duration_us(v) for v in (4.25, 1170.4, 98765.0, None)] == ["4.25", "1170", "98765", ""]
