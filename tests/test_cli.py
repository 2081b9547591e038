import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import gemmbench.measure.session
from gemmbench.cli import EXIT_INTERRUPTED, app
from gemmbench.cli.app import EXIT_NO_ANSWER, EXIT_PIPE_CLOSED, out_console
from gemmbench.errors import GemmbenchError
from gemmbench.records.runfile import load_run

FIXTURES = Path(__file__).parent / "fixtures"
# Two cold-L2 sweeps of the DeepSeek-V3 router on one H200, six backends at seven M values.
COLD_A = FIXTURES / "h200_deepseek_v3_cold_a.json"
COLD_B = FIXTURES / "h200_deepseek_v3_cold_b.json"
# A layer run the docs keep: five contexts, and more output than a pipe holds.
LAYER_RUN = Path(__file__).resolve().parent.parent / "docs" / "runs" / "h100_layer.json"
# CPU sweeps, on any machine (GPU sweeps are tests/test_gpu.py).
FAKE_SHAPE = ["--shape", "4x8x16", "--shape", "2x8x16", "--backend", "fake,upcast,mm_out_dtype", "--device", "cpu"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="gemmbench")


def run_files(folder: Path):
    return sorted(folder.glob("*.json"))


def test_sweep_prints_a_table_and_saves_a_run(tmp_path, fake_device):
    result = invoke("sweep", *FAKE_SHAPE, "--out-dir", tmp_path, "--budget-ms", 1)
    assert result.exit_code == 0, result.output
    assert "custom 8x16" in result.stdout and "fake" in result.stdout and "skipped" in result.stdout
    assert "no CUDA device" in result.stderr
    (path,) = run_files(tmp_path)
    doc = json.loads(path.read_text())
    assert len(doc["records"]) == 6 and doc["provenance"]["torch"]
    assert doc["provenance"]["command"].startswith("gemmbench")


def test_default_sweep_on_cpu_uses_the_default_preset_and_short_m_list(tmp_path, fake_device):
    result = invoke("sweep", "--backend", "fake", "--device", "cpu", "--no-save", "--csv", "-")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["model"], r["m"]) for r in rows] == [("DeepSeek-V3", "1"), ("DeepSeek-V3", "8"), ("DeepSeek-V3", "64")]
    assert "M cut to 1,8,64" in result.stderr
    assert not run_files(tmp_path)


def test_csv_to_stdout_keeps_tables_on_stderr(tmp_path, fake_device):
    result = invoke("sweep", *FAKE_SHAPE, "--no-save", "--csv", "-", "--budget-ms", 1)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok", "skipped"}
    assert float(rows[0]["device_median_us"]) > 0
    assert "custom 8x16" in result.stderr


def test_show_rerenders_and_exports(tmp_path, fake_device):
    invoke("sweep", *FAKE_SHAPE, "--out-dir", tmp_path, "--budget-ms", 1)
    (path,) = run_files(tmp_path)
    shown = invoke("show", path)
    assert shown.exit_code == 0 and "custom 8x16" in shown.stdout and "torch" in shown.stdout
    exported = invoke("show", path, "--csv", tmp_path / "out.csv", "--json", tmp_path / "out.json")
    assert exported.exit_code == 0
    assert len(list(csv.DictReader((tmp_path / "out.csv").open()))) == 6
    again = invoke("show", tmp_path / "out.csv")
    assert again.exit_code == 0 and "custom 8x16" in again.stdout


def test_list_shows_presets_and_backend_availability():
    result = invoke("list")
    assert result.exit_code == 0
    for text in (
        "deepseek-v4-pro",
        "compressor.fused_wkv_wgate.ratio4",
        "qwen3-235b-a22b",
        "mm_out_dtype",
    ):
        assert text in result.stdout


def test_env_json_says_whether_out_dtype_works():
    result = invoke("env", "--json")
    facts = json.loads(result.stdout)
    assert facts["torch"] and facts["cuda_available"] is torch.cuda.is_available()
    assert (
        facts["mm_out_dtype"] == "works"
        if torch.cuda.is_available()
        else facts["mm_out_dtype"].startswith("unavailable")
    )


def test_decode_json_gives_the_fields_of_a_name():
    result = invoke("decode", "nvjet_sm100_tss_16x64_64x16_4x1_v_bz_TNN", "Memset (Device)", "--json")
    first, second = json.loads(result.stdout)
    assert (first["family"], first["arch"], first["tile_m"], first["stages"], first["split_k"]) == (
        "nvjet",
        "sm100",
        16,
        16,
        False,
    )
    assert second["family"] == "memset"


def test_decode_table():
    result = invoke("decode", "cutlass_80_simt_sgemm_128x64_8x5_tn_align1")
    assert result.exit_code == 0 and "cutlass" in result.stdout and "sm80" in result.stdout


def test_kernels_from_a_gpu_recorded_run():
    result = invoke("kernels", "--from", FIXTURES / "h200_deepseek_v3_sm90.json")
    assert result.exit_code == 0, result.output
    assert "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT" in result.stdout
    assert "splitk_reduce" in result.stdout and "M=4096" in result.stdout


def test_kernels_from_a_handmade_sm100_run_finds_the_shared_kernel():
    result = invoke("kernels", "--from", FIXTURES / "handmade_sm100.json")
    assert result.exit_code == 0, result.output
    assert "sm100" in result.stdout
    assert "same GEMM kernel: mm_out_dtype, cublas_ext → nvjet_sm100_tss_16x64_64x16_4x1_v_bz_TNN" in result.stdout


