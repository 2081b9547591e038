"""`router_small_m_ext`: the router's first tier as a CUDA kernel in the extension (ext/router_small_m.cu),
beside the Triton `router_small_m` (docs/tiers.md)."""

from __future__ import annotations

import torch

from gemmbench.backends import ext
from gemmbench.backends.base import GemmCall, GemmInputs
from gemmbench.backends.ext_backend import ExtensionBackend, out_op_call
from gemmbench.spec.cases import Case

# router_small_m_ext's kernel (ext/router_small_m.cu): one template instance per token count up to this, and
# 16-byte loads of 8 bf16 along K.
EXT_MAX_M = 16
EXT_K_MULTIPLE = 8


class RouterSmallMExt(ExtensionBackend):
    """The same first tier as a CUDA kernel in the extension, beside the Triton one: a CTA per expert row
    (or pair of rows), 16-byte loads put in flight before the multiplies, the token count a template
    parameter (TensorRT-LLM's dsv3RouterGemm design), the threads' sums added in a fixed order. Faster than
    router_small_m at M <= 8 on the H200 (docs/tiers.md); a fixed configuration per token count, no tuning."""

    name = "router_small_m_ext"
    launches_with_pdl = True
    code = "gemmbench's CUDA kernel for M <= 16 (ext/router_small_m.cu): a CTA per expert row, 16-byte loads"

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device) or ext.router_kernel_problem()
        if reason:
            return reason
        if case.m > EXT_MAX_M:
            return f"runs M <= {EXT_MAX_M} only (the torch.mm tier takes larger M)"
        if case.k % EXT_K_MULTIPLE:
            return f"K must be a multiple of {EXT_K_MULTIPLE} (16-byte loads), got {case.k}"
        return None

    def prepare(self, case: Case, inputs: GemmInputs, pdl: bool = False) -> GemmCall:
        return out_op_call(torch.ops.gemmbench.router_small_m_out, inputs, pdl)
