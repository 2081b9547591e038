"""Tuning, before anything is checked: each backend's `tune` for a case, with the session's timer for it
(`CaseTimer`), as a sweep's points and groups run it (`tune_for_case`); and `gemmbench tune`, which tunes
router_small_m for every GEMM it runs among a plan's cases, once per shape and M bucket, on a warmed device,
with the same timer and the same tuning function, as a tuning file's content
(backends/router_small_m_tuning.py says where tuning files are looked up and what they hold).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from gemmbench.backends import Backend, GemmCall, GemmInputs
from gemmbench.backends import router_small_m_tuning as tuning
from gemmbench.backends.registry import ask_unavailable
from gemmbench.backends.router_small_m import RouterSmallM
from gemmbench.errors import BACKEND_FAILURES, GemmbenchError
from gemmbench.measure.bench import Bench, MeasureOptions, error_reason, ignore
from gemmbench.measure.layers import LayerWork, Unit
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import input_copies, make_inputs, rotating
from gemmbench.timing.stopping import StoppingRule


class TuningNeedsGpu(Exception):
    """A tuner asked for device times off a GPU. Not a RuntimeError: `time_candidates` drops a candidate
    that raises one (a configuration this GPU cannot run), and this is no candidate's fault."""


class CaseTimer:
    """The session's `CandidateTimer` (backends/base.py) for one case: the Bench's CUDA-graph device time
    of each candidate over rotating copies of the case's inputs, enough to keep L2 cold whatever the
    session's L2 mode (a tuning is kept for every later sweep, and a cold sweep is the default), made on
    first use and shared by the case's backends."""

    def __init__(self, case: Case, bench: Bench):
        self.case = case
        self.bench = bench

    @functools.cached_property
    def copies(self) -> list[GemmInputs]:
        return input_copies(self.case, self.bench.device, self.bench.options.seed, cold=True)[0]

    def device_time_us(self, prepare: Callable[[GemmInputs], GemmCall], rule: StoppingRule) -> float:
        if self.bench.device.type != "cuda":  # a plugin's tune() on the CPU: its row says why, not CUDAGraph's
            raise TuningNeedsGpu("the candidate timer times CUDA graphs: tuning needs a CUDA device")
        call = rotating([prepare(inputs) for inputs in self.copies])
        call()  # once eagerly: what a CUDA graph cannot capture (lazy initialisation) happens here
        unit = Unit(call, len(self.copies), LayerWork(((self.case,),)))
        # Graphs are sized from one call per replay up (timers.fit_graph_unroll): no eager latency to start from.
        return self.bench.device_time(unit, timers.GRAPH_TARGET_REPLAY_US, rule).median_us


def tune_for_case(
    backends: list[Backend], case: Case, inputs: GemmInputs, bench: Bench, note: Callable[[str], None] = ignore
) -> dict[Backend, str]:
    """Each backend's `tune` for `case`, before anything of the case is checked: what it is about to tune
    said through `note` first (`tuning_note`), its candidates timed by one `CaseTimer` of the case. The
    error reason of each backend whose tuning failed: its rows at `case` are error rows, the sweep goes on."""
    timer = CaseTimer(case, bench)
    failed: dict[Backend, str] = {}
    for backend in backends:
        try:
            if announced := backend.tuning_note(case, bench.device):
                note(announced)
            backend.tune(case, inputs, timer)
        except BACKEND_FAILURES as exc:  # a tuning that fails is the backend's row, never a traceback
            bench.release()
            failed[backend] = f"tuning: {error_reason(exc)}"
    return failed


def compile_ahead(backends: list[Backend], cases: list[Case], device: torch.device) -> None:
    """Each backend's `compile_ahead` with the cases it runs on `device`, before the first case. A failure is
    the backend's to meet again at first launch, where its row reports it: here it is ignored."""
    for backend in backends:
        try:
            runs = [case for case in cases if ask_unavailable(backend.unavailable_reason, case, device) is None]
            if runs:
                backend.compile_ahead(runs, device)
        except BACKEND_FAILURES:
            continue


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
) -> tuple[dict[str, tuning.Tuned], dict[str, str]]:
    """Each of `cases` (from `tunable`) tuned now, whatever is cached or in a tuning file, by shape key;
    `started(index, case)` is told before each. The user cache is updated too, so sweeps on this machine
    find them first. Returns the tunings, and why each case that could not be tuned failed (by shape key):
    one failure costs the others nothing."""
    bench = Bench(device, MeasureOptions())
    bench.warm_device()  # clocks ramp from idle
    tuned: dict[str, tuning.Tuned] = {}
    failed: dict[str, str] = {}
    for index, case in enumerate(cases):
        started(index, case)
        key = tuning.shape_key(case)
        try:
            inputs = make_inputs(case, device, bench.options.seed)
            tuned[key] = tuning.tune_and_cache(case, inputs, CaseTimer(case, bench))
        except BACKEND_FAILURES as exc:
            bench.release()
            failed[key] = error_reason(exc)
    return tuned, failed
