"""The serving engines' own kernels, where their package imports: FlashInfer's router GEMM and SGLang's
(sgl-kernel's) as backends here, FlashInfer's RMSNorms and vLLM's own RMSNorm kernels as producers (in
producers.py). SGLang and vLLM call these same FlashInfer norms before the router where FlashInfer is
installed, and SGLang's `dsv3_router_gemm` calls this same FlashInfer GEMM first on sm90/sm100
(docs/design.md, what was measured); sgl-kernel's own build of that kernel is a backend too.
Without the package, each is a skipped row that names what to install.
FlashInfer JIT-builds each kernel with nvcc on its first use (about 30 s), then loads it from its cache.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Iterable

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.spec.cases import Case

FLASHINFER = "flashinfer"
INSTALL_FLASHINFER = "FlashInfer is not installed (pip install 'gemmbench[engines]', or flashinfer-python)"
VLLM = "vllm"
INSTALL_VLLM = "vLLM is not installed (pip install vllm)"
SGL_KERNEL = "sgl_kernel"
INSTALL_SGL_KERNEL = "SGLang's kernels are not installed (pip install sgl-kernel)"
INSTALL_HINTS = {FLASHINFER: INSTALL_FLASHINFER, VLLM: INSTALL_VLLM, SGL_KERNEL: INSTALL_SGL_KERNEL}
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
# sgl-kernel's dsv3_router_gemm (csrc/gemm/dsv3_router_gemm_entry.cu): the same TensorRT-LLM kernel, built for
# K = 7168 with N = 256 (DeepSeek-V3) or 384 (Kimi-K2), M = 1..16, bf16 or fp32 out, checked when it runs;
# SGLang calls it on sm90 and later, launched with PDL where the environment sets TRTLLM_ENABLE_PDL=1.
SGL_ROUTER_SHAPES = ((7168, 256), (7168, 384))
SGL_ROUTER_MAX_M = 16
SGL_ROUTER_MIN_CAPABILITY = (9, 0)
SGL_PDL_VARIABLE = "TRTLLM_ENABLE_PDL"
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


def unbuilt_shape(case: Case, built: Iterable[tuple[int, int]], package: str) -> str | None:
    """Why a package's router kernel, built for the (K, N) in `built` only, cannot run `case`; None if it can."""
    if (case.k, case.n) in built:
        return None
    shapes = ", ".join(f"{n}x{k}" for k, n in built)
    return f"{package} has this kernel for N x K = {shapes} only"


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
        if reason := unbuilt_shape(case, FLASHINFER_ROUTER_OPS, "FlashInfer"):
            return reason
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


class SglangRouterGemm(Backend):
    """sgl-kernel's router GEMM (`sgl_kernel.dsv3_router_gemm`, for DeepSeek-V3 and Kimi-K2 routers at
    M <= 16, which SGLang calls where it does not call FlashInfer's): TensorRT-LLM's dsv3RouterGemm kernel
    as sgl-kernel builds it. Its Python function allocates the output on each call; this calls the op
    underneath with gemmbench's output, so the row times the kernel and no allocation or copy. Whether it
    launches with PDL is sgl-kernel's choice (TRTLLM_ENABLE_PDL=1 in the environment), so the row's
    configuration says whether that was set."""

    name = "sglang_router_gemm"
    code = "torch.ops.sgl_kernel.dsv3_router_gemm(out, x, w), under sgl_kernel.dsv3_router_gemm"
    origin = SGL_KERNEL
    pdl_use = f"as sgl-kernel decides: on where {SGL_PDL_VARIABLE}=1 (the row's configuration)"
    max_m = SGL_ROUTER_MAX_M

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device) or missing_engine(SGL_KERNEL, device)
        if reason:
            return reason
        if reason := unbuilt_shape(case, SGL_ROUTER_SHAPES, "sgl-kernel"):
            return reason
        if capability(device) < SGL_ROUTER_MIN_CAPABILITY:
            return f"SGLang runs it on compute capability {dotted(SGL_ROUTER_MIN_CAPABILITY)} and later only"
        return None

    def configuration(self, case: Case) -> str | None:
        value = os.environ.get(SGL_PDL_VARIABLE)
        return f"{SGL_PDL_VARIABLE} unset" if value is None else f"{SGL_PDL_VARIABLE}={value}"

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        importlib.import_module(SGL_KERNEL)  # registers its ops under torch.ops.sgl_kernel
        op = torch.ops.sgl_kernel.dsv3_router_gemm
        x, w, out = inputs.x, inputs.w, inputs.out

        def call() -> torch.Tensor:
            op(out, x, w)
            return out

        return call
