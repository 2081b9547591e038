"""The interface every backend implements: say why it cannot run a case here (if so), choose its
configuration for the case (tuned backends), then prepare the call.

`Backend`, `CandidateTimer`, `GemmCall` and `GemmInputs` are the plugin API, importable from
`gemmbench.backends`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol

import torch

from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import GemmInputs
from gemmbench.timing.stopping import FixedTime, StoppingRule

GemmCall = Callable[[], torch.Tensor]


class CandidateTimer(Protocol):
    """What `Backend.tune` times its candidates with, given by the session for one case
    (measure/tuning.py): its timers and stopping rules, so that a tuner compares candidates as a sweep
    times them, and a test can pass a double."""

    def device_time_us(self, prepare: Callable[[GemmInputs], GemmCall], rule: StoppingRule) -> float:
        """The median CUDA-graph device time (µs) of the call `prepare` makes on a set of the case's inputs,
        over rotating copies of them (cold L2, as a cold sweep times it), sampled until `rule` says done
        (`gemmbench.timing.stopping.FixedTime(seconds)`: every candidate the same time). Raises what the
        call raises: a candidate that cannot run here is the tuner's to drop."""
        ...


# Where a tuned backend's configuration came from, as its rows' `backend_config` says: the user's cache of
# tunings made on this machine, a tuning file, a tuning made by this sweep, or nothing (an untuned default).
CACHED, FROM_FILE, TUNED_NOW, UNTUNED = "cached tuning", "tuning file", "tuned now", "untuned default"


def time_candidates(
    timer: CandidateTimer, prepares: dict[Hashable, Callable[[GemmInputs], GemmCall]], budget_s: float
) -> dict[Hashable, float]:
    """The median device time (µs) by `timer` of each candidate (its key: how it prepares its call) this GPU
    runs, each sampled for `budget_s`, so that they compare alike; one that raises RuntimeError here (a
    configuration or algorithm this GPU cannot run) is left out, not chosen."""
    rule = FixedTime(budget_s)
    times: dict[Hashable, float] = {}
    for key, prepare in prepares.items():
        try:
            times[key] = timer.device_time_us(prepare, rule)
        except RuntimeError:
            continue
    return times


class Backend:
    """One way of computing `out = x @ w.T`. Subclasses set `name` and `code`, and implement `prepare`."""

    name: str = ""
    code: str = ""  # the user's line of code this backend stands for, shown by `gemmbench list`
    in_default_set: bool = True  # False: run only when named with --backend
    needs_extension: bool = False  # True for the extension's backends (gemmbench/backends/ext)
    origin: str = "built-in"  # or the plugin that registered it (backends/plugins.py)
    # True: `prepare(case, inputs, pdl=True)` gives a call launched with programmatic dependent launch (it
    # waits for its producer before reading x), and the sweep measures the backend both ways.
    launches_with_pdl: bool = False
    # How it takes part in PDL where it is not measured both ways (a package's kernel launched as the
    # package decides), for `gemmbench list`; None: as `launches_with_pdl` says.
    pdl_use: str | None = None
    # The largest M the backend computes (a first tier's range), or None: any. At a larger M its row is a
    # skipped row marked out of range, which tables leave out unless asked (`show --all-rows`).
    max_m: int | None = None

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        """Why this backend cannot run `case` on `device`, or None if it can.

        A query: it never builds or loads anything, so `gemmbench list` can ask it freely.
        """
        if (case.in_dtype, case.out_dtype) != ("bf16", "fp32"):
            return f"only bf16 x bf16 -> fp32 GEMMs (this case is {case.in_dtype} -> {case.out_dtype})"
        if self.beyond_range(case):
            return f"runs M <= {self.max_m} only (the torch.mm tier takes larger M)"
        return None

    def beyond_range(self, case: Case) -> bool:
        """Whether `case`'s M is beyond the largest the backend computes (`max_m`)."""
        return self.max_m is not None and case.m > self.max_m

    def tune(self, case: Case, inputs: GemmInputs, timer: CandidateTimer) -> None:
        """Choose the configuration to run `case` with (tuned kernels), timing candidates with `timer` only.

        The session calls it for every case a backend runs, before anything of the case is checked or
        timed, with one set of the case's inputs; a backend tunes what it has not chosen for that shape yet
        (once per shape) and keeps the choice for `prepare`. What it raises is the backend's error row at
        the case. By default there is nothing to choose."""
        return None

    def compile_ahead(self, cases: list[Case], device: torch.device) -> None:
        """Called once before the first case of a sweep, with every case the backend runs on `device`: a
        backend that compiles a kernel per configuration at first launch (Triton) may compile those the
        cases need now, at once, rather than one at a time as the sweep reaches them. It launches nothing
        and times nothing; what it raises is ignored (the first launch compiles again). By default nothing."""
        return None

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        """A callable that computes the GEMM into `inputs.out` and returns it; called many times. It never
        times anything: a tuned backend runs what `tune` chose, and without a `tune` (a direct call) a
        configuration it can choose without timing."""
        raise NotImplementedError

    def tuning_note(self, case: Case, device: torch.device) -> str | None:
        """What `tune` is about to time for `case` that takes a while (a tuned kernel's first use per GPU and
        shape), for the sweep to announce first; None where it has nothing of the kind. A query, like
        `unavailable_reason`."""
        return None

    def configuration(self, case: Case) -> str | None:
        """Which of its configurations the backend runs for `case` (tuned kernels), for the row; None if it
        has one way only."""
        return None
