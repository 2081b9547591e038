"""The registry: backend names to backends."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gemmbench import ext
from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.backends.cublas_ext import CublasExt, CublasLtExt, CublasLtTunedExt
from gemmbench.backends.fake import Fake
from gemmbench.backends.linear_cast import LinearCast
from gemmbench.backends.mm_out_dtype import MmOutDtype
from gemmbench.backends.router_small_m import RouterSmallM, RouterSmallMExt
from gemmbench.backends.upcast import Upcast
from gemmbench.errors import UsageError
from gemmbench.shapes import Case

REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        MmOutDtype(),
        Upcast(),
        LinearCast(),
        CublasExt(),
        CublasLtExt(),
        CublasLtTunedExt(),
        RouterSmallM(),
        RouterSmallMExt(),
        Fake(),
    )
}


def default_backends() -> list[Backend]:
    """Every real backend of the default set; those that cannot run here become skipped rows that say why."""
    return [b for b in REGISTRY.values() if b.real and b.in_default_set]


def select_backends(names: list[str]) -> list[Backend]:
    if not names:
        return default_backends()
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown backend '{unknown[0]}'", f"choose from: {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class Availability:
    backend: Backend
    reason: str | None  # why it cannot run here; None: it can
    builds_first: bool  # it can, once the cuBLAS extension is built (on first use)


def availability(backends: list[Backend], probe: Case, device: torch.device) -> list[Availability]:
    """Whether each backend can run `probe` on `device`; builds nothing."""
    build_first = device.type == "cuda" and ext.needs_build()
    return [Availability(b, b.unavailable_reason(probe, device), b.needs_extension and build_first) for b in backends]


__all__ = [
    "REGISTRY",
    "Availability",
    "Backend",
    "GemmCall",
    "GemmInputs",
    "availability",
    "default_backends",
    "select_backends",
]
