"""Hostile input: what a user, a file or a plugin can do to gemmbench ends in one `Error:` line, an error
row or a meaningful exit code, never a traceback, a silent exit or a wrong answer."""

import csv
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import fakes
import pytest
from typer.testing import CliRunner

from gemmbench.cli import app
from gemmbench.records.runfile import load_run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = Path(__file__).parent / "fixtures" / "h200_deepseek_v3_sm90.json"
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated_registry")  # the plugins of these tests leave no backend behind


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="gemmbench")


def one_error_line(result, exit_code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == exit_code and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


# Options

FAKE_CPU = ("-b", "fake", "--device", "cpu")


def test_two_stopping_rules_at_once_are_refused_and_device_timer_options_on_the_cpu_named(fake_device):
    timer = invoke("sweep", *FAKE_CPU, "--no-save", "--budget-ms", 50, "--samples", 3, "-q")
    assert "--budget-ms would have no effect" in one_error_line(timer, 2)  # asked for two rules at once
    timer = invoke("sweep", *FAKE_CPU, "--no-save", "--budget-ms", 50, "--target-ci", 0.5, "-q")
    assert timer.exit_code == 0
    assert "--budget-ms has no effect on the CPU" in timer.stderr and "--target-ci has no effect" in timer.stderr
    assert "--samples" not in timer.stderr


def test_an_out_dir_with_no_save_and_tensor_names_without_weights_are_named(fake_device, tmp_path):
    result = invoke("sweep", *FAKE_CPU, "--no-save", "--out-dir", tmp_path / "unused", "-q")
    assert result.exit_code == 0 and "--out-dir has no effect with --no-save" in result.stderr
    assert not (tmp_path / "unused").exists()
    assert "--no-save" not in invoke("sweep", *FAKE_CPU, "--no-save", "-q").stderr
    named = invoke("sweep", *FAKE_CPU, "--no-save", "--weight-tensor", "gate.weight", "-q")
    assert "name tensors of a --weights file" in one_error_line(named, 2)


@pytest.mark.parametrize("m", ["²", "1,٣", "1:16:x²"])
def test_a_unicode_digit_in_an_m_list_is_a_usage_error(m, fake_device):
    assert "bad M" in one_error_line(invoke("sweep", "-b", "fake", "--device", "cpu", "--no-save", "--m", m), 2)


def test_a_seed_beyond_64_bits_is_a_usage_error(fake_device):
    args = ("sweep", "-b", "fake", "--device", "cpu", "--no-save", "--seed", "99999999999999999999999")
    assert "seed" in one_error_line(invoke(*args), 2)


# Exit codes


def test_a_sweep_whose_rows_all_errored_exits_1_saying_how_many(tmp_path):
    result = invoke("sweep", "-b", "upcast", "--device", "cpu", "--shape", "4x100000000x100000", "--no-save")
    assert result.exit_code == 1 and "1 of 1 row errored" in result.stderr


def test_a_sweep_with_skipped_rows_only_exits_3_unless_allowed():
    args = ("sweep", "-b", "mm_out_dtype", "--device", "cpu", "--shape", "1x8x16", "--no-save")
    result = invoke(*args)
    assert result.exit_code == 3 and "nothing was timed: the one row was skipped" in " ".join(result.stderr.split())
    assert "--allow-empty" in result.stderr
    assert invoke(*args, "--allow-empty").exit_code == 0


def test_decoding_a_name_of_no_known_family_exits_1():
    assert invoke("decode", "hello_world").exit_code == 1


# Files


def test_a_run_file_nested_too_deep_is_one_error_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    assert "nested too deep" in one_error_line(invoke("show", path), 1)


@pytest.mark.parametrize(
    "column, value, problem",
    [
        ("device_median_us", -5.0, "negative"),
        ("latency_median_us", 0.0, "zero (a measured time is positive)"),
        ("m", 0, "not a positive integer"),
        ("m", -4, "not a positive integer"),
    ],
)
def test_impossible_numbers_in_a_run_file_are_refused_on_load(tmp_path, column, value, problem):
    doc = json.loads(FIXTURE.read_text())
    doc["records"][0][column] = value
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    for command in ("show", "recommend", "compare"):
        args = (command, path, path) if command == "compare" else (command, path)
        line = one_error_line(invoke(*args), 1)
        assert f"record 1 has {column} = {json.dumps(value)}: {problem}" in line


def test_a_negative_time_in_a_csv_is_refused_on_load(tmp_path):
    exported = invoke("show", FIXTURE, "--csv", "-").stdout.splitlines()
    header = exported[0].split(",")
    cells = exported[1].split(",")
    cells[header.index("device_median_us")] = "-1.5"
    path = tmp_path / "run.csv"
    path.write_text("\n".join([exported[0], ",".join(cells), *exported[2:]]) + "\n")
    assert "device_median_us = -1.5: negative" in one_error_line(invoke("recommend", path), 1)


def test_a_negative_time_in_a_layer_row_is_refused_on_load(tmp_path):
    """A row in its layer holds per-layer times, producer included (schema version 2): nothing is a difference
    of two timers any more, so no time may be negative."""
    doc = json.loads(FIXTURE.read_text()) | {"schema_version": 2}
    doc["records"][0] |= {"context": "norm", "device_median_us": -0.2}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert "record 1 has device_median_us = -0.2: negative" in one_error_line(invoke("show", path), 1)


def test_a_negative_group_time_in_a_layer_row_is_refused_on_load(tmp_path):
    doc = json.loads((FIXTURES / "h200_groups_context_norm_pdl.json").read_text()) | {"schema_version": 2}
    doc["groups"][0] |= {"context": "gemmbench_norm_pdl_start", "parallel_device_median_us": -0.4}
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(doc))
    assert "group record 1 has parallel_device_median_us = -0.4: negative" in one_error_line(invoke("show", path), 1)