def test_kernels_markdown(tmp_path):
    result = invoke("kernels", "--from", FIXTURES / "h200_deepseek_v3_sm90.json", "--md")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| case | backend | kernel") and lines[1].startswith("|---|")
    assert any("`nvjet_sm90_tss_" in line for line in lines)


def test_kernels_from_csv_export(tmp_path):
    invoke("show", FIXTURES / "h200_deepseek_v3_sm90.json", "--csv", tmp_path / "k.csv")
    result = invoke("kernels", "--from", tmp_path / "k.csv")
    assert result.exit_code == 0 and "nvjet_sm90_tss" in result.stdout


def test_kernels_live_without_a_gpu_says_how_to_proceed():
    result = invoke("kernels", "--m", "1", "--device", "cpu")
    assert result.exit_code == 1 and "--from RUN" in result.stderr


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_INPUTS = [
    (["sweep", "--preset", "nope"], 2, "unknown preset 'nope'", "deepseek-v3"),
    (["sweep", "--backend", "nope"], 2, "unknown backend 'nope'", "mm_out_dtype"),
    (["sweep", "--shape", "12x"], 2, "malformed shape '12x'", "MxNxK"),
    (["sweep", "--shape", "0x5x5"], 2, "malformed shape '0x5x5'", "MxNxK"),
    (["sweep", "--shape", "-1x2x3"], 2, "malformed shape '-1x2x3'", "MxNxK"),
    (["sweep", "--shape", "axbxc"], 2, "malformed shape 'axbxc'", "MxNxK"),
    (["sweep", "--m", "1,x"], 2, "bad M value 'x'", "positive integers"),
    (["sweep", "--m", "16:1:x2"], 2, "bad M range '16:1:x2'", "START:STOP"),
    (["sweep", "--role", "mlp"], 2, "unknown role 'mlp'", "router"),
    pytest.param(
        ["sweep", "--device", "cuda"],
        2,
        "no CUDA device",
        "cpu or auto as the device",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present"),
    ),
    (["sweep", "--config", "{tmp}/missing.toml"], 1, "missing.toml does not exist", "check the config file's path"),
    (["sweep", "--config", "{tmp}/broken.toml"], 1, "broken.toml is not valid TOML", "fix"),
    (["sweep", "--config", "{tmp}/nokey.toml"], 1, "nokey.toml: [[gemm]] 'r' is missing the key 'k'", "add 'k'"),
    (
        ["sweep", "--csv", "{tmp}/no/such/dir/x.csv"],
        1,
        "folder {tmp}/no/such/dir does not exist",
        "choose another path",
    ),
    (["sweep", "--out-dir", "{tmp}/afile/sub"], 1, "cannot create the results folder", "--no-save"),
    (["show", "{tmp}/missing.json"], 1, "does not exist", "results/"),
]


