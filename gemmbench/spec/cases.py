"""What a point is: a GEMM of a model (`GemmSpec`), at one token count M (`Case`), and the groups of GEMMs a
model runs together on CUDA streams (`GroupSpec`).

A GEMM here is always `out[M, N] = x[M, K] @ w[N, K].T` (weights stored [N, K], as in nn.Linear).
`Case` is part of the plugin API: a backend's `unavailable_reason` and `prepare` receive one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
# (input, output) dtype pairs that gemmbench's backends run: the GEMMs this tool exists for.
RUNNABLE_DTYPES = (("bf16", "fp32"),)
ROLES = ("router", "attention")
# The view of a GEMM alone, with no producer before it, as `--context` names it.
NO_CONTEXT = "none"
CUSTOM_ROLE = "custom"
# Largest M, N or K: cuBLAS takes GEMM dimensions as 32-bit signed integers.
MAX_DIMENSION = 2**31 - 1


# How a nested dataclass field is written as flat columns (records/schema.py): its fields prefixed with
# this metadata's value. Defined here, below the records, because a Case carries one (its routing).
FLATTEN = "flatten"

# How a router scores its experts (RoutingSpec.scoring): the logits themselves (plain top-k), or a function
# of each logit.
LOGITS, SOFTMAX, SIGMOID, SQRTSOFTPLUS = "logits", "softmax", "sigmoid", "sqrtsoftplus"
SCORINGS = (LOGITS, SOFTMAX, SIGMOID, SQRTSOFTPLUS)


@dataclass(frozen=True)
class RoutingSpec:
    """How a model routes a token with its router GEMM's output (measure/routing.py computes it): score
    every expert (`scoring`); choose on the scores plus a learned per-expert bias (`bias`, DeepSeek-V3's
    e_score_correction_bias), first keeping the `topk_group` best of `n_group` expert groups (each scored
    by the sum of its two best choice scores), then the case's top-k experts; weigh the chosen experts by
    their scores (without the bias), normalised to sum to one (`normalize`), times `scale`.
    `scoring` "logits" is plain top-k of the raw logits, weighed by a softmax over the chosen ones."""

    scoring: str = LOGITS
    bias: bool = False
    n_group: int = 1
    topk_group: int = 1
    normalize: bool = False
    scale: float = 1.0

    @property
    def label(self) -> str:
        """The function in a few words: 'sigmoid+bias, 4 of 8 groups, normalised x2.5'."""
        parts = [self.scoring + ("+bias" if self.bias else "")]
        if self.n_group > 1:
            parts.append(f"{self.topk_group} of {self.n_group} groups")
        weights = ["normalised"] if self.normalize else []
        if self.scale != 1.0:
            weights.append(f"x{self.scale:g}")
        if weights:
            parts.append(" ".join(weights))
        return ", ".join(parts)


PLAIN_TOPK = RoutingSpec()


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
    routing: RoutingSpec | None = None  # a router's routing function; None: plain top-k (where top_k is set)

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
            self.routing,
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
    # A router's routing function (columns routing_scoring, routing_bias, ...); None: plain top-k.
    routing: RoutingSpec | None = field(default=None, metadata={FLATTEN: "routing_"})

    @property
    def shape_key(self) -> tuple[str, str, int, int]:
        """Cases with the same key differ only in M: one table per key."""
        return (self.model, self.gemm, self.n, self.k)

    @property
    def routed(self) -> bool:
        """A router GEMM whose output the model routes (top-k of N experts): the routing check applies."""
        return self.role == "router" and self.top_k is not None and self.top_k < self.n

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
