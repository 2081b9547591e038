"""The registry: backend names to backends."""

from __future__ import annotations

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.backends.cublas_ext import CublasExt, CublasLtExt, CublasLtTunedExt
from gemmbench.backends.fake import Fake
from gemmbench.backends.linear_cast import LinearCast
from gemmbench.backends.mm_out_dtype import MmOutDtype
from gemmbench.backends.upcast import Upcast
from gemmbench.errors import UsageError

REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (MmOutDtype(), Upcast(), LinearCast(), CublasExt(), CublasLtExt(), CublasLtTunedExt(), Fake())
}


def default_backends() -> list[Backend]:
    """Every real backend; those that cannot run here become skipped rows that say why."""
    return [b for b in REGISTRY.values() if b.real]


def select_backends(names: list[str]) -> list[Backend]:
    if not names:
        return default_backends()
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown backend '{unknown[0]}'", f"choose from: {', '.join(REGISTRY)}")
    return [REGISTRY[n] for n in dict.fromkeys(names)]


__all__ = ["REGISTRY", "Backend", "GemmCall", "GemmInputs", "default_backends", "select_backends"]