def test_a_version_1_group_file_timed_after_a_producer_loads_as_groups_alone(tmp_path):
    """Its rows held each way's time alone, beside a difference after the producer (which could be negative,
    and is dropped): every row, skipped ones included, loads as the group alone."""
    doc = json.loads((FIXTURES / "h200_groups_context_norm_pdl.json").read_text())
    assert doc["schema_version"] == 1 and doc["provenance"]["context"] == "norm_pdl"
    doc["groups"][0]["parallel_context_device_median_us"] = -0.4
    doc["groups"][0]["parallel_context_device_ci_low_us"] = -0.5
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(doc))
    groups = load_run(path).groups
    assert {r.context for r in groups} == {None} and {r.status for r in groups} == {"ok", "skipped"}
    first = groups[0]
    assert first.parallel_device.median_us == doc["groups"][0]["parallel_device_median_us"] and first.members
    shown = invoke("show", path)
    assert shown.exit_code == 0 and "per layer" not in shown.stdout
    assert shown.stdout.count("DeepSeek-V4-Pro attention_inputs") == 1  # one table: the groups alone


# Answers


def test_a_torchrun_run_of_one_rank_compares_with_a_plain_run_of_the_same_gpu():
    result = invoke("compare", FIXTURES / "h200_one_gpu_plain.json", FIXTURES / "h200_one_rank_torchrun.json")
    assert result.exit_code == 0 and "same" in result.stdout


def test_the_dispatch_code_does_what_its_docstring_says():
    code = invoke("recommend", FIXTURES / "h200_tiers.json", "--python").stdout
    assert "gets the\nbackend of the next tier up" in code
    namespace: dict = {}
    exec(compile(code, "dispatch.py", "exec"), namespace)  # noqa: S102 - the generated code under test
    v3 = namespace["choose_backend"]
    assert v3(256, 7168, 12) == v3(256, 7168, 16)  # between 8 and 16: the backend measured at 16
    with pytest.raises(ValueError, match="token count"):
        v3(256, 7168, 0)


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_the_dispatch_code_passes_the_projects_linter(tmp_path):
    code = invoke("recommend", FIXTURES / "h200_tiers.json", "--python").stdout
    path = tmp_path / "dispatch.py"
    path.write_text(code)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "E501", str(path)], capture_output=True)
    assert lint.returncode == 0, lint.stdout


