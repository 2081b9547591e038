"""Producers: the kernel that writes a GEMM's input x right before the GEMM, as a model runs it (the sweep's
`--context`). In a decode step the router GEMM follows the RMSNorm that produced its input, so what the
layer pays for the GEMM is measured after its producer (measure/context.py).

A producer prepares, for one layer, a call that writes x from that layer's hidden state and returns it:
into the preallocated `x` it was given (an out-variant, as the fused norms of vLLM, SGLang and FlashInfer
are), or as a new tensor (torch's `F.rms_norm` has no out= form), which the GEMM is then prepared on.
Plugins add producers of their own with a module-level `PRODUCERS` list (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from gemmbench.backends import ext
from gemmbench.spec.cases import Case

NO_CONTEXT = "none"
# RMSNorm epsilon of the DeepSeek-V3/V4, Kimi-K2 and GLM configs (rms_norm_eps = 1e-6).
RMS_NORM_EPS = 1e-6
# Where gemmbench's norm lets a PDL dependent launch (ext/rms_norm.cu): at its start, the position that
# lets a dependent GEMM load its weights while the norm runs.
TRIGGER_NEVER, TRIGGER_AT_START, TRIGGER_AFTER_STORES = 0, 1, 2

ProducerCall = Callable[[], torch.Tensor]


class Producer:
    """Writes a GEMM's input x[M, K] (bf16) from a hidden state h[M, K] and a weight w[K] (both bf16)."""

    name: str = ""
    code: str = ""  # what it runs, for `gemmbench list` and the docs
    needs_extension: bool = False
    origin: str = "built-in"

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        """Why it cannot produce the input of `case` on `device`, or None. A query: builds nothing."""
        if case.in_dtype != "bf16":
            return f"writes bf16 inputs only (this case's are {case.in_dtype})"
        return None

    def prepare(self, case: Case, hidden: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> ProducerCall:
        """A call that writes the layer's input and returns it: `x` itself, or a new tensor."""
        raise NotImplementedError


class Copy(Producer):
    """The smallest producer: one elementwise kernel that writes x. What a kernel switch alone costs."""

    name = "copy"
    code = "x.copy_(h)"

    def prepare(self, case, hidden, weight, x):
        return lambda: x.copy_(hidden)


class TorchNorm(Producer):
    """The RMSNorm as torch computes it: F.rms_norm, a new output tensor each call."""

    name = "norm"
    code = f"F.rms_norm(h, (K,), w, eps={RMS_NORM_EPS:g})"

    def prepare(self, case, hidden, weight, x):
        shape = (hidden.shape[1],)
        return lambda: F.rms_norm(hidden, shape, weight, RMS_NORM_EPS)


class PdlNorm(Producer):
    """gemmbench's RMSNorm (ext/rms_norm.cu): one CTA per token row, writing x, and letting a dependent
    launched with PDL start as it begins."""

    name = "norm_pdl"
    code = "gemmbench's RMSNorm (ext/rms_norm.cu), signalling its dependents at its start"
    needs_extension = True

    def __init__(self, trigger: int = TRIGGER_AT_START) -> None:
        self.trigger = trigger

    def unavailable_reason(self, case, device):
        if device.type != "cuda":
            return "a CUDA kernel: needs a CUDA device"
        if case.k % 8:
            return f"K must be a multiple of 8 (16-byte loads), got {case.k}"
        return super().unavailable_reason(case, device) or ext.router_kernel_problem() or ext.unavailable_reason()

    def prepare(self, case, hidden, weight, x):
        op, trigger = torch.ops.gemmbench.rms_norm_out, self.trigger

        def call() -> torch.Tensor:
            op(hidden, weight, RMS_NORM_EPS, x, trigger)
            return x

        return call


PRODUCERS: dict[str, Producer] = {p.name: p for p in (Copy(), TorchNorm(), PdlNorm())}


def context_names() -> list[str]:
    return [NO_CONTEXT, *PRODUCERS]
