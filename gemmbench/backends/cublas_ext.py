"""Backends of the optional cuBLAS extension (gemmbench/ext): the hand-written path vLLM shipped as
router_gemm_bf16_fp32 before torch.mm(out_dtype=) replaced it, and two cuBLASLt variants."""

from __future__ import annotations

import torch

from gemmbench.backends.base import GemmCall, GemmInputs
from gemmbench.backends.ext_backend import ExtensionBackend, out_op_call
from gemmbench.spec.cases import Case
from gemmbench.timing import timers

# Heuristic algorithms cublaslt_tuned_ext tries per shape, and the sampling time it gives each.
LT_TUNE_CANDIDATES = 8
LT_TUNE_BUDGET_S = 0.01


class CublasExt(ExtensionBackend):
    name = "cublas_ext"
    code = "cublasGemmEx(bf16, bf16 -> fp32, CUBLAS_COMPUTE_32F) on torch's handle (vLLM's router_gemm_bf16_fp32)"

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        return out_op_call(torch.ops.gemmbench.gemm_ex_out, inputs)


class CublasLtExt(ExtensionBackend):
    name = "cublaslt_ext"
    code = "cublasLtMatmul(bf16, bf16 -> fp32), the heuristic's first algorithm, torch's workspace"

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        return _lt_call(inputs, algo=0)


class CublasLtTunedExt(ExtensionBackend):
    """cuBLASLt with the fastest of the heuristic's top algorithms, chosen once per shape by device time."""

    name = "cublaslt_tuned_ext"
    code = f"cublasLtMatmul with the fastest of the heuristic's top {LT_TUNE_CANDIDATES} algorithms"

    def __init__(self) -> None:
        self._best: dict[tuple, int] = {}

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        key = (case.m, case.n, case.k, inputs.x.device)
        if key not in self._best:
            self._best[key] = self._tune(inputs)
        return _lt_call(inputs, self._best[key])

    @staticmethod
    def _tune(inputs: GemmInputs) -> int:
        count = min(LT_TUNE_CANDIDATES, torch.ops.gemmbench.lt_algo_count(inputs.x, inputs.w))
        times = {}
        for algo in range(count):
            call = _lt_call(inputs, algo)
            try:
                call()
                target = timers.FixedTime(LT_TUNE_BUDGET_S)  # every algorithm sampled alike
                unroll = timers.fit_graph_unroll(call, upper_bound_us=timers.GRAPH_TARGET_REPLAY_US)
                times[algo] = timers.time_graph(call, target, unroll).median_us
            except RuntimeError:  # an algorithm the heuristic offered but that fails here is simply not chosen
                continue
        return min(times, key=times.get) if times else 0


def _lt_call(inputs: GemmInputs, algo: int) -> GemmCall:
    lt_out, x, w, out = torch.ops.gemmbench.lt_out, inputs.x, inputs.w, inputs.out

    def call() -> torch.Tensor:
        lt_out(x, w, out, algo)
        return out

    return call