# Plugins and backends


def write_plugin(tmp_path, body: str) -> Path:
    path = tmp_path / "hostile_plugin.py"
    path.write_text("import sys\nfrom gemmbench.backends import Backend\n" + body)
    return path


EXITING = """
class Exiting(Backend):
    name = "exiting"
    code = "sys.exit(3)"
    def prepare(self, case, inputs):
        def call():
            sys.exit(3)
        return call

class Asking(Backend):
    name = "asking"
    code = "raises in its query"
    def unavailable_reason(self, case, device):
        raise ValueError("no idea")
    def prepare(self, case, inputs):
        return lambda: inputs.out

BACKENDS = [Exiting(), Asking()]
"""


def test_a_backend_that_calls_sys_exit_is_an_error_row_and_the_others_keep_theirs(tmp_path, fake_device):
    plugin = write_plugin(tmp_path, EXITING)
    args = ("sweep", "--plugin", plugin, "-b", "exiting,asking,fake", "--device", "cpu", "--shape", "2x8x16")
    result = invoke(*args, "--no-save", "--csv", "-", "-q")
    rows = {row["backend"]: row for row in __import__("csv").DictReader(__import__("io").StringIO(result.stdout))}
    assert result.exit_code == 1 and "2 of 3 rows errored" in result.stderr and "Traceback" not in result.output
    assert rows["exiting"]["status"] == "error" and rows["exiting"]["reason"] == "SystemExit: 3"
    assert (
        rows["asking"]["status"] == "error"
        and rows["asking"]["reason"] == "unavailable_reason raised ValueError: no idea"
    )
    assert rows["fake"]["status"] == "ok"
    listed = invoke("list", "--plugin", plugin, "--device", "cpu")
    assert listed.exit_code == 0 and "asking" in listed.stdout and "Traceback" not in listed.output


@pytest.mark.parametrize("code", [0, 1])
def test_a_plugin_that_calls_sys_exit_on_import_is_one_error_line(tmp_path, code, fake_device):
    plugin = write_plugin(tmp_path, f"sys.exit({code})\n")
    line = one_error_line(invoke("sweep", "--plugin", plugin, "-b", "fake", "--device", "cpu", "--no-save"), 1)
    assert "failed to import: SystemExit" in line


# Paths


def test_a_results_folder_removed_during_the_sweep_loses_no_row(tmp_path, monkeypatch, fake_device):
    import shutil

    from gemmbench.measure import session

    out_dir = tmp_path / "results"
    real = session.measure_cases

    def removing(*args, **kwargs):
        for index, record in enumerate(real(*args, **kwargs)):
            if index == 0:
                shutil.rmtree(out_dir)
            yield record

    monkeypatch.setattr(session, "measure_cases", removing)
    monkeypatch.setattr(tempfile_module(), "tempdir", str(tmp_path / "fallback"))
    (tmp_path / "fallback").mkdir()
    result = invoke("sweep", "-b", "fake", "--device", "cpu", "--m", "1,8", "--out-dir", out_dir)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "the run is saved to" in " ".join(result.stderr.split())
    (saved,) = (tmp_path / "fallback").glob("*.json")
    assert len(json.loads(saved.read_text())["records"]) == 2


def tempfile_module():
    import tempfile

    return tempfile


