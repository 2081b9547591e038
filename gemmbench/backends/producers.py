"""Producers: the kernel that writes a GEMM's input x right before the GEMM, as a model runs it (the sweep's
`--context`). In a decode step the router GEMM follows the RMSNorm that produced its input, so what the
layer pays for the GEMM is measured with its producer, a layer at a time (measure/layers.py).

A producer prepares, for one layer, a call that writes x from that layer's hidden state and returns it:
into the preallocated `x` it was given (an out-variant, as the fused norms of vLLM, SGLang and FlashInfer
are), or as a new tensor (torch's `F.rms_norm` has no out= form), which the GEMM is then prepared on.
FlashInfer's norms, which SGLang and vLLM call before the router, are producers where it imports, and
vLLM's own norm kernels where vLLM imports.
Plugins add producers of their own with a module-level `PRODUCERS` list (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from gemmbench.backends import ext
from gemmbench.backends.engines import (
    FLASHINFER,
    PDL_CAPABILITY,
    VLLM,
    capability,
    dotted,
    flashinfer,
    missing_engine,
    missing_flashinfer,
    vllm_ops,
)
from gemmbench.errors import UsageError
from gemmbench.spec.cases import NO_CONTEXT, Case

# RMSNorm epsilon of the DeepSeek-V3/V4, Kimi-K2 and GLM configs (rms_norm_eps = 1e-6).
RMS_NORM_EPS = 1e-6
# Where gemmbench's norm lets a PDL dependent launch (ext/rms_norm.cu): never, at its start, after its stores.
TRIGGER_NEVER, TRIGGER_AT_START, TRIGGER_AFTER_STORES = 0, 1, 2

ProducerCall = Callable[[], torch.Tensor]


class Producer:
    """Writes a GEMM's input x[M, K] (bf16) from a hidden state h[M, K] and a weight w[K] (both bf16)."""

    name: str = ""
    code: str = ""  # what it runs, for `gemmbench list` and the docs
    needs_extension: bool = False
    origin: str = "built-in"  # or the engine package, or the plugin that registered it
    pdl: str = "no"  # how it takes part in programmatic dependent launch, for `gemmbench list`

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


class GemmbenchNorm(Producer):
    """gemmbench's RMSNorm (ext/rms_norm.cu): one CTA per token row, writing x, and letting a dependent
    launched with PDL start at its `trigger` position. A what-if beside the engines' norms: at its start,
    which lets a dependent GEMM load its weights while the norm runs, no engine's norm does; after its
    stores is where FlashInfer's norms (and so SGLang's and vLLM's) trigger (docs/context.md)."""

    needs_extension = True

    def __init__(self, name: str, trigger: int, where: str) -> None:
        self.name, self.trigger = name, trigger
        self.code = f"gemmbench's RMSNorm (ext/rms_norm.cu), letting its dependents launch {where}"
        self.pdl = f"lets dependents launch {where}"

    def unavailable_reason(self, case, device):
        if device.type != "cuda":
            return "a CUDA kernel: needs a CUDA device"
        if reason := ext.unaligned_k(case.k):
            return reason
        return super().unavailable_reason(case, device) or ext.router_kernel_problem() or ext.unavailable_reason()

    def prepare(self, case, hidden, weight, x):
        op, trigger = torch.ops.gemmbench.rms_norm_out, self.trigger

        def call() -> torch.Tensor:
            op(hidden, weight, RMS_NORM_EPS, x, trigger)
            return x

        return call


class _FlashInferNorm(Producer):
    """What FlashInfer's two norms share: availability, and PDL as `enable_pdl` (on: the norm waits for its
    own producer at its start and lets its dependents launch after its stores, include/flashinfer/norm.cuh;
    FlashInfer turns it on by default on sm90+, as SGLang and vLLM call it)."""

    origin = FLASHINFER

    def __init__(self, name: str, enable_pdl: bool) -> None:
        self.name, self.enable_pdl = name, enable_pdl
        self.pdl = "waits at its start, lets dependents launch after its stores" if enable_pdl else "no"

    def unavailable_reason(self, case, device):
        reason = super().unavailable_reason(case, device) or missing_flashinfer(device)
        if reason is None and self.enable_pdl and capability(device) < PDL_CAPABILITY:
            return f"PDL needs compute capability {dotted(PDL_CAPABILITY)} or later"
        return reason


