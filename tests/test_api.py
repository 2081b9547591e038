"""The Python API for notebooks: gemmbench.load_run, Run.to_frame, gemmbench.sweep."""

import re
from pathlib import Path

import pandas as pd
import pytest

import gemmbench
from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.records import OK, Record
from gemmbench.records.schema import column_names
from gemmbench.records.table import records_to_csv

FIXTURES = Path(__file__).parent / "fixtures"
SM90 = FIXTURES / "h200_deepseek_v3_sm90.json"


def test_a_saved_run_becomes_a_frame_with_typed_columns():
    frame = gemmbench.load_run(SM90).to_frame()
    assert list(frame.columns) == column_names(Record) and len(frame) == 9
    for column in ("device_median_us", "latency_median_us", "rel_err", "tflops", "kernel_sum_us"):
        assert pd.api.types.is_float_dtype(frame[column]), column
    for column in ("m", "n", "k", "device_samples", "kernel_count"):
        assert pd.api.types.is_integer_dtype(frame[column]), column
    assert pd.api.types.is_bool_dtype(frame["noisy"])
    assert isinstance(frame["kernels"][0], list) and frame["kernels"][0][0].startswith("nvjet_sm90")
    assert frame.groupby("backend")["device_median_us"].min()["mm_out_dtype"] > 0


def test_a_csv_export_gives_the_same_frame_without_kernel_durations(tmp_path):
    run = gemmbench.load_run(SM90)
    path = tmp_path / "run.csv"
    path.write_text(records_to_csv(run.records))
    pd.testing.assert_frame_equal(gemmbench.load_run(path).to_frame(), run.to_frame())


def test_sweep_returns_a_run_and_prints_nothing(capsys, tmp_path, monkeypatch, fake_device):
    monkeypatch.chdir(tmp_path)  # where the CLI's default `results/` would go
    run = gemmbench.sweep(shapes=["8x16"], m=[1, 2], backends=["fake", "mm_out_dtype"], device="cpu")
    assert capsys.readouterr() == ("", "")
    assert [(r.m, r.backend, r.status) for r in run.records] == [
        (1, "fake", OK),
        (1, "mm_out_dtype", "skipped"),
        (2, "fake", OK),
        (2, "mm_out_dtype", "skipped"),
    ]
    assert run.provenance.device_type == "cpu" and not list(tmp_path.iterdir())  # no out_dir: no file
    saved = gemmbench.sweep(presets=["deepseek-v3"], m="1", backends=["fake"], device="cpu", out_dir=tmp_path / "runs")
    (path,) = (tmp_path / "runs").glob("*.json")
    assert gemmbench.load_run(path).records == saved.records


def test_sweep_rejects_bad_options_with_the_cli_errors(fake_device):
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        gemmbench.sweep(backends=["nope"], device="cpu")
    with pytest.raises(UsageError, match="bad M value"):
        gemmbench.sweep(m=[0], backends=["fake"], device="cpu")
    with pytest.raises(GemmbenchError, match="does not exist"):
        gemmbench.load_run("no/such/run.json")


def test_a_group_run_becomes_a_frame_of_its_group_rows():
    from gemmbench.records import GroupRecord

    run = gemmbench.load_run(FIXTURES / "h200_groups_v4.json")
    frame = run.to_frame()
    assert list(frame.columns) == column_names(GroupRecord) and len(frame) == len(run.groups) > 0
    assert pd.api.types.is_float_dtype(frame["parallel_device_median_us"])
    assert frame["members"].map(lambda members: members is None or isinstance(members, list)).all()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"samples": 5, "target_ci_pct": 3.0}, "samples asks for a fixed count of samples, so target_ci_pct would"),
        ({"budget_ms": float("inf")}, "budget_ms = inf is not a number from 1 to 60000"),
        ({"warmup_ms": float("inf")}, "warmup_ms = inf is not a number from 0 to 10000"),
        ({"target_ci_pct": 1000.0}, "target_ci_pct = 1000.0 is not a number from 0.01 to 100"),
    ],
)
def test_the_python_api_refuses_what_the_command_line_refuses(options, message):
    with pytest.raises(UsageError, match=message):
        gemmbench.sweep(shapes=["8x16"], m=[1], device="cpu", **options)


def test_the_python_api_warns_of_options_the_cpu_ignores_as_the_command_line_does():
    told = []
    gemmbench.sweep(
        shapes=["8x16"], m=[1], backends=["upcast"], device="cpu", hot=True, budget_ms=5.0, on_warning=told.append
    )
    assert told == [
        "hot has no effect on the CPU: gemmbench manages the L2 of GPUs only",
        "budget_ms has no effect on the CPU: it sets the CUDA-graph device timer; the CPU is timed in eager windows",
    ]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"context": 5}, "context = 5 is not a list"),
        ({"weights": 123}, "weights = 123 is of type int, not str or PathLike"),
        ({"shapes": [(64, 256)]}, "shapes item = (64, 256) is of type tuple, not str"),
        ({"out_dir": 5}, "out_dir = 5 is of type int, not str or PathLike"),
    ],
)
def test_an_option_of_the_wrong_type_is_a_usage_error_not_a_type_error(options, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        gemmbench.sweep(**{"shapes": ["8x16"], "m": [1], "backends": ["upcast"], "device": "cpu", **options})