def test_an_export_that_cannot_be_written_at_the_end_goes_to_a_fallback_file(tmp_path, monkeypatch, fake_device):
    monkeypatch.setattr(tempfile_module(), "tempdir", str(tmp_path))
    target = tmp_path / "gone" / "rows.csv"
    from gemmbench.cli import options

    monkeypatch.setattr(options, "ensure_writable_file", lambda path, example="": None)  # found only at the end
    (tmp_path / "rows.csv").write_text("a file of the user's\n")
    result = invoke("sweep", "-b", "fake", "--device", "cpu", "--m", "1", "--no-save", "--csv", target, "-q")
    line = one_error_line(result, 1)
    (fallback,) = tmp_path.glob("rows.*.csv")
    assert f"written to {fallback} instead" in line
    assert fallback.read_text().startswith("model,gemm")
    assert (tmp_path / "rows.csv").read_text() == "a file of the user's\n"  # a file of that name is never replaced


def test_show_refuses_two_exports_to_stdout():
    assert "both ask for stdout" in one_error_line(invoke("show", FIXTURE, "--csv", "-", "--json", "-"), 2)


def test_a_json_export_to_a_folder_suggests_a_json_file(tmp_path):
    line = one_error_line(invoke("show", FIXTURE, "--json", tmp_path), 1)
    assert f"give a file path, e.g. {tmp_path / 'run.json'}" in line


# The Python API


@pytest.mark.parametrize(
    "options, what",
    [
        ({"budget_ms": -100}, "budget_ms = -100"),
        ({"target_ci_pct": 0}, "target_ci_pct = 0"),
        ({"warmup_ms": -5}, "warmup_ms = -5"),
        ({"hot": "yes"}, "hot = 'yes'"),
        ({"seed": "abc"}, "seed 'abc'"),
        ({"budgett_ms": 3}, "unexpected keyword argument 'budgett_ms'"),
    ],
)
def test_the_python_api_refuses_bad_options_with_the_one_error_type(options, what, fake_device):
    import gemmbench
    from gemmbench.errors import UsageError

    with pytest.raises(UsageError, match=re.escape(what)):
        gemmbench.sweep(backends=["fake"], device="cpu", m=[1], **options)


def test_the_python_api_has_a_signature_a_notebook_can_complete():
    import inspect

    import gemmbench

    parameters = inspect.signature(gemmbench.sweep).parameters
    assert {"presets", "m", "backends", "context", "budget_ms", "on_warning"} <= set(parameters)
    assert "time_calls" not in parameters and parameters["budget_ms"].default == 200.0


def test_a_fleet_check_with_error_rows_exits_1_saying_how_many(tmp_path):
    from samples import CASE, timed

    from gemmbench.records import ERROR, Provenance, Record, Run
    from gemmbench.records.runfile import run_to_json

    rows = [timed("mm_out_dtype", 6.0 + rank / 100, 1e-6, rank=rank, device_id=f"node:cuda:{rank}") for rank in (0, 1)]
    rows.append(Record.for_case(CASE, "upcast", ERROR, "not measured: rank 1 did not report it", rank=1))
    path = tmp_path / "fleet.json"
    path.write_text(run_to_json(Run(Provenance(), rows)))
    result = invoke("fleet", path)
    assert result.exit_code == 1 and "1 of 3 rows errored" in result.stderr
    assert "not measured: rank 1 did not report it" in result.stdout  # the reasons the message points to


@pytest.mark.parametrize(
    "run, what",
    [
        (FIXTURES / "h200_repeat1_no_kernels.json", "without the kernel pass"),
        (FIXTURES / "h200_groups_v4.json", "holds no sweep rows"),
    ],
)
def test_kernels_from_a_run_with_nothing_to_show_says_why_once(run, what):
    assert what in one_error_line(invoke("kernels", "--from", run), 1)


def test_a_group_csv_reads_back_as_the_group_run_it_came_from(tmp_path):
    from gemmbench.records.runfile import load_run

    path = tmp_path / "groups.csv"
    assert invoke("show", FIXTURES / "h200_groups_v4.json", "--csv", path).exit_code == 0
    original, again = load_run(FIXTURES / "h200_groups_v4.json"), load_run(path)
    assert again.groups == original.groups and not again.records
    assert invoke("recommend", path).exit_code == 0


