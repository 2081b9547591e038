"""Routing fidelity: does a backend's rounding change how the model routes a token?

For a router GEMM: run the backend over the check's tokens, in batches of the case's M (so the case's own
kernel computes them), route every token with the model's own routing function (RoutingSpec: scoring,
correction bias, expert groups, top-k, weight normalisation and scale), and compare with the routing of
the float64 logits of the same inputs. The function itself runs in float64 on both, so only the GEMM's
output differs. Three figures (Fidelity): the share of tokens whose expert set changes, the L1 distance of
each token's routing weights (mean and worst), and the largest change of an expert's load over the batch.

Inputs (RoutingInputs): the synthetic ones below, or the user's router weight, bias and hidden states
(measure/routing_data.py). Synthetic: w ~ N(0, 1/K) so that each logit of x ~ N(0, 1) is ~N(0, 1): router
logits of trained MoE models spread over a few units, and the gap between the k-th and (k+1)-th expert of
256 is then ~0.05-0.1, the scale at which bf16's rounding of the output (a relative step of 2^-8) flips
selections. The bias is zero: no public statistics of a checkpoint's correction bias were found to draw
it from (docs/routing.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gemmbench.backends import Backend, GemmInputs
from gemmbench.records.flags import ROUTING_TOKENS
from gemmbench.spec.cases import LOGITS, PLAIN_TOPK, SIGMOID, SOFTMAX, SQRTSOFTPLUS, Case, RoutingSpec
from gemmbench.timing.inputs import TORCH_DTYPES

NORMAL, OUTLIERS = "normal", "outliers"
SYNTHETIC = (NORMAL, OUTLIERS)
# Synthetic hidden states with outliers: a few channels far larger than the rest, as transformer hidden
# states have (LLM.int8(), Dettmers et al. 2022: outlier features of magnitude up to 20 and more, in about
# six hidden dimensions at 6.7B parameters and beyond). An assumption, not a measurement of any of the
# presets' models: these channels are OUTLIER_SCALE times N(0, 1).
OUTLIER_CHANNELS = 6
OUTLIER_SCALE = 20.0
# DeepSeek-V3's group score: the sum of each group's best GROUP_SCORE_TOP choice scores (MoEGate).
GROUP_SCORE_TOP = 2
# The normalisation's guard against a zero sum (modeling_deepseek.py adds 1e-20 to the denominator).
NORMALIZE_EPS = 1e-20


@dataclass(frozen=True)
class RoutingInputs:
    """What the routing check computes on: hidden states [T, K] (the case's input dtype), the router
    weight [N, K], and the correction bias [N] (float32; zeros where the function has none)."""

    x: torch.Tensor
    w: torch.Tensor
    bias: torch.Tensor


@dataclass(frozen=True)
class Routing:
    """Each token's chosen experts (sorted) and its routing weights over all experts (zero elsewhere)."""

    experts: torch.Tensor  # [T, top_k], int64
    weights: torch.Tensor  # [T, N], float64


@dataclass(frozen=True)
class Fidelity:
    """How a backend's routing differs from float64's over the check's tokens."""

    flips: float  # share of tokens whose expert set changed
    weight_l1_mean: float  # L1 distance of a token's routing weights, mean over tokens
    weight_l1_max: float  # ...and the largest
    load_change: float  # largest change of an expert's token count, relative to the mean count per expert


def synthetic_inputs(case: Case, tokens: int, device: torch.device, seed: int, kind: str = NORMAL) -> RoutingInputs:
    """x ~ N(0, 1) (with OUTLIER_CHANNELS channels OUTLIER_SCALE times larger for `OUTLIERS`), w ~ N(0, 1/K),
    a zero bias."""
    generator = torch.Generator(device=device).manual_seed(seed)
    dtype = TORCH_DTYPES[case.in_dtype]
    x = torch.randn(tokens, case.k, device=device, dtype=torch.float32, generator=generator)
    w = torch.randn(case.n, case.k, device=device, dtype=torch.float32, generator=generator) / math.sqrt(case.k)
    if kind == OUTLIERS:
        channels = torch.randperm(case.k, device=device, generator=generator)[:OUTLIER_CHANNELS]
        x[:, channels] *= OUTLIER_SCALE
    return RoutingInputs(x.to(dtype), w.to(dtype), torch.zeros(case.n, device=device))


def scores_of(logits: torch.Tensor, scoring: str) -> torch.Tensor:
    """Each expert's score from the router's logits, in float64."""
    logits = logits.double()
    if scoring == SOFTMAX:
        return torch.softmax(logits, dim=-1)
    if scoring == SIGMOID:
        return torch.sigmoid(logits)
    if scoring == SQRTSOFTPLUS:
        return torch.nn.functional.softplus(logits).sqrt()
    if scoring == LOGITS:
        return logits
    raise ValueError(f"unknown scoring '{scoring}'")


def route(
    logits: torch.Tensor, top_k: int, spec: RoutingSpec = PLAIN_TOPK, bias: torch.Tensor | None = None
) -> Routing:
    """The model's routing of each token from its router logits [T, N] (RoutingSpec says how), in float64."""
    scores = scores_of(logits, spec.scoring)
    choice = scores + bias.double() if spec.bias and bias is not None else scores
    if spec.n_group > 1:
        tokens, experts = choice.shape
        grouped = choice.view(tokens, spec.n_group, experts // spec.n_group)
        group_scores = grouped.topk(GROUP_SCORE_TOP, dim=-1).values.sum(dim=-1)
        kept = group_scores.topk(spec.topk_group, dim=-1).indices
        mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, kept, True)
        # Experts of the groups not kept cannot be chosen (vLLM's grouped_topk masks them to -inf).
        choice = grouped.masked_fill(~mask.unsqueeze(-1), -math.inf).view(tokens, experts)
    experts = choice.topk(top_k, dim=-1).indices
    if spec.scoring == LOGITS:  # plain top-k: a softmax over the chosen logits
        chosen = torch.softmax(scores.gather(1, experts), dim=-1)
    else:
        chosen = scores.gather(1, experts)
        if spec.normalize:
            chosen = chosen / (chosen.sum(dim=-1, keepdim=True) + NORMALIZE_EPS)
    weights = torch.zeros_like(scores).scatter_(1, experts, chosen * spec.scale)
    return Routing(experts.sort(dim=-1).values, weights)


def fidelity(routing: Routing, reference: Routing, experts: int) -> Fidelity:
    """How `routing` differs from `reference` (of the same tokens)."""
    tokens, top_k = reference.experts.shape
    l1 = (routing.weights - reference.weights).abs().sum(dim=-1)
    loads = [torch.bincount(r.experts.flatten(), minlength=experts).double() for r in (routing, reference)]
    mean_load = tokens * top_k / experts
    return Fidelity(
        flips=(routing.experts != reference.experts).any(dim=-1).double().mean().item(),
        weight_l1_mean=l1.mean().item(),
        weight_l1_max=l1.max().item(),
        load_change=((loads[0] - loads[1]).abs().max() / mean_load).item(),
    )


@dataclass(frozen=True)
class RoutingCheck:
    """The routing check of one case: its inputs and float64 routing, made once and shared by the case's
    backends."""

    case: Case
    inputs: RoutingInputs
    expected: Routing

    @property
    def spec(self) -> RoutingSpec:
        return self.case.routing or PLAIN_TOPK

    @classmethod
    def for_case(cls, case: Case, device: torch.device, seed: int, inputs: RoutingInputs | None = None) -> RoutingCheck:
        """The check on `inputs` (routing_data.RoutingData.inputs_for), else on ROUTING_TOKENS synthetic
        tokens; on whole batches of the case's M (the tokens repeated where fewer than M)."""
        if inputs is None:
            inputs = synthetic_inputs(case, ROUTING_TOKENS, device, seed)
        x = inputs.x
        if x.shape[0] < case.m:
            x = x.repeat(math.ceil(case.m / x.shape[0]), 1)
        inputs = RoutingInputs(x[: case.m * (x.shape[0] // case.m)], inputs.w, inputs.bias)
        logits = torch.mm(inputs.x.double(), inputs.w.double().t())
        spec = case.routing or PLAIN_TOPK
        return cls(case, inputs, route(logits, case.top_k, spec, inputs.bias))

    def measure(self, backend: Backend) -> Fidelity:
        """The backend's routing of the check's tokens against float64's."""
        case, x = self.case, self.inputs.x
        tokens = x.shape[0]
        out = torch.full((tokens, case.n), math.nan, device=x.device, dtype=TORCH_DTYPES[case.out_dtype])
        for start in range(0, tokens, case.m):
            rows = slice(start, start + case.m)
            backend.prepare(case, GemmInputs(x[rows], self.inputs.w, out[rows]))()
        return fidelity(route(out, case.top_k, self.spec, self.inputs.bias), self.expected, case.n)
