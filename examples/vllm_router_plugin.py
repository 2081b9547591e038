"""vLLM's specialised router GEMM (`dsv3_router_gemm`, the first tier of its GateLinear) as a gemmbench
backend, where vLLM is installed:

    gemmbench sweep --plugin examples/vllm_router_plugin.py --preset deepseek-v3 --m 1:16:x2

Without vLLM (or a GPU) its rows are skipped, with the reason.
"""

from __future__ import annotations

import importlib.util

import torch

from gemmbench.backends import Backend, GemmCall, GemmInputs
from gemmbench.spec import Case

# The shapes vLLM's kernel is built for: DeepSeek-V3 (256 experts) and Kimi-K2 (384) routers, hidden 7168,
# up to 16 tokens; vLLM falls back to torch.mm(out_dtype=) beyond.
MAX_TOKENS = 16
EXPERTS = (256, 384)
HIDDEN = 7168


class VllmDsv3RouterGemm(Backend):
    name = "vllm_dsv3_router_gemm"
    code = "vllm._custom_ops.dsv3_router_gemm(hidden_states=x, router_weight=w, output_dtype=torch.float32)"

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device)
        if reason:
            return reason
        if device.type != "cuda":
            return "no CUDA device"
        if importlib.util.find_spec("vllm") is None:  # a query: vLLM is imported only to run it
            return "vLLM is not installed (pip install vllm)"
        if case.m > MAX_TOKENS or case.n not in EXPERTS or case.k != HIDDEN:
            return f"vLLM's kernel runs M <= {MAX_TOKENS}, N in {EXPERTS}, K = {HIDDEN} only"
        return None

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        from vllm import _custom_ops as ops

        x, w, out = inputs.x, inputs.w, inputs.out

        def call() -> torch.Tensor:
            # The op returns a new tensor; copying it into the shared output keeps the correctness check
            # honest (and adds one small copy kernel to each call, visible in the kernel pass).
            return out.copy_(ops.dsv3_router_gemm(hidden_states=x, router_weight=w, output_dtype=torch.float32))

        return call


BACKENDS = [VllmDsv3RouterGemm()]
