"""The cuBLAS extension without a GPU: status, cache keys, skipped rows. GPU tests: test_ext_gpu.py."""

import json

import pytest
import torch
from samples import measure_all
from typer.testing import CliRunner

from gemmbench.backends import REGISTRY, ext
from gemmbench.cache import CACHE_ENV
from gemmbench.cli import app
from gemmbench.records import SKIPPED
from gemmbench.spec.cases import Case

runner = CliRunner()
EXT_BACKENDS = ["cublas_ext", "cublaslt_ext", "cublaslt_tuned_ext"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def test_cache_key_follows_source_torch_and_cuda(monkeypatch):
    key = ext.build_key()
    assert ext.build_dir().name == key and key in ext.library_path().name
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert ext.build_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(torch.version, "cuda", "99.0")
    assert ext.build_key() != key


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    assert ext.cache_root() == tmp_path / "cache"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ext.cache_root() == tmp_path / "xdg" / "gemmbench"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU explanation")
def test_status_explains_why_it_cannot_run_here_and_exits_0():
    result = runner.invoke(app, ["ext", "status", "--json"])
    assert result.exit_code == 0
    facts = json.loads(result.stdout)
    assert facts["built"] is False and facts["can_run_here"] is False and facts["cannot_run"] == "no CUDA device"
    table = runner.invoke(app, ["ext", "status"])
    assert table.exit_code == 0 and "no CUDA device" in table.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU skip rows")
def test_sweep_gives_skipped_rows_with_the_reason(small_case):
    records = list(measure_all([small_case], [REGISTRY[n] for n in EXT_BACKENDS], torch.device("cpu")))
    assert [(r.backend, r.status, r.reason) for r in records] == [(n, SKIPPED, "no CUDA device") for n in EXT_BACKENDS]


@pytest.mark.skipif(torch.version.cuda is not None, reason="a CPU build of torch cannot build the extension")
def test_build_on_a_cpu_torch_is_a_clear_error():
    result = runner.invoke(app, ["ext", "build"])
    assert result.exit_code == 1 and result.stderr.startswith("Error: cannot build the cuBLAS extension here: ")
    assert "CPU build" in result.stderr


def test_a_failed_build_is_reported_once_not_retried_per_case(monkeypatch):
    attempts = []

    def failing_load():
        attempts.append(1)
        raise ext.ExtensionUnavailable("the build failed (compiler output in /x/build.log)")

    monkeypatch.setattr(ext, "cannot_run", lambda: None)
    monkeypatch.setattr(ext, "cannot_build", lambda: None)
    monkeypatch.setattr(ext, "load", failing_load)
    monkeypatch.setattr(ext, "_load_failure", None)
    assert ext.unavailable_reason() is None and ext.needs_build()  # it would build, so it counts as available...
    assert not attempts  # ...and asking did not build it
    first, second = ext.ensure_loaded(), ext.ensure_loaded()
    assert first == second == "cuBLAS extension unavailable: the build failed (compiler output in /x/build.log)"
    assert ext.unavailable_reason() == first and not ext.needs_build()
    assert len(attempts) == 1


def test_clean_removes_cached_builds():
    (ext.build_dir()).mkdir(parents=True)
    (ext.cache_root() / "ext" / "old").mkdir()
    result = runner.invoke(app, ["ext", "clean"])
    assert result.exit_code == 0 and "removed 2 build(s)" in result.stdout
    assert not (ext.cache_root() / "ext").exists()


def test_a_toolkit_without_headers_is_named_with_the_fix(monkeypatch, tmp_path):
    """torch guessed CUDA_HOME from an nvcc wrapper: the folder has bin/nvcc but no CUDA headers."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_text("#!/bin/sh\n")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(ext._cpp_extension(), "CUDA_HOME", str(tmp_path))
    reason = ext.cannot_build()
    assert f"torch takes the CUDA toolkit to be {tmp_path} (CUDA_HOME)" in reason and "set CUDA_HOME" in reason


def compiles_without(monkeypatch, failing_source, message) -> list[list[str]]:
    """Builds stand in for the compiler: any that includes `failing_source` fails with `message`, the others
    write the library. Returns the defines of the builds that succeeded, as they happen."""
    built = []

    def compile_(sources, defines):
        if failing_source in sources:
            raise RuntimeError(message)
        built.append(defines)
        ext.library_path().write_bytes(b"")

    monkeypatch.setattr(ext, "cannot_build", lambda: None)
    monkeypatch.setattr(ext, "_compile", compile_)
    return built


def test_a_router_kernel_that_does_not_compile_costs_only_its_own_backend(monkeypatch):
    from gemmbench.backends.router_small_m_ext import RouterSmallMExt

    built = compiles_without(monkeypatch, ext.ROUTER_SOURCE, "nvcc fatal : unsupported gpu architecture")
    assert ext.build() == ext.library_path() and built == [[ext.WITHOUT_ROUTER_KERNEL]]
    problem = ext.router_kernel_problem()
    assert (
        "did not compile" in problem and ext.ROUTER_LOG_NAME in problem and "cuBLAS backends are unaffected" in problem
    )
    assert "unsupported gpu architecture" in (ext.build_dir() / ext.ROUTER_LOG_NAME).read_text()
    monkeypatch.setattr(ext, "unavailable_reason", lambda: None)  # the library is there and loads
    case = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    assert RouterSmallMExt().unavailable_reason(case, torch.device("cuda")) == problem
    assert REGISTRY["cublas_ext"].unavailable_reason(case, torch.device("cuda")) is None


def test_a_tensor_core_kernel_that_does_not_compile_costs_only_its_own_backend(monkeypatch):
    from gemmbench.backends.router_small_m_ext import RouterSmallMExt, RouterSmallMMma

    built = compiles_without(monkeypatch, ext.ROUTER_MMA_SOURCE, "ptxas fatal : Unknown modifier '.cluster'")
    assert ext.build() == ext.library_path() and built == [[ext.WITHOUT_MMA_KERNEL]]
    assert ext.router_kernel_problem() is None
    problem = ext.mma_kernel_problem()
    assert "tensor-core kernel did not compile" in problem and ext.MMA_LOG_NAME in problem
    assert "Unknown modifier" in (ext.build_dir() / ext.MMA_LOG_NAME).read_text()
    assert ext.status().facts()["mma_kernel_problem"] == problem
    monkeypatch.setattr(ext, "unavailable_reason", lambda: None)  # the library is there and loads
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    case = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    assert RouterSmallMMma().unavailable_reason(case, torch.device("cuda")) == problem
    assert RouterSmallMExt().unavailable_reason(case, torch.device("cuda")) is None


def test_a_build_that_fails_every_way_says_where_the_log_is(monkeypatch):
    def compile_(sources, defines):
        raise RuntimeError("g++: error")

    monkeypatch.setattr(ext, "cannot_build", lambda: None)
    monkeypatch.setattr(ext, "_compile", compile_)
    with pytest.raises(ext.ExtensionUnavailable, match="the build failed"):
        ext.build()
    assert "g++: error" in (ext.build_dir() / ext.LOG_NAME).read_text()


def test_a_library_that_does_not_load_is_a_reason_not_a_traceback(monkeypatch):
    monkeypatch.setattr(ext, "build", lambda: ext.library_path())
    monkeypatch.setattr(ext, "is_loaded", lambda: False)

    def load_library(path):
        raise OSError("undefined symbol: launch_router_small_m")

    monkeypatch.setattr(torch.ops, "load_library", load_library)
    with pytest.raises(ext.ExtensionUnavailable, match="does not load .*undefined symbol.*ext clean"):
        ext.load()


def test_ext_help_names_every_backend_and_producer_the_extension_builds():
    from gemmbench.backends.producers import PRODUCERS

    text = " ".join(CliRunner().invoke(app, ["ext", "--help"]).stdout.split())
    for name in [b.name for b in REGISTRY.values() if b.needs_extension]:
        assert name in text
    assert all(name.startswith("gemmbench_norm_pdl_") for name, p in PRODUCERS.items() if p.needs_extension)
    assert "gemmbench_norm_pdl_*" in text


class FakeLtOps:
    """torch.ops.gemmbench's cuBLASLt operators as a double: each call records the algorithm it ran."""

    def __init__(self, algorithms: int):
        self.algorithms, self.ran = algorithms, []

    def lt_algo_count(self, x, w):
        return self.algorithms

    def lt_out(self, x, w, out, algo):
        self.ran.append(algo)


class AlgorithmTimer:
    """A CandidateTimer double: runs the candidate once and gives the time its algorithm has in `times_us`
    (an exception there: the candidate raises it)."""

    def __init__(self, ops: FakeLtOps, inputs, times_us: dict):
        self.ops, self.inputs, self.times_us, self.rules = ops, inputs, times_us, []

    def device_time_us(self, prepare, rule):
        self.rules.append(rule)
        prepare(self.inputs)()
        outcome = self.times_us[self.ops.ran[-1]]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_cublaslt_tuned_ext_runs_what_tune_chose_and_its_prepare_never_times(monkeypatch, tmp_path, small_case):
    from gemmbench.backends.base import CACHED, TUNED_NOW
    from gemmbench.backends.cublas_ext import LT_HEURISTIC_FIRST, LT_TUNE_BUDGET_S, LT_TUNE_CANDIDATES, CublasLtTunedExt
    from gemmbench.cache import CACHE_ENV
    from gemmbench.timing.inputs import make_inputs
    from gemmbench.timing.stopping import FixedTime

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    ops = FakeLtOps(algorithms=LT_TUNE_CANDIDATES + 4)  # the heuristic offers more than are tried
    monkeypatch.setattr(torch.ops, "gemmbench", ops, raising=False)
    backend, inputs = CublasLtTunedExt(), make_inputs(small_case, torch.device("cpu"), seed=0)
    backend.prepare(small_case, inputs)()  # a direct call, without tune: the heuristic's first, nothing timed
    assert ops.ran == [LT_HEURISTIC_FIRST]
    times_us = {algo: 5.0 + algo for algo in range(LT_TUNE_CANDIDATES)}
    times_us.update({0: RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED"), 3: 2.0})
    timer = AlgorithmTimer(ops, inputs, times_us)
    backend.tune(small_case, inputs, timer)
    assert timer.rules == [FixedTime(LT_TUNE_BUDGET_S)] * LT_TUNE_CANDIDATES  # every algorithm timed alike
    backend.tune(small_case, inputs, timer)  # once per shape
    assert len(timer.rules) == LT_TUNE_CANDIDATES
    backend.prepare(small_case, inputs)()
    assert ops.ran[-1] == 3
    assert backend.configuration(small_case) == f"heuristic's algorithm 3 ({TUNED_NOW})"
    rerun = CublasLtTunedExt()  # another process on this machine: the cached choice, nothing timed
    rerun.tune(small_case, inputs, timer)
    assert len(timer.rules) == LT_TUNE_CANDIDATES
    rerun.prepare(small_case, inputs)()
    assert ops.ran[-1] == 3 and rerun.configuration(small_case) == f"heuristic's algorithm 3 ({CACHED})"
