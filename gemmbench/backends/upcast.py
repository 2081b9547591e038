from __future__ import annotations

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.spec.cases import Case


class Upcast(Backend):
    """Exact but slow: two copy kernels, then an fp32 GEMM on the SIMT units instead of tensor cores."""

    name = "upcast"
    code = "torch.mm(x.float(), w.float().T)"

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: torch.mm(x.float(), w.float().t(), out=out)
