"""`router_small_m`: a specialised bf16 x bf16 -> fp32 GEMM for M <= 32 tokens, in Triton: the first tier
of a GateLinear-style router dispatch (docs/design.md, the problem; docs/tiers.md, the measurements).

The kernel and its configurations are in router_small_m_kernel.py; which configuration runs for a GPU,
shape and M bucket (a cached tuning, a tuning file, tuned now by `tune`, or untuned where `prepare` is
called without it) in router_small_m_tuning.py. Each row says which configuration ran and where it came
from.
"""

from __future__ import annotations

import importlib.util

import torch

from gemmbench.backends import router_small_m_tuning as tuning
from gemmbench.backends.base import Backend, CandidateTimer, GemmCall, GemmInputs
from gemmbench.backends.router_small_m_kernel import (
    MAX_M,
    MAX_WEIGHT_ELEMENTS,
    block_m,
    candidates,
    compile_jobs,
    prepared,
    specialization,
)
from gemmbench.backends.router_small_m_tuning import CACHE_FILE
from gemmbench.cache import cache_root
from gemmbench.spec.cases import Case


class RouterSmallM(Backend):
    name = "router_small_m"
    code = "gemmbench's Triton kernel for M <= 32: weight tiles read once, split-K summed in the same kernel"
    launches_with_pdl = True
    max_m = MAX_M

    def __init__(self) -> None:
        self._chosen: dict[tuple[int, int, int], tuning.Choice] = {}  # (N, K, M bucket) -> what runs

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device)
        if reason:
            return reason
        if device.type != "cuda":
            return "no CUDA device (a Triton kernel)"
        if importlib.util.find_spec("triton") is None:  # a query: Triton is imported only to run
            return "Triton is not installed (it ships with CUDA builds of torch)"
        if case.n * case.k >= MAX_WEIGHT_ELEMENTS:
            return f"the weight's N x K = {case.n * case.k} elements is beyond its 32-bit offsets"
        return None

    def tuning_note(self, case: Case, device: torch.device) -> str | None:
        if self._tuned(case) or tuning.lookup(case, device):
            return None
        problem = tuning.cache_problem()
        return (
            (f"{problem}; " if problem else "")
            + f"tuning router_small_m for N={case.n}, K={case.k}, M <= {block_m(case.m)} on this GPU "
            f"({len(candidates(case.m))} configurations; once, then cached in {cache_root() / CACHE_FILE}; "
            "`gemmbench tune` makes a tuning file of them)…"
        )

    def configuration(self, case: Case) -> str | None:
        choice = self._chosen.get(_shape(case))
        return None if choice is None else f"{choice.config} ({choice.source})"

    def tune(self, case: Case, inputs: GemmInputs, timer: CandidateTimer) -> None:
        """The configuration for `case`'s shape and M bucket: cached, from a tuning file, else tuned now with
        `timer` (and cached); once per shape and bucket."""
        if not self._tuned(case):
            self._chosen[_shape(case)] = tuning.choose(case, inputs, timer)

    def compile_ahead(self, cases: list[Case], device: torch.device) -> None:
        """Compile, at once, the kernel of every configuration, PDL setting and M specialisation that `cases`
        run with a configuration cached or in a tuning file (those tuned now compile as they tune), with its
        launcher (`compile_jobs`): a first sweep would otherwise build them one at a time at first launch."""
        jobs, seen, weights = [], set(), {}
        for case in cases:
            choice = tuning.lookup(case, device)
            if choice is None:
                continue
            key = (case.n, case.k, specialization(case.m, choice.config))
            if key in seen:
                continue
            seen.add(key)
            if (case.n, case.k) not in weights:  # one weight per shape, made once
                weights[case.n, case.k] = torch.empty(case.n, case.k, dtype=torch.bfloat16, device=device)
            w = weights[case.n, case.k]
            x = torch.empty(case.m, case.k, dtype=torch.bfloat16, device=device)
            inputs = GemmInputs(x, w, torch.empty(case.m, case.n, dtype=torch.float32, device=device))
            jobs += [(inputs, choice.config, pdl) for pdl in (False, True)]
        if jobs:
            compile_jobs(jobs)  # one that fails compiles (and fails) again at its first launch, reported there

    def prepare(self, case: Case, inputs: GemmInputs, pdl: bool = False) -> GemmCall:
        """The configuration `tune` chose; without a `tune`, a cached one or one of a tuning file, else the
        untuned default (tuning.UNTUNED_CONFIG): never a tuning."""
        shape = _shape(case)
        if shape not in self._chosen:
            self._chosen[shape] = tuning.without_tuning(case, inputs.x.device)
        return prepared(inputs, self._chosen[shape].config, pdl)

    def _tuned(self, case: Case) -> bool:
        """Whether a tuning chose the configuration `case` runs (not the untuned default of a bare `prepare`)."""
        choice = self._chosen.get(_shape(case))
        return choice is not None and choice.tuned


def _shape(case: Case) -> tuple[int, int, int]:
    return case.n, case.k, block_m(case.m)
