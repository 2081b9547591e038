"""The units of a session's work, as progress reports them: a point (or a group at one M) measured, or
profiled."""

from __future__ import annotations

from dataclasses import dataclass

MEASURE, PROFILE = "measure", "kernels"  # the two passes of a session


@dataclass(frozen=True)
class Step:
    """One unit of a session's work: a GEMM (or a group) of a model, at one M, with one backend, in one pass."""

    phase: str  # MEASURE or PROFILE
    model: str
    gemm: str  # the GEMM's name, or the group's
    m: int
    backend: str
