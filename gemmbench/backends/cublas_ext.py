"""Backends of the optional cuBLAS extension (gemmbench/ext): the hand-written path vLLM shipped as
router_gemm_bf16_fp32 before torch.mm(out_dtype=) replaced it, and two cuBLASLt variants."""

from __future__ import annotations

import functools

import torch

from gemmbench.backends.base import CandidateTimer, GemmCall, GemmInputs, time_candidates
from gemmbench.backends.ext_backend import ExtensionBackend, out_op_call
from gemmbench.spec.cases import Case

# Heuristic algorithms cublaslt_tuned_ext tries per shape, and the sampling time it gives each.
LT_TUNE_CANDIDATES = 8
LT_TUNE_BUDGET_S = 0.01
# The heuristic's first algorithm: cublaslt_ext's, and cublaslt_tuned_ext's where nothing tuned the shape.
LT_HEURISTIC_FIRST = 0


class CublasExt(ExtensionBackend):
    name = "cublas_ext"
    code = "cublasGemmEx(bf16, bf16 -> fp32, CUBLAS_COMPUTE_32F) on torch's handle (vLLM's router_gemm_bf16_fp32)"

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        return out_op_call(torch.ops.gemmbench.gemm_ex_out, inputs)


class CublasLtExt(ExtensionBackend):
    name = "cublaslt_ext"
    code = "cublasLtMatmul(bf16, bf16 -> fp32), the heuristic's first algorithm, torch's workspace"

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        return _lt_call(inputs, LT_HEURISTIC_FIRST)


class CublasLtTunedExt(ExtensionBackend):
    """cuBLASLt with the fastest of the heuristic's top algorithms, chosen once per shape by `tune` (device
    time); prepared without a `tune`, the heuristic's first algorithm, as cublaslt_ext."""

    name = "cublaslt_tuned_ext"
    code = f"cublasLtMatmul with the fastest of the heuristic's top {LT_TUNE_CANDIDATES} algorithms"

    def __init__(self) -> None:
        self._best: dict[tuple, int] = {}

    def tune(self, case: Case, inputs: GemmInputs, timer: CandidateTimer) -> None:
        key = _shape(case, inputs)
        if key not in self._best:
            self._best[key] = _fastest_algorithm(inputs, timer)

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        return _lt_call(inputs, self._best.get(_shape(case, inputs), LT_HEURISTIC_FIRST))


def _shape(case: Case, inputs: GemmInputs) -> tuple:
    return case.m, case.n, case.k, inputs.x.device


def _fastest_algorithm(inputs: GemmInputs, timer: CandidateTimer) -> int:
    """The heuristic's algorithm for the shape of `inputs` (of its top LT_TUNE_CANDIDATES) with the lowest
    device time by `timer`; the first where none runs."""
    count = min(LT_TUNE_CANDIDATES, torch.ops.gemmbench.lt_algo_count(inputs.x, inputs.w))
    prepares = {algo: functools.partial(_lt_call, algo=algo) for algo in range(count)}
    times = time_candidates(timer, prepares, LT_TUNE_BUDGET_S)  # one the heuristic offered that fails: left out
    return min(times, key=times.get) if times else LT_HEURISTIC_FIRST


def _lt_call(inputs: GemmInputs, algo: int) -> GemmCall:
    lt_out, x, w, out = torch.ops.gemmbench.lt_out, inputs.x, inputs.w, inputs.out

    def call() -> torch.Tensor:
        lt_out(x, w, out, algo)
        return out

    return call
