"""router_small_m without a GPU: its limits and configurations, and (where Triton is installed) its
kernel run by Triton's interpreter on the CPU. GPU tests: test_gpu.py."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gemmbench.backends.router_small_m import RouterSmallM
from gemmbench.backends.router_small_m_kernel import CUDA_CORES, MAX_M, MAX_PARTIALS, block_m, candidates
from gemmbench.spec.cases import Case


def test_m_buckets_are_powers_of_two():
    assert [block_m(m) for m in (1, 2, 3, 5, 16, 17, 32)] == [1, 2, 4, 8, 16, 32, 32]


def test_every_candidate_keeps_its_partial_sums_in_registers():
    for m in range(1, MAX_M + 1):
        configs = candidates(m)
        on_cuda_cores = [c for c in configs if c.product == CUDA_CORES]
        assert configs and all(block_m(m) * c.block_n * c.block_k <= MAX_PARTIALS for c in on_cuda_cores)


def test_a_tile_is_a_whole_number_of_steps_along_k():
    assert all(c.k_split % c.block_k == 0 for m in (1, 32) for c in candidates(m))


def test_it_says_why_it_cannot_run_here():
    backend = RouterSmallM()
    router = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    assert backend.unavailable_reason(router, torch.device("cpu")) == "no CUDA device (a Triton kernel)"
    fp16 = Case("x", "y", "custom", 1, 8, 16, in_dtype="fp16")
    assert backend.unavailable_reason(fp16, torch.device("cpu")).startswith("only bf16")
    assert backend.configuration(router) is None  # nothing tuned yet


INTERPRETED = """
import torch
from gemmbench.backends.base import GemmInputs
from gemmbench.backends.router_small_m_kernel import CUDA_CORES, candidates, prepared
torch.manual_seed(0)
for m in (1, 3, 32):
    x = torch.randn(m, 1000, dtype=torch.bfloat16)  # K = 1000: no block size divides it
    w = torch.randn(9, 1000, dtype=torch.bfloat16)  # N = 9: a column block of 2 does not divide it
    inputs = GemmInputs(x, w, torch.full((m, 9), float("nan")))
    ref = x.double() @ w.double().T
    for config in [c for c in candidates(m) if c.product == CUDA_CORES][::2]:
        call = prepared(inputs, config)
        first = call().clone()
        assert torch.equal(first, call()), (m, config)  # the same bits on every call
        err = ((first.double() - ref).norm() / ref.norm()).item()
        assert err <= 1e-5, (m, config, err)
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_the_kernel_is_exact_and_deterministic_in_tritons_interpreter():
    """The CUDA-core configurations, split and whole; the tensor-core ones run in test_gpu.py only, because
    Triton's interpreter (3.9) multiplies bf16 `tl.dot` operands wrongly (fp32 ones right)."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run([sys.executable, "-c", INTERPRETED], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_it_is_in_the_default_set():
    from gemmbench.backends import REGISTRY, default_backends

    assert REGISTRY["router_small_m"] in default_backends()


def test_it_refuses_a_weight_beyond_its_32_bit_offsets(monkeypatch):
    import importlib.util as importlib_util

    monkeypatch.setattr(importlib_util, "find_spec", lambda name: object())  # as where Triton is installed
    huge = Case("x", "y", "custom", 1, 1 << 20, 1 << 12)
    assert "32-bit offsets" in RouterSmallM().unavailable_reason(huge, torch.device("cuda"))


def test_the_cuda_kernel_says_why_it_cannot_run(monkeypatch):
    from gemmbench.backends import ext
    from gemmbench.backends.router_small_m_ext import EXT_MAX_M, RouterSmallMExt

    backend = RouterSmallMExt()
    router = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    assert backend.unavailable_reason(router, torch.device("cpu")) == "no CUDA device"
    monkeypatch.setattr(ext, "unavailable_reason", lambda: None)  # as where the extension builds
    cuda = torch.device("cuda")
    assert backend.unavailable_reason(router, cuda) is None
    beyond = Case("DeepSeek-V3", "router", "router", EXT_MAX_M + 1, 256, 7168)
    assert backend.unavailable_reason(beyond, cuda).startswith(f"runs M <= {EXT_MAX_M} only")
    odd_k = Case("x", "y", "custom", 1, 8, 1001)
    assert "multiple of 8" in backend.unavailable_reason(odd_k, cuda)


def test_the_tensor_core_kernel_needs_clusters_and_says_so(monkeypatch):
    from gemmbench.backends import ext
    from gemmbench.backends.router_small_m_ext import EXT_MAX_M, RouterSmallMMma

    backend = RouterSmallMMma()
    router = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    assert backend.unavailable_reason(router, torch.device("cpu")) == "no CUDA device"
    monkeypatch.setattr(ext, "unavailable_reason", lambda: None)  # as where the extension builds
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert backend.unavailable_reason(router, cuda) == (
        "needs an sm90 or later GPU (thread block clusters); this one is sm80"
    )
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert backend.unavailable_reason(router, cuda) is None
    beyond = Case("DeepSeek-V3", "router", "router", EXT_MAX_M + 1, 256, 7168)
    assert backend.unavailable_reason(beyond, cuda).startswith(f"runs M <= {EXT_MAX_M} only")


def test_a_default_sweep_measures_every_first_tier_kernel():
    from gemmbench.backends import REGISTRY, default_backends

    first_tier = {REGISTRY[name] for name in ("router_small_m", "router_small_m_ext", "router_small_m_mma")}
    assert first_tier <= set(default_backends())
    assert REGISTRY["router_small_m_ext"].needs_extension and REGISTRY["router_small_m_mma"].needs_extension


def test_a_torn_tuning_cache_is_said_when_it_means_tuning_again(monkeypatch, tmp_path):
    from gemmbench.backends import router_small_m_tuning as tuning

    on_gpu_x(monkeypatch, tmp_path)
    case, cuda = Case("x", "y", "router", 1, 256, 7168), torch.device("cuda")
    (tmp_path / tuning.CACHE_FILE).write_text('{"GPU X|N=256|K=7168|M<=1": {"product": "fma", "blo')
    note = RouterSmallM().tuning_note(case, cuda)
    assert note.startswith("the file ") and "is not a JSON object" in note and "tuning router_small_m" in note
    tuning.write_cache(tuning.cache_key(case, cuda), tuning.Tuned(tuning.Config(CUDA_CORES, 1, 1024, 2048), 3.0, 1.1))
    assert RouterSmallM().tuning_note(case, cuda) is None  # rebuilt: the tuning is found again


class NeverTimer:
    """A CandidateTimer that fails the test if anything times a candidate with it."""

    def device_time_us(self, prepare, rule):
        pytest.fail("a candidate was timed")


class SameTimeTimer:
    """A CandidateTimer that gives every candidate the same time and counts the candidates it timed."""

    def __init__(self):
        self.rules = []

    def device_time_us(self, prepare, rule):
        self.rules.append(rule)
        return 3.0


def cpu_inputs(case):
    from gemmbench.timing.inputs import make_inputs

    return make_inputs(case, torch.device("cpu"), seed=0)


def on_gpu_x(monkeypatch, cache):
    """A GPU named "GPU X" with an empty cache and no shipped tuning files: tunings are looked up as on it."""
    from gemmbench.backends import router_small_m_tuning as tuning

    monkeypatch.setenv("GEMMBENCH_CACHE_DIR", str(cache))
    monkeypatch.setattr(tuning.torch.cuda, "get_device_name", lambda device=None: "GPU X")
    monkeypatch.setattr(tuning, "cache_key", lambda case, device: f"GPU X|{tuning.shape_key(case)}")
    monkeypatch.setattr(tuning, "SHIPPED_TUNINGS", cache / "shipped")


def write_tuning_file(folder, gpu, configs, name="t.json"):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"gpu": gpu, "configs": configs}))


def test_a_tuning_file_for_the_gpu_is_used_without_tuning_and_the_row_says_so(monkeypatch, tmp_path):
    from gemmbench.backends import router_small_m_tuning as tuning

    on_gpu_x(monkeypatch, tmp_path)
    fma = {"product": "fma", "block_n": 2, "block_k": 1024, "k_split": 8192, "num_warps": 4, "margin": 1.08}
    write_tuning_file(tmp_path / "shipped", "GPU Y", {"N=256|K=7168|M<=2": dict(fma, block_n=9)}, "a.json")
    write_tuning_file(tmp_path / "shipped", "GPU X", {"N=256|K=7168|M<=2": fma})  # this GPU's
    case, cuda = Case("x", "y", "router", 2, 256, 7168), torch.device("cuda")
    backend = RouterSmallM()
    assert backend.tuning_note(case, cuda) is None
    backend.tune(case, cpu_inputs(case), NeverTimer())
    assert (
        backend.configuration(case)
        == "router_small_m fma BLOCK_N=2 BLOCK_K=1024 K_SPLIT=8192 warps=4 (tuning file t.json)"
    )
    user = dict(fma, block_n=1)  # the user's own file wins over the shipped one
    write_tuning_file(tmp_path / tuning.USER_TUNINGS, "GPU X", {"N=256|K=7168|M<=2": user})
    assert tuning.lookup(case, cuda).config.block_n == 1
    other_m = Case("x", "y", "router", 8, 256, 7168)  # a bucket no file has: tuned, announced
    assert "tuning router_small_m for N=256, K=7168, M <= 8" in backend.tuning_note(other_m, cuda)


def test_a_fresh_tuning_keeps_its_margin_and_is_cached(monkeypatch, tmp_path):
    from gemmbench.backends import router_small_m_tuning as tuning

    on_gpu_x(monkeypatch, tmp_path)
    a, b, slow, broken = candidates(1)[-1], candidates(1)[0], candidates(1)[1], candidates(1)[2]
    passes = []

    def candidate_times(timer, configs, budget_s):  # the first pass, then the second, over what is left
        passes.append((configs, budget_s))
        return {c: {a: 3.0, b: 3.3, slow: 4.0}[c] for c in configs}

    monkeypatch.setattr(tuning, "compile_all", lambda inputs, configs: {broken: RuntimeError("out of registers")})
    monkeypatch.setattr(tuning, "candidates", lambda m: [a, b, slow, broken])
    monkeypatch.setattr(tuning, "candidate_times", candidate_times)
    case = Case("x", "y", "router", 1, 256, 7168)
    inputs = cpu_inputs(case)
    tuned = tuning.tune(case, inputs, NeverTimer())
    assert (tuned.config, tuned.time_us, tuned.margin) == (a, 3.0, pytest.approx(1.1))
    # Compiled all at once; what failed to compile is not timed; what is over 15% slower, once only.
    assert passes == [([a, b, slow], tuning.FIRST_PASS_BUDGET_S), ([a, b], tuning.TUNE_BUDGET_S)]
    assert tuning.choose(case, inputs, NeverTimer()) == tuning.Choice(a, tuning.TUNED_NOW)
    assert tuning.choose(case, inputs, NeverTimer()) == tuning.Choice(a, tuning.CACHED)  # cached, with its margin
    (entry,) = json.loads((tmp_path / tuning.CACHE_FILE).read_text()).values()
    assert entry["margin"] == pytest.approx(1.1) and entry["time_us"] == 3.0


def test_prepare_never_tunes_it_runs_the_untuned_default_until_tune_chooses(monkeypatch, tmp_path):
    from gemmbench.backends import router_small_m_tuning as tuning

    on_gpu_x(monkeypatch, tmp_path)
    monkeypatch.setattr(tuning, "compile_all", lambda inputs, configs: {})  # no Triton here: nothing to compile
    case, cuda = Case("x", "y", "router", 4, 256, 7168), torch.device("cuda")
    backend, inputs = RouterSmallM(), cpu_inputs(case)
    backend.prepare(case, inputs)  # a direct call, without tune: nothing is timed, nothing cached
    assert backend.configuration(case) == f"{tuning.UNTUNED_CONFIG} ({tuning.UNTUNED})"
    assert not (tmp_path / tuning.CACHE_FILE).exists()
    assert "tuning router_small_m for N=256, K=7168, M <= 4" in backend.tuning_note(case, cuda)  # still to tune
    timer = SameTimeTimer()
    backend.tune(case, inputs, timer)
    assert len(timer.rules) == 2 * len(candidates(4))  # all tie: every candidate is timed again
    assert backend.configuration(case) == f"{candidates(4)[0]} ({tuning.TUNED_NOW})"
    assert backend.tuning_note(case, cuda) is None
    backend.tune(Case("x", "y", "router", 3, 256, 7168), inputs, NeverTimer())  # once per shape and M bucket
    fresh = RouterSmallM()
    fresh.tune(case, inputs, NeverTimer())
    assert fresh.configuration(case) == f"{candidates(4)[0]} ({tuning.CACHED})"


def test_the_untuned_default_is_a_configuration_of_every_m():
    from gemmbench.backends import router_small_m_tuning as tuning

    assert all(tuning.UNTUNED_CONFIG in candidates(m) for m in range(1, MAX_M + 1))


def test_candidates_are_timed_alike_by_the_given_timer_and_one_that_fails_is_dropped():
    from gemmbench.backends import router_small_m_tuning as tuning
    from gemmbench.timing.stopping import FixedTime

    class ScriptedTimer:
        def __init__(self, outcomes):
            self.outcomes, self.rules = iter(outcomes), []

        def device_time_us(self, prepare, rule):
            self.rules.append(rule)
            outcome = next(self.outcomes)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    a, b, c = candidates(1)[:3]
    timer = ScriptedTimer([4.0, RuntimeError("out of shared memory"), 3.0])
    assert tuning.candidate_times(timer, [a, b, c], 0.02) == {a: 4.0, c: 3.0}
    assert timer.rules == [FixedTime(0.02)] * 3


SHIPPED = {
    "router_small_m_nvidia-h200.json": "NVIDIA H200",
    "router_small_m_nvidia-h100-80gb-hbm3.json": "NVIDIA H100 80GB HBM3",
}


def test_a_tuning_file_ships_for_each_gpu_the_team_measures_on():
    from gemmbench.backends import router_small_m_tuning as tuning

    assert sorted(path.name for path in tuning.SHIPPED_TUNINGS.glob("*.json")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_tunings_are_configurations_the_kernel_has(name):
    import json

    from gemmbench.backends import router_small_m_tuning as tuning

    content = json.loads((tuning.SHIPPED_TUNINGS / name).read_text())
    assert content["gpu"] == SHIPPED[name] and content["configs"]
    for key, entry in content["configs"].items():
        m = int(key.rsplit("M<=", 1)[1])
        assert tuning._config_of(entry) in candidates(m), key


def test_a_tuning_file_entry_the_kernel_does_not_have_is_skipped_not_run(monkeypatch, tmp_path):
    from gemmbench.backends import router_small_m_tuning as tuning

    on_gpu_x(monkeypatch, tmp_path)
    case = Case("x", "y", "router", 2, 256, 7168)
    bad = {"product": "fma", "block_n": 9, "block_k": 1024, "k_split": 8192, "num_warps": 4}  # no BLOCK_N = 9
    write_tuning_file(tmp_path / "shipped", "GPU X", {"N=256|K=7168|M<=2": bad})
    assert tuning.file_config("GPU X", case) is None
    (tmp_path / "shipped" / "t.json").write_text('{"gpu": "GPU X", "configs": []}')  # not a mapping
    assert tuning.file_config("GPU X", case) is None


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_tunings_cover_every_gemm_of_every_preset_at_every_m_bucket(monkeypatch, name):
    """A first sweep of any preset on these GPUs tunes nothing: `gemmbench tune` over every preset made them."""
    import importlib.util as importlib_util
    import json

    from gemmbench.backends import router_small_m_tuning as tuning
    from gemmbench.backends.router_small_m_kernel import MAX_M
    from gemmbench.spec.parse import build_cases
    from gemmbench.spec.presets import preset_names, select_gemms

    monkeypatch.setattr(importlib_util, "find_spec", lambda name: object())  # as where Triton is installed
    shipped = json.loads((tuning.SHIPPED_TUNINGS / name).read_text())["configs"]
    buckets = [1 << i for i in range(MAX_M.bit_length())]
    cases = build_cases(select_gemms(preset_names(), [], []), [], buckets)
    runs = [c for c in cases if RouterSmallM().unavailable_reason(c, torch.device("cuda")) is None]
    assert runs and not {tuning.shape_key(c) for c in runs} - set(shipped)


def test_compile_ahead_compiles_each_kernel_the_cases_run_once_with_and_without_pdl(monkeypatch):
    from gemmbench.backends import router_small_m
    from gemmbench.backends.router_small_m_kernel import TENSOR_CORES, Config
    from gemmbench.backends.router_small_m_tuning import FROM_FILE, Choice

    # the H100 file's configurations for DeepSeek-V3's router: CUDA cores to M = 4, two tensor-core tiles
    fma, dot_a, dot_b = (
        Config(CUDA_CORES, 1, 2048, 8192),
        Config(TENSOR_CORES, 16, 256, 512),
        Config(TENSOR_CORES, 32, 256, 256),
    )
    by_bucket = {1: fma, 2: fma, 4: fma, 8: dot_a, 16: dot_b, 32: dot_a}
    monkeypatch.setattr(
        router_small_m.tuning, "lookup", lambda case, device: Choice(by_bucket[block_m(case.m)], FROM_FILE)
    )
    jobs = []
    monkeypatch.setattr(router_small_m, "compile_jobs", lambda given: jobs.extend(given) or {})
    cases = [Case("DeepSeek-V3", "router", "router", m, 256, 7168) for m in (*range(1, 17), 32)]
    RouterSmallM().compile_ahead(cases, torch.device("cpu"))
    compiled = [(inputs.x.shape[0], config, pdl) for inputs, config, pdl in jobs]
    # M = 1 (M's own specialisation), 2, 3 (4 alike), 5 (6-8 alike: one tile height), 9 (10-15), 16 (a
    # multiple of 16), 32
    assert compiled == [(m, by_bucket[block_m(m)], pdl) for m in (1, 2, 3, 5, 9, 16, 32) for pdl in (False, True)]
    assert all(inputs.w is jobs[0][0].w for inputs, _, _ in jobs)  # one weight per shape


def test_loading_a_compiled_kernel_reads_its_run_and_leaves_a_failure_to_the_first_launch():
    from gemmbench.backends.router_small_m_kernel import _load

    read = []

    class Compiled:
        @property
        def run(self):
            read.append(self)
            return "launcher"

    class Future:  # Triton's asynchronous compile mode returns one
        def __init__(self):
            self.compiled = Compiled()

        def result(self):
            return self.compiled

    class NoLauncher:
        @property
        def run(self):
            raise OSError("cc: not found")

    compiled, future = Compiled(), Future()
    _load(compiled)
    _load(future)
    _load(NoLauncher())  # not raised: the first launch meets it again, in the row that reports it
    assert read == [compiled, future.compiled]
