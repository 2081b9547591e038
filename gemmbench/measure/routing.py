"""Routing accuracy: does a backend's rounding change which experts a token goes to?

For a router GEMM with top_k experts per token: run the backend over ROUTING_TOKENS tokens, in batches
of the case's M (so the case's own kernel computes them), take each token's top-k expert set, and
count the tokens whose set differs from the one chosen on the float64 logits.

Inputs: x ~ N(0, 1) and w ~ N(0, 1/K), so each logit is ~N(0, 1): router logits of trained MoE models
spread over a few units, and the gap between the k-th and (k+1)-th expert of 256 is then ~0.05-0.1, the
scale at which bf16's rounding of the output (a relative step of 2^-8) flips selections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gemmbench.analysis.policy import ROUTING_TOKENS
from gemmbench.backends import Backend, GemmInputs
from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import TORCH_DTYPES


def routing_inputs(case: Case, tokens: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(seed)
    dtype = TORCH_DTYPES[case.in_dtype]
    x = torch.randn(tokens, case.k, device=device, dtype=torch.float32, generator=generator).to(dtype)
    w = (torch.randn(case.n, case.k, device=device, dtype=torch.float32, generator=generator) / math.sqrt(case.k)).to(
        dtype
    )
    return x, w


def expert_sets(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Each token's selected experts, sorted, so that two selections compare element-wise."""
    return torch.topk(logits, top_k, dim=1).indices.sort(dim=1).values


@dataclass(frozen=True)
class RoutingCheck:
    """The routing check of one case: its tokens, weight and float64 expert sets, made once and shared by
    the case's backends."""

    case: Case
    x: torch.Tensor
    w: torch.Tensor
    expected: torch.Tensor  # each token's expert set on the float64 logits

    @classmethod
    def for_case(cls, case: Case, device: torch.device, seed: int) -> RoutingCheck:
        tokens = case.m * math.ceil(ROUTING_TOKENS / case.m)
        x, w = routing_inputs(case, tokens, device, seed)
        return cls(case, x, w, expert_sets(torch.mm(x.double(), w.double().t()), case.top_k))

    def mismatch(self, backend: Backend) -> float:
        """Share of tokens whose top-k expert set under `backend` differs from float64's."""
        case, tokens = self.case, self.x.shape[0]
        out = torch.full((tokens, case.n), math.nan, device=self.x.device, dtype=TORCH_DTYPES[case.out_dtype])
        for start in range(0, tokens, case.m):
            rows = slice(start, start + case.m)
            backend.prepare(case, GemmInputs(self.x[rows], self.w, out[rows]))()
        return (expert_sets(out, case.top_k) != self.expected).any(dim=1).double().mean().item()


def topk_mismatch(backend: Backend, case: Case, device: torch.device, seed: int) -> float:
    """Share of tokens whose top-k expert set under `backend` differs from float64's (one check, alone)."""
    return RoutingCheck.for_case(case, device, seed).mismatch(backend)


def applies(case: Case) -> bool:
    return case.role == "router" and case.top_k is not None and case.top_k < case.n