@pytest.mark.parametrize("args, code, what, fix", BAD_INPUTS)
def test_bad_input_gets_one_error_line(tmp_path, args, code, what, fix):
    write(tmp_path, "broken.toml", "model = [")
    write(tmp_path, "nokey.toml", 'model = "m"\n[[gemm]]\nname = "r"\nrole = "router"\nn = 8\n')
    write(tmp_path, "afile", "")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = invoke(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and " — " in lines[0], result.stderr
    assert what.replace("{tmp}", str(tmp_path)) in lines[0] and fix in lines[0]
    assert "Traceback" not in result.output


def test_unwritable_output_is_refused_before_the_sweep_starts(tmp_path, fake_device):
    result = invoke("sweep", *FAKE_SHAPE, "--out-dir", tmp_path, "--csv", tmp_path / "missing" / "x.csv")
    assert result.exit_code == 1 and not run_files(tmp_path)


def interrupted_after(rows: int, real):
    """`real`, a generator of rows (measure_cases, measure_groups), stopped by Ctrl-C after `rows` of them."""

    def interrupted(*args, **kwargs):
        for index, record in enumerate(real(*args, **kwargs)):
            if index == rows:
                raise KeyboardInterrupt
            yield record

    return interrupted


def test_ctrl_c_keeps_finished_rows(tmp_path, monkeypatch, fake_device):
    session = gemmbench.measure.session
    monkeypatch.setattr(session, "measure_cases", interrupted_after(2, session.measure_cases))
    result = invoke("sweep", *FAKE_SHAPE, "--out-dir", tmp_path, "--budget-ms", 1, "--csv", tmp_path / "part.csv")
    assert result.exit_code == EXIT_INTERRUPTED
    assert "interrupted: 2 of 6 rows" in result.stderr
    (path,) = run_files(tmp_path)
    doc = json.loads(path.read_text())
    assert len(doc["records"]) == 2 and doc["complete"] is False and doc["planned"] == 6
    shown = invoke("show", path)
    assert shown.exit_code == 0 and "incomplete run (interrupted): 2 of 6 rows finished" in shown.stderr
    assert len(list(csv.DictReader((tmp_path / "part.csv").open()))) == 2


def test_sigint_to_a_real_sweep_exits_130_and_keeps_rows(tmp_path):
    """A real process and a real SIGINT: the run file already holds the finished rows."""
    shapes = [arg for m in range(1, 40) for arg in ("--shape", f"{m}x256x7168")]
    command = [
        sys.executable,
        "-m",
        "gemmbench",
        "sweep",
        *shapes,
        "--backend",
        "upcast",
        "--budget-ms",
        "200",
        "--out-dir",
        str(tmp_path),
        "-q",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = run_files(tmp_path)
        if files and len(json.loads(files[0].read_text() or "{}").get("records", [])) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    kept = json.loads(run_files(tmp_path)[0].read_text())["records"]
    assert 2 <= len(kept) < 39


def test_show_markdown_marks_the_fastest_accurate_backend():
    result = invoke("show", COLD_A, "--md")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| GEMM | N | K | M | mm_out_dtype | upcast | linear_cast |")
    assert len(lines) == 2 + 7 and all(line.count("**") == 2 for line in lines[2:])  # one line per M


def test_sweep_markdown(tmp_path, fake_device):
    result = invoke("sweep", *FAKE_SHAPE, "--no-save", "--md", "--budget-ms", 1)
    assert result.exit_code == 0 and "| custom 8x16 | 8 | 16 | 4 |" in result.stdout


def test_compare_two_gpu_runs_of_the_same_sweep():
    result = invoke("compare", COLD_A, COLD_B)
    assert result.exit_code == 0, result.output
    assert "base: NVIDIA H200" in result.stdout and "geometric mean new/base" in result.stdout


def test_compare_fail_above_exits_1_on_a_regression(tmp_path):
    doc = json.loads(COLD_A.read_text())
    for record in doc["records"]:
        if record["device_median_us"]:
            record["device_median_us"] *= 1.5
            record["device_ci_low_us"] *= 1.5
            record["device_ci_high_us"] *= 1.5
            record["noisy"] = record["throttled"] = False
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(doc))
    assert invoke("compare", COLD_A, slower, "--fail-above", 60).exit_code == 0
    result = invoke("compare", COLD_A, slower, "--fail-above", 10)
    assert result.exit_code == 1 and "slower by more than 10%" in result.stderr
    md = invoke("compare", COLD_A, slower, "--md")
    assert md.stdout.count("| slower |") >= 37  # of its 42 rows


def crashed_run(tmp_path) -> tuple[dict, Path]:
    """COLD_A with mm_out_dtype's M = 1 row an error (a backend that crashed): its document and its file."""
    doc = json.loads(COLD_A.read_text())
    crashed = next(r for r in doc["records"] if r["backend"] == "mm_out_dtype" and r["m"] == 1)
    crashed.update(status="error", reason="CUDA error: an illegal memory access")
    errored = tmp_path / "errored.json"
    errored.write_text(json.dumps(doc))
    return doc, errored


def test_compare_fail_above_exits_1_where_a_timed_row_errored_or_vanished(tmp_path):
    doc, errored = crashed_run(tmp_path)
    result = invoke("compare", COLD_A, errored, "--fail-above", 5)
    assert result.exit_code == 1
    assert "1 row(s) timed in the base run are not timed" in result.stderr and "illegal memory access" in result.stderr
    doc["records"] = [r for r in doc["records"] if r["backend"] != "mm_out_dtype"]
    vanished = tmp_path / "vanished.json"
    vanished.write_text(json.dumps(doc))
    result = invoke("compare", COLD_A, vanished, "--fail-above", 5)
    assert result.exit_code == 1 and "no such row" in result.stderr
    assert invoke("compare", COLD_A, COLD_A, "--fail-above", 5).exit_code == 0


def test_recommend_says_where_a_backend_errored_and_another_was_chosen(tmp_path):
    _, errored = crashed_run(tmp_path)
    table = invoke("recommend", errored)
    assert table.exit_code == 0
    assert "mm_out_dtype errored at M = 1 (another backend chosen there): CUDA error" in table.stdout
    (shape,) = json.loads(invoke("recommend", errored, "--json").stdout)
    assert shape["errored"] == {"mm_out_dtype": {"m": [1], "reason": "CUDA error: an illegal memory access"}}
    python = invoke("recommend", errored, "--python")
    assert "mm_out_dtype errored at M = 1" in python.stderr and "errored at" not in python.stdout
    assert "errored" not in invoke("recommend", COLD_A).stdout


def test_answers_from_runs_with_nothing_to_answer_do_not_pass(tmp_path):
    doc = json.loads(COLD_A.read_text())
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**doc, "records": []}))
    result = invoke("show", empty)
    assert result.exit_code == 1 and "holds no rows" in result.stderr
    for record in doc["records"]:
        record.update(status="skipped", reason="no CUDA device")
    skipped = tmp_path / "skipped.json"
    skipped.write_text(json.dumps(doc))
    result = invoke("compare", skipped, skipped)
    assert result.exit_code == EXIT_NO_ANSWER and "nothing compared" in result.stderr


def test_answers_from_an_interrupted_run_say_so(tmp_path):
    doc = json.loads(COLD_A.read_text())
    doc["complete"] = False
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(doc))
    for args in (("recommend", partial), ("compare", COLD_A, partial), ("show", partial)):
        result = invoke(*args)
        assert result.exit_code == 0 and "incomplete run (interrupted)" in result.stderr, args


def test_compare_runs_without_shared_rows(tmp_path, fake_device):
    invoke("sweep", *FAKE_SHAPE, "--out-dir", tmp_path, "--budget-ms", 1)
    (path,) = run_files(tmp_path)
    result = invoke("compare", COLD_A, path, "--allow-mismatch")
    assert result.exit_code == 1 and "share no (case, backend) rows" in result.stderr