class FlashInferRmsNorm(_FlashInferNorm):
    """FlashInfer's RMSNorm into x."""

    def __init__(self, name: str, enable_pdl: bool) -> None:
        super().__init__(name, enable_pdl)
        self.code = f"flashinfer.norm.rmsnorm(h, w, eps, out=x, enable_pdl={enable_pdl})"

    def prepare(self, case, hidden, weight, x):
        op, enable_pdl = flashinfer("norm").rmsnorm, self.enable_pdl

        def call() -> torch.Tensor:
            op(hidden, weight, RMS_NORM_EPS, out=x, enable_pdl=enable_pdl)
            return x

        return call


def fused_add_inputs(hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The inputs of a fused residual add + norm that works in place on x: x starts as the hidden state, and
    the layer's residual is the hidden state rolled along K (random, never zeros), returned."""
    x.copy_(hidden)
    return hidden.roll(1, dims=-1)


class FlashInferFusedAddRmsNorm(_FlashInferNorm):
    """FlashInfer's residual add then RMSNorm, in place, what precedes the router in DeepSeek-style layers:
    `residual += x; x = rmsnorm(residual) * w` (fused_add_inputs); both change with every call, as in a
    model."""

    def __init__(self, name: str, enable_pdl: bool) -> None:
        super().__init__(name, enable_pdl)
        self.code = f"flashinfer.norm.fused_add_rmsnorm(x, residual, w, eps, enable_pdl={enable_pdl})"

    def prepare(self, case, hidden, weight, x):
        op, enable_pdl = flashinfer("norm").fused_add_rmsnorm, self.enable_pdl
        residual = fused_add_inputs(hidden, x)

        def call() -> torch.Tensor:
            op(x, residual, weight, RMS_NORM_EPS, enable_pdl=enable_pdl)
            return x

        return call


class VllmNorm(Producer):
    """vLLM's own RMSNorm kernels (`vllm._custom_ops`, csrc/layernorm_kernels.cu), as vLLM calls them where
    FlashInfer's are not used: `rms_norm` into x, or `fused_add_rms_norm` in place (residual += x, then
    x = rmsnorm(residual) * w, fused_add_inputs). Their bindings take no PDL argument: PDL "no"."""

    origin = VLLM

    def __init__(self, name: str, fused: bool) -> None:
        self.name, self.fused = name, fused
        self.code = (
            "vllm._custom_ops.fused_add_rms_norm(x, residual, w, eps)"
            if fused
            else "vllm._custom_ops.rms_norm(x, h, w, eps)"
        )

    def unavailable_reason(self, case, device):
        return super().unavailable_reason(case, device) or missing_engine(VLLM, device)

    def prepare(self, case, hidden, weight, x):
        ops = vllm_ops()
        if not self.fused:

            def call() -> torch.Tensor:
                ops.rms_norm(x, hidden, weight, RMS_NORM_EPS)
                return x

            return call
        residual = fused_add_inputs(hidden, x)

        def fused() -> torch.Tensor:
            ops.fused_add_rms_norm(x, residual, weight, RMS_NORM_EPS)
            return x

        return fused


BUILT_IN = (
    Copy(),
    TorchNorm(),
    GemmbenchNorm("gemmbench_norm_pdl_start", TRIGGER_AT_START, "at its start"),
    GemmbenchNorm("gemmbench_norm_pdl_after_stores", TRIGGER_AFTER_STORES, "after its stores"),
    FlashInferRmsNorm("flashinfer_rmsnorm", False),
    FlashInferRmsNorm("flashinfer_rmsnorm_pdl", True),
    FlashInferFusedAddRmsNorm("flashinfer_fused_add_rmsnorm", False),
    FlashInferFusedAddRmsNorm("flashinfer_fused_add_rmsnorm_pdl", True),
    VllmNorm("vllm_rms_norm", fused=False),
    VllmNorm("vllm_fused_add_rms_norm", fused=True),
)
PRODUCERS: dict[str, Producer] = {p.name: p for p in BUILT_IN}
# Context names of earlier versions, still accepted: `norm_pdl` was gemmbench's norm triggering at its start.
ALIASES = {"norm_pdl": "gemmbench_norm_pdl_start"}


def context_names() -> list[str]:
    return [NO_CONTEXT, *PRODUCERS]


def select_producers(contexts: str | Sequence[str]) -> tuple[Producer, ...]:
    """The producers of `contexts` (names, or one comma-separated string), in order, `none` left out; an
    unknown name is a UsageError that lists the known ones."""
    names = contexts.split(",") if isinstance(contexts, str) else list(contexts)
    producers = []
    for name in (n.strip() for n in names):
        name = ALIASES.get(name, name)
        if name == NO_CONTEXT:
            continue
        if name not in PRODUCERS:
            raise UsageError(f"unknown context '{name}'", f"choose from: {', '.join(context_names())}")
        producers.append(PRODUCERS[name])
    return tuple(dict.fromkeys(producers))
