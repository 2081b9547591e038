"""The router's first tier as CUDA kernels in the extension, beside the Triton `router_small_m`
(docs/tiers.md): `router_small_m_ext` on CUDA cores (ext/router_small_m.cu) and `router_small_m_mma` on
tensor cores (ext/router_small_m_mma.cu)."""

from __future__ import annotations

import torch

from gemmbench.backends import ext
from gemmbench.backends.base import GemmCall, GemmInputs
from gemmbench.backends.ext_backend import ExtensionBackend, out_op_call
from gemmbench.spec.cases import Case

# Both kernels: one template instance per token count (or 8-token tile) up to this (and 16-byte loads along
# K: ext.unaligned_k).
EXT_MAX_M = 16
# Thread block clusters, which router_small_m_mma splits K across, came with sm90 (Hopper).
CLUSTER_CAPABILITY = (9, 0)


class _FirstTierKernel(ExtensionBackend):
    """What both CUDA kernels take: M <= 16, K a multiple of 8; launched with PDL or without."""

    launches_with_pdl = True
    max_m = EXT_MAX_M

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        return super().unavailable_reason(case, device) or ext.router_kernel_problem() or ext.unaligned_k(case.k)


class RouterSmallMExt(_FirstTierKernel):
    """The first tier on CUDA cores: a CTA per expert row (or pair of rows), 16-byte loads put in flight
    before the multiplies, the token count a template parameter (TensorRT-LLM's dsv3RouterGemm design),
    the threads' sums added in a fixed order. The fastest at M <= 2 on the H200 (docs/tiers.md); a fixed
    configuration per token count, no tuning."""

    name = "router_small_m_ext"
    code = "gemmbench's CUDA kernel for M <= 16 (ext/router_small_m.cu): a CTA per expert row, 16-byte loads"

    def prepare(self, case: Case, inputs: GemmInputs, pdl: bool = False) -> GemmCall:
        return out_op_call(torch.ops.gemmbench.router_small_m_out, inputs, pdl)


class RouterSmallMMma(_FirstTierKernel):
    """The first tier on tensor cores (sm90+): 16 expert rows per CTA against all tokens with mma.sync,
    K split across the CTAs of a thread block cluster and their partial tiles added in rank order, the
    weight's loads in flight before the wait for the producer. With PDL the fastest above M = 1-4 (by
    router) on the H200 (docs/tiers.md); its split of K follows the shape, no tuning."""

    name = "router_small_m_mma"
    code = (
        "gemmbench's tensor-core CUDA kernel for M <= 16 (ext/router_small_m_mma.cu): 16-row tiles, "
        "K split across a thread block cluster"
    )

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device) or ext.mma_kernel_problem()
        if reason is None and (capability := torch.cuda.get_device_capability(device)) < CLUSTER_CAPABILITY:
            return f"needs an sm90 or later GPU (thread block clusters); this one is sm{capability[0]}{capability[1]}"
        return reason

    def prepare(self, case: Case, inputs: GemmInputs, pdl: bool = False) -> GemmCall:
        return out_op_call(torch.ops.gemmbench.router_small_m_mma_out, inputs, pdl)