def test_compare_refuses_runs_timed_differently(tmp_path, fake_device):
    invoke("sweep", *FAKE_SHAPE, "--out-dir", tmp_path, "--budget-ms", 1)
    (cpu,) = run_files(tmp_path)
    result = invoke("compare", COLD_A, cpu)
    assert result.exit_code == 1 and "device type: cuda vs cpu" in result.stderr and "--allow-mismatch" in result.stderr
    hot = invoke("compare", COLD_A, FIXTURES / "h200_deepseek_v3_hot.json")
    assert hot.exit_code == 1 and "L2 mode: cold vs hot" in hot.stderr
    allowed = invoke("compare", COLD_A, FIXTURES / "h200_deepseek_v3_hot.json", "--allow-mismatch")
    assert allowed.exit_code == 0 and "L2 cold" in allowed.stdout and "L2 hot" in allowed.stdout


def test_compare_reads_contexts_as_a_set_and_from_a_csv_export(tmp_path):
    exported = tmp_path / "layer.csv"
    assert invoke("show", LAYER_RUN, "--csv", exported).exit_code == 0
    assert invoke("compare", LAYER_RUN, exported).exit_code == 0  # its rows hold five contexts
    doc = json.loads(LAYER_RUN.read_text())
    doc["provenance"]["context"] = ",".join(reversed(doc["provenance"]["context"].split(",")))
    reordered = tmp_path / "reordered.json"
    reordered.write_text(json.dumps(doc))
    assert invoke("compare", LAYER_RUN, reordered).exit_code == 0
    other = invoke("compare", LAYER_RUN, FIXTURES / "h200_context_norm_pdl.json")
    assert other.exit_code == 1 and "context: flashinfer_fused_add_rmsnorm," in other.stderr


def test_compare_names_a_layer_row_with_its_producer_and_pdl(tmp_path):
    doc = json.loads(LAYER_RUN.read_text())
    slowed = next(
        r
        for r in doc["records"]
        if r["model"] == "Kimi-K2"
        and r["backend"] == "router_small_m_mma"
        and r["pdl"]
        and r["context"] == "norm"
        and r["m"] == 8
    )
    for field in ("device_median_us", "device_ci_low_us", "device_ci_high_us"):
        slowed[field] *= 1.5
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(doc))
    result = invoke("compare", LAYER_RUN, slower, "--fail-above", 20)
    assert result.exit_code == 1
    assert "(worst: Kimi-K2 router M=8 router_small_m_mma+pdl after norm, 1.500x)" in " ".join(result.stderr.split())
    md = invoke("compare", LAYER_RUN, slower, "--md").stdout
    (line,) = [line for line in md.splitlines() if "| slower |" in line]
    assert line.startswith("| Kimi-K2 router after norm N=384 K=7168 | 8 | router_small_m_mma+pdl |")


def test_recommend_takes_one_output_format():
    result = invoke("recommend", COLD_A, "--json", "--md")
    assert result.exit_code == 2 and "--json and --md each choose the output format" in result.stderr


def test_recommend_table_json_and_markdown():
    table = invoke("recommend", COLD_A)
    assert table.exit_code == 0 and "DeepSeek-V3 router (N=256, K=7168):" in table.stdout
    assert "linear_cast never qualified" in table.stdout
    (shape,) = json.loads(invoke("recommend", COLD_A, "--json").stdout)
    assert shape["gemm"] == "router" and shape["ranges"] and shape["summary"]
    assert invoke("recommend", COLD_A, "--md").stdout.startswith("| GEMM | N | K | M range | backend | measured M |")


def test_plot_command(tmp_path):
    result = invoke("plot", COLD_A, "-o", tmp_path / "router.png")
    assert result.exit_code == 0 and (tmp_path / "router.png").stat().st_size > 10_000
    bad = invoke("plot", COLD_A, "-o", tmp_path / "router.gif")
    assert bad.exit_code == 2 and "Error: cannot tell the image format" in bad.stderr


def test_warmup_help_states_the_default_the_library_uses():
    from gemmbench.timing.defaults import EAGER_WINDOW_S, EAGER_WINDOWS, POINT_WARMUP_S

    result = invoke("sweep", "--help")
    text = " ".join(result.stdout.split())
    assert f"(default {POINT_WARMUP_S * 1e3:g})" in text
    assert f"{EAGER_WINDOWS} windows of {EAGER_WINDOW_S * 1e3:g} ms" in text


def test_recommend_explains_a_run_without_measurements_and_exits_3():
    result = invoke("recommend", FIXTURES / "handmade_sm100.json")
    assert result.exit_code == EXIT_NO_ANSWER, result.output
    assert "mm_out_dtype never qualified: no relative error recorded" in result.stdout
    assert "no backend qualified for DeepSeek-V3 router (the reasons are above)" in result.stderr
    python = invoke("recommend", FIXTURES / "handmade_sm100.json", "--python")
    assert python.exit_code == EXIT_NO_ANSWER and "says why" in python.stderr


def test_a_sweep_that_times_one_row_and_skips_another_exits_0(fake_device):
    # On a machine without CUDA the first-tier CUDA kernel is a skipped row; the fake backend is timed.
    args = ("sweep", "--backend", "fake,router_small_m_ext", "--m", "1", "--device", "cpu", "--no-save", "-q")
    assert invoke(*args).exit_code == 0


def test_exit_codes_are_in_the_help():
    for command in ("sweep", "group"):
        text = " ".join(invoke(command, "--help").stdout.split())
        assert f"{EXIT_NO_ANSWER} nothing timed" in text, command
    text = " ".join(invoke("recommend", "--help").stdout.split())
    assert f"{EXIT_NO_ANSWER} no backend qualified for some shape" in text and "an error row" not in text