def test_an_export_may_go_into_the_results_folder_the_same_command_creates(tmp_path, fake_device):
    out_dir = tmp_path / "new"
    result = invoke(
        "sweep", "-b", "fake", "--device", "cpu", "--m", "1", "--out-dir", out_dir, "--csv", out_dir / "rows.csv"
    )
    assert result.exit_code == 0, result.output
    assert (out_dir / "rows.csv").is_file() and list(out_dir.glob("*.json"))


@pytest.mark.parametrize("device", ["cuda:1", "cuda:0", "gpu"])
def test_a_gpu_chosen_by_index_is_checked_against_what_torch_sees(device, fake_device):
    import torch

    result = invoke("sweep", "-b", "fake", "--device", device, "--m", "1", "--no-save")
    if device == "gpu":
        assert "unknown device 'gpu'" in one_error_line(result, 2)
    elif not torch.cuda.is_available():
        assert f"device {device} was asked for, but torch sees no CUDA device" in one_error_line(result, 2)
    elif int(device[-1]) >= torch.cuda.device_count():
        assert "torch sees" in one_error_line(result, 2)


def test_a_second_ctrl_c_while_the_results_are_written_loses_no_export(tmp_path, monkeypatch, fake_device):
    import os
    import signal

    from gemmbench.cli import session

    real = session.export

    def interrupted_again(*args):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C once more, while the exports are written
        return real(*args)

    monkeypatch.setattr(session, "export", interrupted_again)
    target = tmp_path / "rows.csv"
    result = invoke("sweep", "-b", "fake", "--device", "cpu", "--m", "1", "--no-save", "--csv", target, "-q")
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("model,gemm")
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # Ctrl-C works again afterwards


def test_comparing_a_group_run_with_a_sweep_run_says_what_each_is():
    groups, sweep = FIXTURES / "h200_groups_v4.json", FIXTURES / "h200_tiers.json"
    line = one_error_line(invoke("compare", groups, sweep), 1)
    assert "is a group run and" in line and "is a sweep run: they have no rows in common" in line
    assert "timers" not in line
    assert "is a sweep run and" in one_error_line(invoke("compare", sweep, groups, "--allow-mismatch"), 1)


# Raw samples


def test_keep_samples_keeps_every_timer_sample_in_the_run_file_csv_and_frame(tmp_path):
    import statistics

    import gemmbench
    from gemmbench.records.runfile import load_run

    sweep = ("sweep", "-b", "upcast", "--device", "cpu", "--shape", "8x16", "--m", "1", "--budget-ms", "2")
    result = invoke(*sweep, "--keep-samples", "--out-dir", tmp_path, "--csv", tmp_path / "run.csv", "-q")
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.json")
    (record,) = load_run(path).records
    assert len(record.latency_samples_us) == record.latency.samples > 1
    # The summary's source: the samples, in windows whose medians give the figure and its interval.
    assert len(record.latency_window_medians_us) >= 1 and min(record.latency_samples_us) == record.latency.min_us
    assert statistics.median(record.latency_window_medians_us) == record.latency.median_us
    (from_csv,) = load_run(tmp_path / "run.csv").records
    assert from_csv.latency_samples_us == pytest.approx(record.latency_samples_us)
    frame = load_run(path).to_frame()
    assert list(frame["latency_samples_us"][0]) == list(record.latency_samples_us)
    api = gemmbench.sweep(shapes=["8x16"], m=[1], backends=["upcast"], device="cpu", keep_samples=True)
    assert len(api.records[0].latency_samples_us) > 1
    plain = gemmbench.sweep(shapes=["8x16"], m=[1], backends=["upcast"], device="cpu")
    assert plain.records[0].latency_samples_us is None  # only on request


