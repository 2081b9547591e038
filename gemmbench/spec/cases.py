"""What a point is: a GEMM of a model (`GemmSpec`), at one token count M (`Case`), and the groups of GEMMs a
model runs together on CUDA streams (`GroupSpec`).

A GEMM here is always `out[M, N] = x[M, K] @ w[N, K].T` (weights stored [N, K], as in nn.Linear).
`Case` is part of the plugin API: a backend's `unavailable_reason` and `prepare` receive one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
# (input, output) dtype pairs that gemmbench's backends run: the GEMMs this tool exists for.
RUNNABLE_DTYPES = (("bf16", "fp32"),)
ROLES = ("router", "attention")
CUSTOM_ROLE = "custom"
# Largest M, N or K: cuBLAS takes GEMM dimensions as 32-bit signed integers.
MAX_DIMENSION = 2**31 - 1


@dataclass(frozen=True)
class GemmSpec:
    """One GEMM of a model, without M: `x[M, k] @ w[n, k].T`."""

    model: str
    name: str
    role: str
    n: int
    k: int
    in_dtype: str = "bf16"
    out_dtype: str = "fp32"
    top_k: int | None = None
    # calls of this GEMM per forward pass (a router: the model's MoE layers); None where not known
    per_forward: int | None = None

    def case(self, m: int) -> Case:
        return Case(
            self.model,
            self.name,
            self.role,
            m,
            self.n,
            self.k,
            self.in_dtype,
            self.out_dtype,
            self.top_k,
            self.per_forward,
        )


@dataclass(frozen=True)
class Case:
    """One point of a sweep: a GEMM spec at one token count M."""

    model: str
    gemm: str
    role: str
    m: int
    n: int
    k: int
    in_dtype: str = "bf16"
    out_dtype: str = "fp32"
    top_k: int | None = None  # experts per token, for router GEMMs: enables the routing-accuracy check
    # calls of this GEMM per forward pass (a router: the model's MoE layers); None where not known
    per_forward: int | None = None

    @property
    def shape_key(self) -> tuple[str, str, int, int]:
        """Cases with the same key differ only in M: one table per key."""
        return (self.model, self.gemm, self.n, self.k)

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    @property
    def bytes_moved(self) -> int:
        """Fewest bytes a GEMM must move: both inputs read once, the output written once."""
        inputs = (self.m * self.k + self.n * self.k) * DTYPE_BYTES[self.in_dtype]
        return inputs + self.m * self.n * DTYPE_BYTES[self.out_dtype]


DEFAULT_STREAM = "default"
AUX_STREAM = re.compile(r"^aux\d+$")  # aux0, aux1, ...


@dataclass(frozen=True)
class GroupMember:
    """One GEMM of a group and the CUDA stream it runs on ("default", or "aux0", "aux1", ...)."""

    gemm: GemmSpec
    stream: str
    light: bool  # a bf16 -> fp32 GEMM of the file, computed by the backend under test; else torch.mm in its dtypes


@dataclass(frozen=True)
class GroupSpec:
    """GEMMs that a model runs together, on several CUDA streams (DeepSeek-V4's attention input group)."""

    model: str
    name: str
    members: tuple[GroupMember, ...]

    @property
    def k(self) -> int:
        return self.members[0].gemm.k