def test_a_closed_pipe_ends_the_output_quietly_with_its_own_exit_code():
    # `gemmbench show RUN | head -1`: more output than a pipe holds (64 KiB), and the reader gone after a line
    command = [sys.executable, "-m", "gemmbench", "show", str(LAYER_RUN)]
    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == EXIT_PIPE_CLOSED
    assert proc.stderr.read() == b""


def test_the_context_help_names_every_built_in_producer():
    from gemmbench.backends.producers import BUILT_IN

    for command in ("sweep", "group"):
        text = "".join(invoke(command, "--help").stdout.split())
        missing = [p.name for p in BUILT_IN if p.name.removesuffix("_pdl") not in text]
        assert not missing, (command, missing)


def test_a_pdl_rows_label_as_backend_names_the_backend_to_give():
    result = invoke("sweep", "--backend", "router_small_m_ext+pdl", "--no-save")
    assert result.exit_code == 2 and "name the backend, --backend router_small_m_ext" in result.stderr


def test_csv_and_json_cannot_both_go_to_stdout(fake_device):
    result = invoke("sweep", "--backend", "fake", "--csv", "-", "--json", "-", "--no-save")
    assert result.exit_code == 2 and "both ask for stdout" in result.stderr


def test_sweep_defaults_are_the_library_defaults():
    import inspect

    from gemmbench.cli.run import sweep
    from gemmbench.measure.session import plan_sweep
    from gemmbench.timing.timers import Target

    cli, library = inspect.signature(sweep).parameters, inspect.signature(plan_sweep).parameters
    assert cli["target_ci"].default == library["target_ci_pct"].default == Target().ci_rel * 100
    assert cli["budget_ms"].default == library["budget_ms"].default == Target().budget_s * 1e3
    assert cli["seed"].default == library["seed"].default


def _corrupted_run(tmp_path, change) -> Path:
    """The sm90 fixture with one change made to its parsed JSON (or its text, for NaN)."""
    doc = json.loads((FIXTURES / "h200_deepseek_v3_sm90.json").read_text())
    text = change(doc)
    path = tmp_path / "bad.json"
    path.write_text(text if isinstance(text, str) else json.dumps(doc))
    return path


def _set_record(index, key, value):
    return lambda doc: doc["records"][index].__setitem__(key, value)


def _nan_median(doc):
    return json.dumps(doc).replace('"device_median_us": 5.', '"device_median_us": NaN, "x": 5.', 1)


CORRUPT_RUNS = [
    (_set_record(1, "m", "one"), 'record 2 has m = "one": not an integer'),
    (_set_record(0, "device_median_us", "fast"), 'record 1 has device_median_us = "fast": not a finite number'),
    (lambda doc: doc["records"].__setitem__(2, None), "record 3 is null, not a record"),
    (_nan_median, "record 1 has device_median_us = NaN: not a finite number"),
    (_set_record(0, "status", "done"), 'record 1 has status = "done": not a status'),
    (lambda doc: doc.__setitem__("schema_version", "1"), "schema_version '1' is not an integer"),
]
COMMANDS_ON_A_RUN = [
    ["show"],
    ["recommend"],
    ["kernels", "--from"],
    ["compare", "{run}"],
    ["plot", "-o", "{tmp}/x.png"],
]


@pytest.mark.parametrize("change, what", CORRUPT_RUNS)
@pytest.mark.parametrize("command", COMMANDS_ON_A_RUN, ids=lambda c: c[0])
def test_a_malformed_run_file_gets_one_error_line_naming_the_record_and_field(tmp_path, change, what, command):
    path = _corrupted_run(tmp_path, change)
    args = [a.replace("{run}", str(path)).replace("{tmp}", str(tmp_path)) for a in command]
    if command[0] == "plot":
        args = ["plot", str(path), *args[1:]]
    else:
        args = [*args, str(path)]
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {path}: ") and what in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--m", "1000000000"], "out of memory (inputs and float64 reference)"),
        (["--shape", "4x100000000x100000"], "out of memory (inputs and float64 reference)"),
    ],
)
def test_inputs_too_large_for_memory_are_an_error_row(args, reason):
    result = invoke("sweep", "-b", "upcast", "--device", "cpu", "--no-save", "--csv", "-", *args)
    # every requested row errored: the rows are kept, and the exit code tells CI
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 of 1 row errored" in result.stderr
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))[-1:]
    assert row["status"] == "error" and row["reason"].startswith(reason)