def test_a_run_file_with_a_bad_sample_is_one_error_line(tmp_path):
    doc = json.loads(FIXTURE.read_text())
    doc["records"][0]["latency_samples_us"] = [1.0, "fast"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert "latency_samples_us" in one_error_line(invoke("show", path), 1)


def test_keep_samples_must_be_true_or_false_in_the_api():
    import gemmbench
    from gemmbench.errors import GemmbenchError

    with pytest.raises(GemmbenchError, match="keep_samples"):
        gemmbench.sweep(shapes=["8x16"], m=[1], backends=["upcast"], device="cpu", keep_samples="yes")


def test_kernels_from_a_cpu_run_says_the_cpu_records_no_kernels(tmp_path, fake_device):
    sweep = ("sweep", "-b", "fake", "--device", "cpu", "--shape", "8x16", "--m", "1", "--out-dir", tmp_path, "-q")
    assert invoke(*sweep).exit_code == 0
    (run,) = tmp_path.glob("*.json")
    line = one_error_line(invoke("kernels", "--from", run), 1)
    assert "was recorded on the CPU, where the profiler sees no kernels" in line and "--no-kernels)" not in line


def test_an_export_that_cannot_be_written_still_says_where_the_run_went_and_writes_the_other(
    tmp_path, monkeypatch, fake_device
):
    from gemmbench.errors import GemmbenchError
    from gemmbench.records import runfile

    write = runfile.write_text

    def failing_csv(path, text, stdout):  # a path that passed the check up front and fails at the end
        if str(path).endswith(".csv"):
            raise GemmbenchError(f"cannot write {path}: Permission denied", "choose another path")
        write(path, text, stdout)

    monkeypatch.setattr(runfile, "write_text", failing_csv)
    sweep = ("sweep", "-b", "fake", "--device", "cpu", "--shape", "8x16", "--m", "1", "--out-dir", tmp_path / "runs")
    result = invoke(*sweep, "--csv", tmp_path / "x.csv", "--json", tmp_path / "run.json")
    assert result.exit_code == 1 and "saved 1 row to" in result.stderr and "cannot write" in result.stderr
    assert (tmp_path / "run.json").is_file() and list((tmp_path / "runs").glob("*.json"))


@pytest.mark.parametrize("keep", ["header cut", "header only"])
def test_a_csv_cut_short_is_one_error_line_not_an_empty_answer(tmp_path, keep):
    full = tmp_path / "full.csv"
    assert invoke("show", FIXTURE, "--csv", full).exit_code == 0
    header = full.read_text().splitlines()[0]
    cut = tmp_path / "cut.csv"
    middle = len(header) // 2
    while "," in header[middle - 1 : middle + 1]:  # cut inside a column's name, not between two
        middle -= 1
    cut.write_text(header[:middle] if keep == "header cut" else header + "\n")
    for command in ("show", "recommend"):
        line = one_error_line(invoke(command, cut), 1)
        assert ("cut short?" if keep == "header cut" else "holds a header and no rows") in line


def test_a_choice_made_on_throttled_rows_says_so():
    run = FIXTURES / "h200_deepseek_v3_hot.json"  # its rows at M = 4096..16384 ran with the clocks down
    text = invoke("recommend", run).stdout
    assert "throttled at M = " in text and "4096" in text.split("throttled at M = ")[1].split(":")[0]
    (rec,) = json.loads(invoke("recommend", run, "--json").stdout)
    assert 4096 in rec["throttled_m"]
    assert "# throttled at M = " in invoke("recommend", run, "--python").stdout
    (unthrottled,) = json.loads(invoke("recommend", FIXTURES / "h200_tiers.json", "--json").stdout)[:1]
    assert unthrottled["throttled_m"] == []


def test_a_negative_relative_error_in_a_file_is_one_error_line(tmp_path):
    doc = json.loads(FIXTURE.read_text())
    doc["records"][0]["rel_err"] = -1e-7  # would count as accurate
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert "rel_err = -1e-07: negative" in one_error_line(invoke("recommend", path), 1)


def test_a_path_that_is_not_a_file_says_so():
    line = one_error_line(invoke("show", "/dev/null"), 1)
    assert "/dev/null is not a file" in line and "does not exist" not in line


def test_the_api_takes_one_m_as_a_list_of_one_and_refuses_a_string_for_a_list(fake_device):
    import gemmbench
    from gemmbench.errors import GemmbenchError

    run = gemmbench.sweep(shapes=["8x16"], m=1, backends=["fake"], device="cpu")
    assert [r.m for r in run.records] == [1]
    with pytest.raises(GemmbenchError, match=r"shapes = '8x16' is a string, not a list"):
        gemmbench.sweep(shapes="8x16", m=[1], backends=["fake"], device="cpu")


def test_comparing_csvs_of_the_fake_backend_does_not_call_them_gpu_runs(tmp_path, fake_device):
    sweep = ("sweep", "-b", "fake", "--device", "cpu", "--shape", "8x16", "--m", "1", "--no-save", "-q")
    assert invoke(*sweep, "--csv", tmp_path / "a.csv").exit_code == 0
    header = invoke("compare", tmp_path / "a.csv", tmp_path / "a.csv").stdout.splitlines()[0]
    assert "cuda" not in header and "unknown device" in header


def test_a_plugin_interrupted_while_it_imports_stops_with_a_word_and_rc_130(tmp_path, fake_device):
    plugin = tmp_path / "slow_import.py"
    plugin.write_text("raise KeyboardInterrupt\n")
    result = invoke("sweep", "--plugin", plugin, "-b", "fake", "--device", "cpu", "--no-save")
    assert result.exit_code == 130 and "interrupted (Ctrl-C)" in result.stderr


def test_a_group_run_with_no_timed_row_does_not_name_a_timer():
    result = invoke("group", "-p", "deepseek-v4-pro", "-b", "mm_out_dtype", "--device", "cpu", "--m", "1", "--no-save")
    text = " ".join(result.stdout.split())  # the legend wraps at the terminal's width
    assert result.exit_code == 3 and "times: none (no row was timed)" in text and "nothing was timed" in result.stderr
    assert "CUDA-graph device time" not in text


def test_comparing_a_run_with_itself_says_so():
    run = FIXTURES / "h200_tiers.json"
    result = invoke("compare", run, run)
    assert result.exit_code == 0 and "is compared with itself" in result.stderr


def test_a_dimension_beyond_what_gemmbench_takes_in_a_file_is_one_error_line(tmp_path):
    doc = json.loads(FIXTURE.read_text())
    doc["records"][0]["m"] = 10**30
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert "above 2147483647" in one_error_line(invoke("show", path), 1)


DYING = """
import os

class Dying(Backend):
    name = "dying"
    code = "x.float() @ w.float().T, then os._exit(7) at M = 2"
    def prepare(self, case, inputs):
        if case.m == 2:
            os._exit(7)  # the process ends at once: no exception, no cleanup
        return lambda: inputs.out.copy_(inputs.x.float() @ inputs.w.float().t())

BACKENDS = [Dying()]
"""


def test_a_process_killed_by_a_plugin_keeps_every_finished_row_in_the_csv_and_the_run_file(tmp_path):
    plugin = write_plugin(tmp_path, DYING)
    csv_path, out_dir = tmp_path / "rows.csv", tmp_path / "runs"
    command = [sys.executable, "-m", "gemmbench", "sweep", "--plugin", str(plugin), "--plugin", fakes.__file__]
    command += ["--backend", "fake,dying"]
    command += [
        "--shape",
        "8x16",
        "--m",
        "1,2",
        "--device",
        "cpu",
        "-q",
        "--csv",
        str(csv_path),
        "--out-dir",
        str(out_dir),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 7, finished.stderr
    kept = [(row["m"], row["backend"], row["status"]) for row in csv.DictReader(io.StringIO(csv_path.read_text()))]
    assert kept == [("1", "fake", "ok"), ("1", "dying", "ok")]
    (run_file,) = out_dir.glob("*.json")
    assert [(r.m, r.backend) for r in load_run(run_file).records] == [(1, "fake"), (1, "dying")]
