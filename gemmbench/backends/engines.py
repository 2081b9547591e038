"""The serving engines' own kernels, where their package imports: FlashInfer's router GEMM (a backend
here) and its RMSNorms, and vLLM's own RMSNorm kernels (producers, in producers.py). SGLang and vLLM call
these same FlashInfer norms before the router where FlashInfer is installed, and SGLang's
`dsv3_router_gemm` calls this same FlashInfer GEMM first on sm90/sm100 (docs/design.md, what was measured).
Without the package, each is a skipped row that names what to install.
FlashInfer JIT-builds each kernel with nvcc on its first use (about 30 s), then loads it from its cache.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.spec.cases import Case

FLASHINFER = "flashinfer"
INSTALL_FLASHINFER = "FlashInfer is not installed (pip install 'gemmbench[engines]', or flashinfer-python)"
VLLM = "vllm"
INSTALL_VLLM = "vLLM is not installed (pip install vllm)"
INSTALL_HINTS = {FLASHINFER: INSTALL_FLASHINFER, VLLM: INSTALL_VLLM}
# FlashInfer's fp32-output router GEMMs (flashinfer/gemm/routergemm.py), by (K, N): on sm90 they run
# TensorRT-LLM's dsv3RouterGemm kernel, M = 1..16 tokens, on the compute capabilities its checks admit.
FLASHINFER_ROUTER_OPS = {
    (7168, 256): "mm_M1_16_K7168_N256",  # DeepSeek-V3/V3.2
    (7168, 384): "mm_M1_16_K7168_N384",  # Kimi-K2, DeepSeek-V4-Pro
    (6144, 256): "mm_M1_16_K6144_N256",  # GLM-5
    (7168, 896): "mm_M1_16_K7168_N896",
}
FLASHINFER_MAX_M = 16
FLASHINFER_ROUTER_CAPABILITIES = ((9, 0), (10, 0), (10, 3), (10, 7))
# Programmatic dependent launch came with sm90 (Hopper).
PDL_CAPABILITY = (9, 0)


def missing_engine(package: str, device: torch.device) -> str | None:
    """Why an engine's kernels cannot run on `device`: the package is not installed (what to install), or
    no CUDA device; a query."""
    if importlib.util.find_spec(package) is None:
        return INSTALL_HINTS[package]
    if device.type != "cuda":
        return "a CUDA kernel: needs a CUDA device"
    return None


def missing_flashinfer(device: torch.device) -> str | None:
    return missing_engine(FLASHINFER, device)


def capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def dotted(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


@functools.cache
def flashinfer(module: str):
    """A FlashInfer module, imported on first use (it imports torch extensions and its JIT)."""
    return importlib.import_module(f"{FLASHINFER}.{module}")


@functools.cache
def vllm_ops():
    """vLLM's Python bindings of its CUDA kernels (`vllm._custom_ops`), imported on first use."""
    return importlib.import_module(f"{VLLM}._custom_ops")


class FlashInferRouterGemm(Backend):
    """FlashInfer's router GEMM (`flashinfer.gemm.mm_M1_16_K<K>_N<N>`): TensorRT-LLM's dsv3RouterGemm
    kernel, one CTA per expert, bf16 in, fp32 out, for a fixed set of router shapes at M <= 16; it waits
    for its producer at its start (before loading the weight) when launched with PDL."""

    name = "flashinfer_router_gemm"
    code = "flashinfer.gemm.mm_M1_16_K<K>_N<N>(x, w.t(), out, launch_with_pdl=...)"
    origin = FLASHINFER
    launches_with_pdl = True
    max_m = FLASHINFER_MAX_M

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device) or missing_flashinfer(device)
        if reason:
            return reason
        if (case.k, case.n) not in FLASHINFER_ROUTER_OPS:
            shapes = ", ".join(f"{n}x{k}" for k, n in FLASHINFER_ROUTER_OPS)
            return f"FlashInfer has this kernel for N x K = {shapes} only"
        if capability(device) not in FLASHINFER_ROUTER_CAPABILITIES:
            admitted = "/".join(dotted(c) for c in FLASHINFER_ROUTER_CAPABILITIES)
            return f"FlashInfer admits compute capability {admitted} only, not {dotted(capability(device))}"
        return None

    def prepare(self, case: Case, inputs: GemmInputs, pdl: bool = False) -> GemmCall:
        op = getattr(flashinfer("gemm"), FLASHINFER_ROUTER_OPS[case.k, case.n])
        x, w_t, out = inputs.x, inputs.w.t(), inputs.out  # w.t(): the [K, N] column-major view it takes

        def call() -> torch.Tensor:
            op(x, w_t, out, launch_with_pdl=pdl)
            return out

        return call