@pytest.mark.parametrize("args", [["--m", "9223372036854775808"], ["--shape", "4x8x9223372036854775808"]])
def test_dimensions_beyond_cublas_ints_are_refused(args):
    result = invoke("sweep", "-b", "upcast", "--device", "cpu", "--no-save", *args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "above 2147483647" in lines[0]


@pytest.mark.parametrize(
    "args, what",
    [
        (["sweep", "--target-ci", "0"], "Invalid value for '--target-ci'"),
        (["sweep", "--seed", "abc"], "Invalid value for '--seed'"),
        (["sweep", "--bogus"], "No such option: --bogus"),
        (["bogus"], "No such command 'bogus'"),
        (["ext", "bogus"], "No such command 'bogus'"),
        (["show"], "Missing argument 'run'"),
    ],
)
def test_usage_errors_are_one_error_line_too(args, what):
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {what}") and lines[0].endswith("--help'") and " — see 'gemmbench" in lines[0]


def test_version():
    from gemmbench import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"gemmbench {__version__}\n"


def test_a_shape_with_its_own_m_and_m_together_are_refused(fake_device):
    result = invoke("sweep", "-b", "fake", "--device", "cpu", "--no-save", "--shape", "4x8x16", "--m", "1")
    assert result.exit_code == 2 and "carries its own M" in result.stderr and "NxK" in result.stderr


def test_a_shape_without_m_runs_at_the_m_values(fake_device):
    result = invoke(
        "sweep", "-b", "fake", "--device", "cpu", "--no-save", "--shape", "8x16", "--m", "2,3", "--csv", "-"
    )
    assert [row["m"] for row in csv.DictReader(io.StringIO(result.stdout))] == ["2", "3"]
    only_own_m = invoke("sweep", "-b", "fake", "--device", "cpu", "--no-save", "--shape", "4x8x16")
    assert only_own_m.exit_code == 0 and "M cut to" not in only_own_m.stderr


def test_kernels_from_a_run_applies_the_filters():
    result = invoke(
        "kernels", "--from", FIXTURES / "h200_deepseek_v3_sm90.json", "--m", "16", "-b", "mm_out_dtype", "--md"
    )
    rows = [line for line in result.stdout.splitlines()[2:] if "mm_out_dtype" in line or "upcast" in line]
    assert rows and all("M=16 " in row and "| mm_out_dtype |" in row for row in rows)
    none = invoke("kernels", "--from", FIXTURES / "h200_deepseek_v3_sm90.json", "--preset", "kimi-k2")
    assert none.exit_code == 1 and "no row of" in none.stderr


def test_gpu_only_options_on_the_cpu_say_they_do_nothing(fake_device):
    result = invoke("sweep", *FAKE_SHAPE, "--no-save", "--hot", "--remeasure-roofline", "-q")
    assert result.exit_code == 0
    assert "--hot has no effect on the CPU" in result.stderr
    assert "--remeasure-roofline has no effect on the CPU" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_list_with_an_unusable_device_fails_before_printing():
    result = invoke("list", "--device", "cuda")
    assert result.exit_code == 2 and result.stdout == "" and "no CUDA device" in result.stderr


def test_decode_says_when_a_name_is_not_recognised():
    result = invoke("decode", "my_custom_kernel")
    assert result.exit_code == 1 and "not recognised" in result.stdout
    assert result.stderr.strip() == "1 of 1 name(s) not recognised: my_custom_kernel"
    assert invoke("decode", "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT").exit_code == 0
    (info,) = json.loads(invoke("decode", "my_custom_kernel", "--json").stdout)
    assert info["recognised"] is False and info["family"] == "other"


@pytest.mark.parametrize(
    "args, what, fix",
    [
        (["show", "{fixtures}"], "is a folder, not a run file", "give one run file, e.g."),
        (["sweep", "--config", "{configs}"], "is a folder, not a config file", "give one TOML file"),
        (["plot", "{run}", "-o", "{tmp}"], "is a folder", "plot.png"),
    ],
)
def test_a_folder_where_a_file_belongs_is_named_as_such(tmp_path, args, what, fix):
    repository = Path(__file__).parent.parent
    values = {"{fixtures}": FIXTURES, "{configs}": repository / "configs", "{run}": COLD_A, "{tmp}": tmp_path}
    result = invoke(*[values.get(a, a) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and what in lines[0] and fix in lines[0], result.output


def test_recommend_python_is_a_dispatch_function_that_runs():
    result = invoke("recommend", COLD_A, "--python")
    assert result.exit_code == 0, result.output
    code = result.stdout
    namespace: dict = {}
    exec(compile(code, "dispatch.py", "exec"), namespace)
    words = " ".join(code.split())  # the docstring is wrapped
    assert "tests/fixtures/h200_deepseek_v3_cold_a.json" in words and "NVIDIA H200" in words and "torch 2.11" in words
    from gemmbench.analysis.recommend import recommend as recommend_backends
    from gemmbench.records.runfile import load_run

    (rec,) = recommend_backends(load_run(COLD_A).records)
    expected = rec.winners
    assert {m: namespace["choose_backend"](256, 7168, m) for m in expected} == expected
    assert namespace["choose_backend"](1, 2, 3) is None
    assert namespace["choose_backend"](256, 7168, max(expected) + 1) is None  # beyond what was measured
    assert "_TIER_1_MAX_M = " in code


def test_recommend_python_of_the_tiers_run_dispatches_the_first_tier_only_where_it_was_measured():
    result = invoke("recommend", FIXTURES / "h200_tiers.json", "--python")
    assert result.exit_code == 0, result.output
    namespace: dict = {}
    exec(compile(result.stdout, "dispatch.py", "exec"), namespace)
    choose = namespace["choose_backend"]
    assert [choose(256, 7168, m) for m in (1, 8, 9, 32, 33)] == [
        "router_small_m_ext",
        "router_small_m_ext",
        "mm_out_dtype",
        "mm_out_dtype",
        None,
    ]
    assert [choose(256, 4096, m) for m in (16, 32, 64)] == ["router_small_m_ext", "router_small_m", None]


def test_recommend_output_formats_are_exclusive():
    result = invoke("recommend", COLD_A, "--python", "--md")
    assert result.exit_code == 2 and "--md and --python each choose the output format" in result.stderr


# A common terminal's width, where a run of five or six backends is too wide for one column per backend.
NARROW_TERMINAL = 80


def long_layout_backends(stdout: str) -> list[str]:
    """The backend column of the sweep tables' long layout, which every line of stdout fits within the
    narrow terminal."""
    lines = stdout.splitlines()
    assert all(len(line) <= NARROW_TERMINAL for line in lines)
    header = next(line for line in lines if line.startswith("┃"))
    assert [name.strip() for name in header.split("┃")[1:5]] == ["M", "backend", "time", "rel_err"]
    backends = [line.split("│")[2].strip() for line in lines if line.startswith("│")]
    return [backend for backend in backends if backend]


@pytest.mark.parametrize("run", [COLD_A, FIXTURES / "h200_context_norm_pdl.json"])
def test_show_in_a_narrow_terminal_prints_one_row_per_m_and_backend_every_name_whole(run, monkeypatch):
    monkeypatch.setattr(out_console, "width", NARROW_TERMINAL)
    result = invoke("show", run)
    assert result.exit_code == 0, result.output
    labels = list(dict.fromkeys(r.label for r in load_run(run).records))
    assert set(long_layout_backends(result.stdout)) - {"floor"} == set(labels)


def test_sweep_in_a_narrow_terminal_prints_the_tables_show_prints(tmp_path, monkeypatch, fake_device):
    monkeypatch.setattr(out_console, "width", NARROW_TERMINAL)
    backends = "fake,cublas_ext,cublaslt_ext,cublaslt_tuned_ext,router_small_m_ext"  # the GPU-only ones skip
    sweep = invoke(
        "sweep", "-b", backends, "--device", "cpu", "--shape", "256x7168", "--m", "1,16", "--out-dir", tmp_path
    )
    assert sweep.exit_code == 0, sweep.output
    assert long_layout_backends(sweep.stdout)[:2] == ["fake", "cublas_ext"]
    (path,) = run_files(tmp_path)
    assert invoke("show", path).stdout == sweep.stdout


def edited_group_run(tmp_path, name: str, edit) -> Path:
    """The fixture group run with `edit(document)` applied, as a file."""
    doc = json.loads((FIXTURES / "h200_groups_v4.json").read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_compare_fail_above_judges_group_rows_too(tmp_path):
    base = FIXTURES / "h200_groups_v4.json"

    def slower(doc):
        for group in doc["groups"]:
            for field in ("parallel_device_us", "parallel_device_ci_low_us", "parallel_device_ci_high_us"):
                group[field] = group[field] and group[field] * 2

    result = invoke("compare", base, edited_group_run(tmp_path, "slower.json", slower), "--fail-above", 5)
    assert result.exit_code == 1 and "slower by more than 5%" in result.stderr and "2.000x" in result.stdout
    shorter = edited_group_run(tmp_path, "shorter.json", lambda doc: doc["groups"].pop(0))
    result = invoke("compare", base, shorter, "--fail-above", 5)
    assert result.exit_code == 1 and "no such row" in result.stderr and "only in base (1)" in result.stdout


def test_compare_refuses_group_runs_timed_differently(tmp_path):
    def hot(doc):
        for group in doc["groups"]:
            group["l2_mode"] = "hot"

    result = invoke("compare", FIXTURES / "h200_groups_v4.json", edited_group_run(tmp_path, "hot.json", hot))
    assert result.exit_code == 1 and "L2 mode: cold vs hot" in result.stderr


def test_compare_fail_above_counts_a_row_without_a_time_as_lost(tmp_path):
    doc = json.loads(COLD_A.read_text())
    cut = next(r for r in doc["records"] if r["backend"] == "mm_out_dtype" and r["m"] == 1)
    for key in [k for k in cut if k.startswith(("device_", "latency_"))]:
        cut[key] = None
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(doc))
    result = invoke("compare", COLD_A, path, "--fail-above", 5)
    assert result.exit_code == 1 and "ok, but no time recorded" in result.stderr


def test_a_csv_whose_last_row_was_cut_short_loads_its_whole_rows_as_an_incomplete_run(tmp_path):
    whole = tmp_path / "whole.csv"
    assert invoke("show", COLD_A, "--csv", whole).exit_code == 0
    text = whole.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 40])  # the last row's first 40 characters
    run = load_run(cut)
    assert len(run.records) == len(load_run(whole).records) - 1 and not run.complete
    result = invoke("show", cut)
    assert result.exit_code == 0 and "incomplete run" in result.stderr


def test_recommend_on_a_group_run_takes_its_view_and_refuses_what_is_for_sweeps(tmp_path):
    def in_a_layer_too(doc):  # each group row again, as if timed after a norm as well
        doc["schema_version"] = 2
        doc["groups"] += [{**group, "context": "norm"} for group in doc["groups"]]

    groups = edited_group_run(tmp_path, "layers.json", in_a_layer_too)
    both = invoke("recommend", groups, "--json")
    alone = invoke("recommend", groups, "--context", "none", "--json")
    assert both.exit_code == 0 and alone.exit_code == 0, alone.output
    assert 0 < len(json.loads(alone.stdout)) < len(json.loads(both.stdout))
    assert "no layer after 'copy'" in invoke("recommend", groups, "--context", "copy").stderr
    refused = invoke("recommend", groups, "--max-flips", 1)
    assert refused.exit_code == 2 and "--max-flips is for sweeps' router rows" in refused.stderr


def test_recommend_max_flips_exempts_gemms_that_are_not_routers():
    result = invoke("recommend", Path("docs/runs/h200_deepseek_v4_pro_answers.json"), "--max-flips", 5, "--json")
    assert result.exit_code == 0, result.output
    assert all(shape["ranges"] for shape in json.loads(result.stdout))


@pytest.mark.parametrize("name", ["b\\N.json", 'quoted""".json'])
def test_recommend_python_is_valid_python_whatever_the_run_files_name(tmp_path, name):
    import ast
    import shutil

    path = tmp_path / name
    shutil.copy(COLD_A, path)
    result = invoke("recommend", path, "--python")
    assert result.exit_code == 0, result.output
    module = ast.parse(result.stdout)
    assert str(path) in ast.get_docstring(module).replace("\n", " ")


def test_a_terminal_that_cannot_encode_unicode_gets_the_answer_not_a_traceback():
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [sys.executable, "-m", "gemmbench", "show", str(COLD_A)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "mm_out_dtype" in result.stdout


def test_ctrl_c_in_a_group_run_says_what_it_kept(tmp_path, monkeypatch, fake_device):
    session = gemmbench.measure.session
    monkeypatch.setattr(session, "measure_groups", interrupted_after(1, session.measure_groups))
    args = ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--device", "cpu", "--m", "1,2", "--out-dir", tmp_path]
    result = invoke(*args)
    assert result.exit_code == EXIT_INTERRUPTED and "interrupted: 1 of 2 rows finished; kept" in result.stderr


@pytest.mark.parametrize(
    "command", ["sweep", "group", "kernels", "tune", "show", "plot", "compare", "recommend", "fleet", "decode"]
)
def test_every_command_that_sets_an_exit_code_lists_its_codes_in_its_help(command):
    result = invoke(command, "--help")
    text = " ".join(result.stdout.split())  # as wrapped to the terminal's width
    assert result.exit_code == 0 and "Exit codes: 0" in text and "2 a bad command line" in text


def test_a_run_file_cut_short_is_named_so(tmp_path):
    cut = tmp_path / "cut.json"
    cut.write_text(COLD_A.read_text()[:5000])
    result = invoke("show", cut)
    assert result.exit_code == 1 and "ends before its JSON does (cut short?)" in result.stderr


def test_kernels_from_a_cpu_sweeps_csv_says_it_was_recorded_on_the_cpu(tmp_path):
    exported = tmp_path / "cpu.csv"
    args = ("--shape", "8x16", "--m", "1", "-b", "upcast", "--device", "cpu", "--budget-ms", 1)
    assert invoke("sweep", *args, "--no-save", "--csv", exported, "-q").exit_code == 0
    result = invoke("kernels", "--from", exported)
    assert result.exit_code == 1 and "recorded on the CPU" in result.stderr and "--no-kernels)" not in result.stderr


def test_decode_refuses_an_empty_name():
    result = invoke("decode", "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT", " ")
    assert result.exit_code == 2 and "an empty kernel name" in result.stderr


def test_recommend_python_of_an_interrupted_run_says_so_in_its_docstring(tmp_path):
    import ast

    doc = json.loads(COLD_A.read_text())
    doc["complete"], doc["planned"] = False, len(doc["records"]) + 5
    path = tmp_path / "interrupted.json"
    path.write_text(json.dumps(doc))
    result = invoke("recommend", path, "--python")
    assert result.exit_code == 0, result.output
    assert "an interrupted run" in " ".join(ast.get_docstring(ast.parse(result.stdout)).split())


def test_compare_notes_runs_of_two_gpus_and_reads_a_csv_pandas_wrote_again(tmp_path):
    import pandas as pd

    exported = tmp_path / "a.csv"
    assert invoke("show", COLD_A, "--csv", exported).exit_code == 0
    again = tmp_path / "again.csv"
    pd.read_csv(exported).to_csv(again, index=False)  # integers with a gap become floats: 3501.0
    assert len(load_run(again).records) == len(load_run(exported).records)
    result = invoke("compare", COLD_A, Path("docs/runs/h100_aa_1.json"), "--allow-mismatch")
    assert "note: the runs are of two GPUs (NVIDIA H200 and NVIDIA H100 80GB HBM3)" in result.stderr


def test_recommend_python_is_valid_python_whatever_the_gpu_is_called(tmp_path):
    import ast

    doc = json.loads(COLD_A.read_text())
    doc["provenance"]["device_name"] = 'H200 """ \\N'
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    result = invoke("recommend", path, "--python")
    assert result.exit_code == 0 and 'H200 """ \\N' in ast.get_docstring(ast.parse(result.stdout))


def test_a_csv_cut_short_in_its_first_row_is_an_incomplete_run(tmp_path):
    whole = tmp_path / "whole.csv"
    assert invoke("show", COLD_A, "--csv", whole).exit_code == 0
    header, first = whole.read_text().split("\n")[:2]
    cut = tmp_path / "cut.csv"
    cut.write_text(f"{header}\n{first[:60]}")
    with pytest.raises(GemmbenchError, match=r"holds a header and no rows whole \(its one row was cut short\)"):
        load_run(cut)


def test_csv_and_json_to_one_file_are_refused_before_any_work(tmp_path):
    same = tmp_path / "out.x"
    result = invoke("show", COLD_A, "--csv", same, "--json", tmp_path / "." / "out.x")
    assert result.exit_code == 2 and "the JSON would overwrite the CSV" in result.stderr and not same.exists()
