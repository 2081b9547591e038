"""A plugin backend that runs anywhere, the CPU included: a reference for writing your own.

Load it with `--plugin examples/chunked_fp32_plugin.py`:

    gemmbench sweep --plugin examples/chunked_fp32_plugin.py --backend chunked_fp32 --shape 1x64x128 --no-save

It computes x @ w.T the way a hand-written kernel does, in fp32 over chunks of K, and stands for a
kernel in progress: gemmbench checks it against float64, times it, profiles it and recommends it (or
not) like any built-in backend.
"""

from __future__ import annotations

import torch

from gemmbench.backends import Backend, GemmCall, GemmInputs
from gemmbench.spec import Case

# Columns of K per step: a kernel's K tile.
K_CHUNK = 512


class ChunkedFp32(Backend):
    name = "chunked_fp32"
    code = f"out = sum over {K_CHUNK}-wide K chunks of x[:, chunk].float() @ w[:, chunk].float().T"

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        # The base class refuses dtype pairs other than bf16 x bf16 -> fp32; add your own limits here.
        return super().unavailable_reason(case, device)

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        x, w, out = inputs.x, inputs.w, inputs.out

        def call() -> torch.Tensor:
            out.zero_()
            for start in range(0, case.k, K_CHUNK):
                chunk = slice(start, start + K_CHUNK)
                out.addmm_(x[:, chunk].float(), w[:, chunk].float().t())
            return out

        return call


BACKENDS = [ChunkedFp32()]
