"""Fleets on the CPU: torchrun starts 1-3 ranks on the made-up device (fake_gemmbench.py) over gloo (CI's
evidence; the run on several GPUs is docs/fleet's)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemmbench.cli import app
from gemmbench.errors import GemmbenchError
from gemmbench.measure import fleet as distributed
from gemmbench.records.runfile import load_run
from gemmbench.records.schema import to_row

TORCHRUN = shutil.which("torchrun")
FAKE_GEMMBENCH = Path(__file__).parent / "fake_gemmbench.py"
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not on PATH")
runner = CliRunner()
# Rank 1 stops at M = 8, by dying or by hanging: a crash and a hung collective.
FAULTY_PLUGIN = """
import os, time
import torch
from gemmbench.backends import Backend

class Faulty(Backend):
    name = "faulty_rank1"
    code = "x @ w.T; rank 1 {fault} at M = 8"
    def prepare(self, case, inputs):
        x, w, out = inputs.x, inputs.w, inputs.out
        def call():
            if os.environ.get("RANK") == "1" and case.m == 8:
                {action}
            return torch.mm(x.float(), w.float().t(), out=out)
        return call

BACKENDS = [Faulty()]
"""


def torchrun(tmp_path, ranks, *args, env=None):
    """`torchrun --nproc-per-node ranks fake_gemmbench.py -- sweep ...` on the CPU: gemmbench on the made-up
    device; returns (process, run, run file)."""
    out = tmp_path / "out"
    command = [
        TORCHRUN,
        f"--nproc-per-node={ranks}",
        str(FAKE_GEMMBENCH),
        "--",
        "sweep",
        "--device",
        "cpu",
        "--out-dir",
        str(out),
        "-q",
        *map(str, args),
    ]
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), **(env or {})},
    )
    files = sorted(out.glob("*.json"))
    return process, (load_run(files[0]) if files else None), (files[0] if files else None)


def key(record):
    return (record.m, record.backend)


def test_split_points_spreads_the_points_and_merges_one_run(tmp_path):
    process, run, _ = torchrun(tmp_path, 2, "-b", "fake", "--m", "1,2,4")
    assert process.returncode == 0, process.stderr
    assert [(r.m, r.rank) for r in run.records] == [(1, 0), (2, 1), (4, 0)]  # a plain sweep's order
    assert run.complete and run.planned == 3
    fleet = run.provenance.to_dict()["fleet"]
    assert fleet["world_size"] == 2 and fleet["split"] == "points"
    assert [p["rank"] for p in fleet["ranks"]] == [0, 1] and all(p["device_id"] for p in fleet["ranks"])
    assert {r.device_id for r in run.records} == {p["device_id"] for p in fleet["ranks"]}


def test_one_rank_under_torchrun_equals_a_plain_sweep(tmp_path, fake_device):
    _, fleet_run, _ = torchrun(tmp_path, 1, "-b", "fake", "--m", "1,8")
    plain = runner.invoke(app, ["sweep", "-b", "fake", "--device", "cpu", "--m", "1,8", "--no-save", "--json", "-"])
    plain_rows = json.loads(plain.stdout)["records"]
    fleet_rows = [to_row(r) for r in fleet_run.records]
    for row in fleet_rows:
        assert row.pop("rank") == 0 and row.pop("device_id")
    for row in plain_rows:
        row.pop("rank"), row.pop("device_id")
    assert [
        (r["m"], r["backend"], r["device_median_us"], r["latency_median_us"], r["rel_err"]) for r in fleet_rows
    ] == [(r["m"], r["backend"], r["device_median_us"], r["latency_median_us"], r["rel_err"]) for r in plain_rows]


def test_split_none_is_a_fleet_check_that_fleet_reads(tmp_path):
    process, run, path = torchrun(tmp_path, 3, "-b", "fake,upcast", "--m", "1,2", "--split", "none")
    assert process.returncode == 0, process.stderr
    assert len(run.records) == 3 * 2 * 2 and {r.rank for r in run.records} == {0, 1, 2}
    shown = runner.invoke(app, ["show", str(path), "--md"])
    assert shown.exit_code == 0 and shown.stdout.count(":cpu:") == 6  # a row per device and M
    report = runner.invoke(app, ["fleet", str(path), "--json"])
    assert report.exit_code == 0, report.output
    devices = json.loads(report.stdout)["devices"]
    assert len(devices) == 3 and all(d["points"] == 4 for d in devices)


@pytest.mark.parametrize(
    "fault, action, env, cause",
    [
        ("dies", "os._exit(3)", {}, "the launcher ended the run"),
        ("hangs", "time.sleep(120)", {distributed.TIMEOUT_ENV: "3"}, ""),
    ],
)
def test_a_rank_that_stops_leaves_the_others_rows_and_is_named(tmp_path, fault, action, env, cause):
    (tmp_path / "faulty.py").write_text(FAULTY_PLUGIN.format(fault=fault, action=action))
    process, run, _ = torchrun(
        tmp_path, 2, "--plugin", "faulty.py", "-b", "faulty_rank1", "--m", "1,2,4,8", "--context", "copy", env=env
    )
    assert process.returncode != 0 and run is not None and not run.complete
    by_m = {r.m: r for r in run.records}
    assert by_m[1].status == by_m[2].status == "ok" and (by_m[1].rank, by_m[2].rank) == (0, 1)
    # every row of the unreported point, alone and in its layer
    assert [(r.context, r.status) for r in run.records if r.m == 8] == [(None, "error"), ("copy", "error")]
    assert by_m[8].reason.startswith("not measured: the fleet stopped before rank 1 reported it")
    assert cause in by_m[8].reason
    assert "Traceback" not in process.stderr.split("gemmbench")[-1]


def test_ranks_that_disagree_stop_before_any_work(monkeypatch):
    facts = [
        {"gemmbench": "0.1.0", "torch": "2.11", "options": ["sweep"], "split": "points"},
        {"gemmbench": "0.1.0", "torch": "2.10", "options": ["sweep"], "split": "points"},
    ]
    monkeypatch.setattr(distributed, "_gather", lambda mine: facts)
    with pytest.raises(GemmbenchError, match=r"the ranks disagree on torch \(rank 0: 2.11; rank 1: 2.10\)"):
        distributed._check_agreement("points")


def test_without_torchrun_nothing_changes(monkeypatch, fake_device):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.Fleet.from_environment() is None
    result = runner.invoke(app, ["sweep", "-b", "fake", "--device", "cpu", "--m", "1", "--no-save", "--split", "none"])
    assert result.exit_code == 0 and "--split has no effect without torchrun" in result.stderr


def test_cases_are_dealt_round_robin_or_given_to_every_rank():
    fleet = distributed.Fleet(rank=0, world_size=3, local_rank=0)
    assert distributed.assign(list(range(7)), fleet, "points") == [[0, 3, 6], [1, 4], [2, 5]]
    assert distributed.assign([1, 2], fleet, "none") == [[1, 2]] * 3
    assert sys.executable  # torchrun runs the same interpreter's packages


@pytest.mark.parametrize(
    "command", [["kernels", "--m", "1"], ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--m", "1", "--no-save"]]
)
def test_one_gpu_commands_refuse_torchrun(monkeypatch, command, fake_device):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = runner.invoke(app, [*command, "--device", "cpu"])
    assert result.exit_code == 1 and "not under torchrun" in result.stderr


@pytest.mark.parametrize(
    "environment, message",
    [
        ({"WORLD_SIZE": "2", "RANK": "0"}, "rank 0 of 2 could not join the fleet"),
        ({"WORLD_SIZE": "1", "RANK": "0", distributed.TIMEOUT_ENV: "10m"}, "'10m' is not a positive number of seconds"),
    ],
)
def test_a_fleet_that_cannot_start_is_one_error_line(monkeypatch, environment, message):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    args = ["sweep", "--shape", "8x16", "--m", "1", "--backend", "upcast", "--device", "cpu", "--no-save", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("timeout", ["inf", "-5", "0"])
def test_a_fleet_timeout_that_is_no_positive_number_is_refused(monkeypatch, timeout):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, timeout)
    args = ["sweep", "--shape", "8x16", "--m", "1", "--backend", "upcast", "--device", "cpu", "--no-save", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "is not a positive number of seconds" in result.stderr, result.output


def test_ctrl_c_in_a_fleet_is_an_interruption_not_a_failure_and_placeholders_do_not_count_as_finished():
    import torch

    from gemmbench.output.sweep import incomplete_note
    from gemmbench.records import ERROR, OK, Provenance, Record, Run
    from gemmbench.records.record import NOT_MEASURED
    from gemmbench.spec.cases import Case

    fleet = distributed.FleetDistribution(distributed.Fleet(0, 2, 0), "points", torch.device("cpu"))
    assert fleet.stopped(KeyboardInterrupt(), []) == (None, [])
    case = Case("m", "router", "router", 1, 8, 16)
    rows = [Record.for_case(case, "a", OK), Record.for_case(case, "b", ERROR, f"{NOT_MEASURED}the fleet stopped")]
    assert incomplete_note(Run(Provenance(), rows, planned=4, complete=False)) == "1 of 4 rows finished"
