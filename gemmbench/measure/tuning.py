"""`gemmbench tune`: router_small_m tuned for every GEMM it runs among a plan's cases, once per shape and
M bucket, on a warmed device, as a tuning file's content (backends/router_small_m_tuning.py says where
tuning files are looked up and what they hold)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from gemmbench.backends import router_small_m_tuning as tuning
from gemmbench.backends.router_small_m import RouterSmallM
from gemmbench.errors import GemmbenchError
from gemmbench.measure.bench import Bench, MeasureOptions, ignore
from gemmbench.spec.cases import Case


def tunable(cases: list[Case], device: torch.device) -> list[Case]:
    """One case per (N, K, M bucket) that router_small_m runs on `device`, in the order given; a device that
    is no GPU is refused (a Triton kernel runs on none)."""
    if device.type != "cuda":
        raise GemmbenchError("tuning needs a CUDA device (router_small_m is a Triton kernel)", "run it on the GPU")
    backend, seen, chosen = RouterSmallM(), set(), []
    for case in cases:
        key = tuning.shape_key(case)
        if key not in seen and backend.unavailable_reason(case, device) is None:
            seen.add(key)
            chosen.append(case)
    return chosen


def tune_cases(
    cases: list[Case], device: torch.device, started: Callable[[int, Case], None] = ignore
) -> dict[str, tuning.Tuned]:
    """Each of `cases` (from `tunable`) tuned now, by shape key; `started(index, case)` is told before
    each. The user cache is updated too, so sweeps on this machine find them first."""
    Bench(device, MeasureOptions()).warm_device()  # clocks ramp from idle
    tuned: dict[str, tuning.Tuned] = {}
    for index, case in enumerate(cases):
        started(index, case)
        tuned[tuning.shape_key(case)] = result = tuning.tune(case, device)
        tuning.write_cache(tuning.cache_key(case, device), result)
    return tuned
