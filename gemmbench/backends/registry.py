"""The registry: backend names to backends. Built-in backends are imported and made on first use, so that
importing the plugin API (`from gemmbench.backends import Backend`) loads no implementation; plugins add
theirs with `register` (backends/plugins.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from gemmbench.backends.base import Backend
from gemmbench.backends.ext import needs_build
from gemmbench.errors import BACKEND_FAILURES, UsageError, described
from gemmbench.spec.cases import Case

# Built-in backends in the order tables show them: name -> (module under gemmbench.backends, class).
BUILT_IN = {
    "mm_out_dtype": ("mm_out_dtype", "MmOutDtype"),
    "upcast": ("upcast", "Upcast"),
    "linear_cast": ("linear_cast", "LinearCast"),
    "cublas_ext": ("cublas_ext", "CublasExt"),
    "cublaslt_ext": ("cublas_ext", "CublasLtExt"),
    "cublaslt_tuned_ext": ("cublas_ext", "CublasLtTunedExt"),
    "router_small_m": ("router_small_m", "RouterSmallM"),
    "router_small_m_ext": ("router_small_m_ext", "RouterSmallMExt"),
    "router_small_m_mma": ("router_small_m_ext", "RouterSmallMMma"),
    "flashinfer_router_gemm": ("engines", "FlashInferRouterGemm"),
    "sglang_router_gemm": ("engines", "SglangRouterGemm"),
}


class Registry(Mapping[str, Backend]):
    """Every backend by name: the built-in ones (made on first lookup, one instance per process), then
    those plugins registered, in registration order."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._names: list[str] = list(BUILT_IN)

    def __getitem__(self, name: str) -> Backend:
        if name not in self._backends:
            if name not in BUILT_IN:
                raise KeyError(name)
            module, cls = BUILT_IN[name]
            self._backends[name] = getattr(importlib.import_module(f"gemmbench.backends.{module}"), cls)()
        return self._backends[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def register(self, backend: Backend) -> None:
        """Add a plugin's backend under its (checked, unused) name."""
        self._backends[backend.name] = backend
        self._names.append(backend.name)

    def unregister(self, name: str) -> None:
        """Remove a plugin's backend (a plugin file loaded again, edited, registers its backends anew)."""
        del self._backends[name]
        self._names.remove(name)


REGISTRY = Registry()


def default_backends() -> list[Backend]:
    """Every backend of the default set; those that cannot run here become skipped rows that say why."""
    return [b for b in REGISTRY.values() if b.in_default_set]


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
    builds_first: bool  # it can, once the extension is built (on first use)


def availability(backends: list[Backend], probe: Case, device: torch.device) -> list[Availability]:
    """Whether each backend can run `probe` on `device`; builds nothing."""
    build_first = device.type == "cuda" and needs_build()
    return [
        Availability(b, ask_unavailable(b.unavailable_reason, probe, device), b.needs_extension and build_first)
        for b in backends
    ]


# The reason given where an availability query raised or answered neither a reason nor None (a plugin's
# bug): an error row, not a skip.
QUERY_FAILED = "unavailable_reason raised "


def ask_unavailable(query: Callable[[Case, torch.device], str | None], case: Case, device: torch.device) -> str | None:
    """A backend's or producer's answer to `unavailable_reason(case, device)`: its reason, or None where it
    can run (also for any false answer: ''). A query that raises, or answers true without a reason (a plugin
    that returns `case.m > 16`), answers `query_failure`'s reason, never a traceback."""
    try:
        reason = query(case, device)
    except BACKEND_FAILURES as exc:
        return query_failure(exc)
    if not reason:
        return None
    if not isinstance(reason, str):
        return query_failure(TypeError(f"returned {reason!r}, not a reason (a str) or None"))
    return reason


def is_query_failure(reason: str) -> bool:
    """Whether a row's reason is `query_failure`'s (an error row), not a reason to skip it."""
    return QUERY_FAILED in reason


def query_failure(exc: BaseException) -> str:
    """The reason of a row whose availability query raised: the exception's type and first line."""
    return f"{QUERY_FAILED}{described(exc)}"
