"""router_small_m without a GPU: its limits and configurations, and (where Triton is installed) its
kernel run by Triton's interpreter on the CPU. GPU tests: test_gpu.py."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gemmbench.backends.router_small_m import CUDA_CORES, MAX_M, MAX_PARTIALS, RouterSmallM, block_m, candidates
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
from gemmbench.backends.router_small_m import CUDA_CORES, candidates, prepared
torch.manual_seed(0)
for m in (1, 3, 16, 32):
    x = torch.randn(m, 1000, dtype=torch.bfloat16)  # K = 1000: no block size divides it
    w = torch.randn(40, 1000, dtype=torch.bfloat16)  # N = 40: no column block divides it
    inputs = GemmInputs(x, w, torch.full((m, 40), float("nan")))
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


def test_a_default_sweep_measures_both_first_tier_kernels():
    from gemmbench.backends import REGISTRY, default_backends

    assert {REGISTRY["router_small_m"], REGISTRY["router_small_m_ext"]} <= set(default_backends())
    assert REGISTRY["router_small_m_ext"].needs_extension


def test_a_torn_tuning_cache_is_said_when_it_means_tuning_again(monkeypatch, tmp_path):
    from gemmbench.backends import router_small_m

    monkeypatch.setenv("GEMMBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(router_small_m, "_cache_key", lambda case, device: f"GPU X|M<={block_m(case.m)}")
    case, cuda = Case("x", "y", "router", 1, 256, 7168), torch.device("cuda")
    (tmp_path / router_small_m.CACHE_FILE).write_text('{"GPU X|M<=1": {"product": "fma", "blo')
    note = RouterSmallM().tuning_note(case, cuda)
    assert note.startswith("the cache file ") and "is not a JSON object" in note and "tuning router_small_m" in note
    router_small_m._write_cache("GPU X|M<=1", router_small_m.Config(CUDA_CORES, 1, 1024, 2048))
    assert RouterSmallM().tuning_note(case, cuda) is None  # rebuilt: the tuning is found again
