"""gemmbench tune without a GPU: which cases it tunes, the tuning file it writes and that sweeps then read,
and its refusal on the CPU (the tuning itself runs in tests/test_gpu.py)."""

import json

import pytest
import torch
from test_router_small_m import on_gpu_x
from typer.testing import CliRunner

from gemmbench.backends import router_small_m_tuning as tuning
from gemmbench.cache import write_json
from gemmbench.cli import app
from gemmbench.measure import tuning as tune_command
from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import make_inputs

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def test_tune_refuses_the_cpu_with_one_error_line():
    result = CliRunner().invoke(app, ["tune", "-p", "deepseek-v3", "--device", "cpu"])
    assert result.exit_code == 1  # not a malformed option: this machine cannot do it
    expected = "Error: tuning needs a CUDA device (router_small_m is a Triton kernel) — run it on the GPU"
    assert result.stderr.strip() == expected


def test_each_shape_and_m_bucket_is_tuned_once_and_the_file_it_writes_is_read_back(monkeypatch, tmp_path):
    on_gpu_x(monkeypatch, tmp_path)
    monkeypatch.setattr(tune_command.Bench, "warm_device", lambda self: None)
    monkeypatch.setattr(tune_command.RouterSmallM, "unavailable_reason", lambda self, case, device: None)
    monkeypatch.setattr(tune_command, "make_inputs", lambda case, device, seed: make_inputs(case, CPU, seed))
    winner = tuning.Config("fma", 1, 1024, 2048)
    tuned_cases = []

    def tune(case, inputs, timer):  # the tuning function a sweep's router_small_m.tune reaches, and its timer
        assert isinstance(timer, tune_command.CaseTimer) and timer.case == case
        tuned_cases.append(case)
        return tuning.Tuned(winner, 3.0, 1.1)

    monkeypatch.setattr(tuning, "tune", tune)
    cases = [Case("a", "router", "router", m, 256, 7168) for m in (1, 3, 4, 5, 8)]  # buckets 1, 4, 4, 8, 8
    chosen = tune_command.tunable(cases, CUDA)
    assert [c.m for c in chosen] == [1, 3, 5]
    tuned, failed = tune_command.tune_cases(chosen, CUDA)
    assert not failed and len(tuned_cases) == 3
    assert list(tuned) == ["N=256|K=7168|M<=1", "N=256|K=7168|M<=4", "N=256|K=7168|M<=8"]
    path = tuning.default_tuning_path("GPU X")
    write_json(path, tuning.tuning_file("GPU X", tuned, "torch t, triton t"))
    content = json.loads(path.read_text())
    assert content["configs"]["N=256|K=7168|M<=4"] == {**vars(winner), "time_us": 3.0, "margin": 1.1}
    (tmp_path / tuning.CACHE_FILE).unlink()  # the cache tune_cases filled: the file alone must do
    assert tuning.lookup(cases[1], CUDA) == tuning.Choice(winner, f"{tuning.FROM_FILE} {path.name}")


def test_a_shape_that_cannot_be_tuned_costs_the_others_nothing(monkeypatch, tmp_path):
    on_gpu_x(monkeypatch, tmp_path)
    monkeypatch.setattr(tune_command.Bench, "warm_device", lambda self: None)
    monkeypatch.setattr(tune_command, "make_inputs", lambda case, device, seed: make_inputs(case, CPU, seed))

    def tune(case, inputs, timer):
        if case.n == 384:
            raise RuntimeError("no configuration of router_small_m runs on this GPU")
        return tuning.Tuned(tuning.Config("fma", 1, 1024, 2048), 3.0, 1.1)

    monkeypatch.setattr(tuning, "tune", tune)
    cases = [Case("a", "router", "router", 1, n, 7168) for n in (256, 384)]
    tuned, failed = tune_command.tune_cases(cases, CUDA)
    assert list(tuned) == ["N=256|K=7168|M<=1"]
    assert failed == {"N=384|K=7168|M<=1": "RuntimeError: no configuration of router_small_m runs on this GPU"}


def test_the_candidate_timer_on_the_cpu_says_tuning_needs_a_gpu_through_time_candidates():
    from gemmbench.backends import time_candidates

    case = Case("a", "router", "router", 1, 8, 16)
    timer = tune_command.CaseTimer(case, tune_command.Bench(CPU, tune_command.MeasureOptions()))
    with pytest.raises(tune_command.TuningNeedsGpu, match="tuning needs a CUDA device"):
        time_candidates(timer, {"a": lambda inputs: lambda: None}, 0.01)  # not dropped as a candidate's fault


def test_tunable_leaves_out_what_router_small_m_does_not_run(monkeypatch):
    from gemmbench.backends import router_small_m

    monkeypatch.setattr(router_small_m.importlib.util, "find_spec", lambda name: object())  # Triton "installed"
    router, attention = Case("a", "router", "router", 8, 256, 7168), Case("a", "b", "attention", 64, 2048, 7168)
    assert tune_command.tunable([router, attention], CUDA) == [router]  # M = 64 is beyond its largest M


def test_compile_ahead_gives_each_backend_the_cases_it_runs_and_ignores_its_failures():
    from gemmbench.backends import Backend
    from gemmbench.measure.tuning import compile_ahead

    seen = {}

    class Small(Backend):
        name, max_m = "small", 4

        def compile_ahead(self, cases, device):
            seen[self.name] = [case.m for case in cases]

    class Failing(Backend):
        name = "failing"

        def compile_ahead(self, cases, device):
            raise RuntimeError("ptxas said no")

    class Elsewhere(Backend):
        name = "elsewhere"

        def unavailable_reason(self, case, device):
            return "not here"

        def compile_ahead(self, cases, device):
            seen[self.name] = cases

    cases = [Case("m", "g", "router", m, 256, 7168) for m in (1, 4, 8)]
    compile_ahead([Failing(), Small(), Elsewhere()], cases, torch.device("cpu"))
    assert seen == {"small": [1, 4]}  # after a failing backend; none for a backend that runs no case here
