"""One sweep over many GPUs, launched by torchrun: one rank per GPU, across the GPUs of a host and across
hosts. Without torchrun (no WORLD_SIZE in the environment) none of this runs. Each rank runs the one session
driver (measure/session.py) with the fleet's distribution of the work (`FleetDistribution`).

The ranks work in rounds: in each, every rank measures one case of its own (`--split points`: the cases
dealt out round-robin, each measured once; `--split none`: every rank measures every case, a fleet
check), then the round's records are gathered to rank 0, which writes them to the one run file. So an
interrupted fleet keeps every finished round, and in `--split none` all GPUs run the same point at the
same time. The kernel pass comes after the last round, as in a plain sweep (the profiler leaves a cost
behind in its process). Collectives run over gloo, on the host: they never touch the GPUs being timed.

Faults: ranks that disagree on gemmbench, torch or the options stop before any work with one error; a
rank that stops (a crash, the launcher ending the run, a collective that times out) leaves rank 0 to
write every point it did not report as an error row naming it.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import torch
import torch.distributed as dist

from gemmbench.errors import GemmbenchError, first_line
from gemmbench.measure.session import SweepCallbacks, SweepPlan, SweepResult, run_session
from gemmbench.records import ERROR, Record
from gemmbench.records.provenance import FleetProvenance, Provenance
from gemmbench.records.record import NOT_MEASURED
from gemmbench.version import __version__

SPLIT_POINTS = "points"
SPLIT_NONE = "none"
SPLITS = (SPLIT_POINTS, SPLIT_NONE)
# How long a rank waits at a collective for the others. A round is one case on every rank: seconds, up
# to a few minutes for the largest M of the slowest backends; past this, a rank has hung or died.
# $GEMMBENCH_FLEET_TIMEOUT_S overrides it.
COLLECTIVE_TIMEOUT_S = 600
TIMEOUT_ENV = "GEMMBENCH_FLEET_TIMEOUT_S"


class _Stopped(BaseException):
    """The launcher asked this rank to stop (SIGTERM: torchrun ends every rank when one fails). A
    BaseException, like KeyboardInterrupt, so that no backend's error handling turns it into a row."""


@dataclass(frozen=True)
class Fleet:
    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_environment(cls) -> Fleet | None:
        """The rank torchrun started this process as; None when not started by torchrun."""
        if "WORLD_SIZE" not in os.environ:
            return None
        try:
            return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
        except (KeyError, ValueError) as exc:
            raise GemmbenchError(
                f"WORLD_SIZE is set but the rank is not ({exc})", "start gemmbench with torchrun, or unset WORLD_SIZE"
            ) from None

    @property
    def leader(self) -> bool:
        return self.rank == 0


def device_id(rank: int, device: torch.device) -> str:
    """Names the device a rank ran on: host and GPU; CPU ranks of one host are told apart by rank."""
    host = socket.gethostname()
    return f"{host}:{device}" if device.type == "cuda" else f"{host}:cpu:{rank}"


def assign(cases: list, fleet: Fleet, split: str) -> list[list]:
    """The cases of each rank: dealt round-robin (each once), or all of them on every rank."""
    if split == SPLIT_NONE:
        return [list(cases) for _ in range(fleet.world_size)]
    return [cases[rank :: fleet.world_size] for rank in range(fleet.world_size)]


def run_fleet(plan: SweepPlan, fleet: Fleet, split: str, callbacks: SweepCallbacks) -> SweepResult:
    """Run `plan` as this rank of the fleet. Rank 0 returns the merged run; the others return their own
    records (not saved). Raises GemmbenchError where the ranks disagree."""
    if plan.device.type == "cuda":
        plan = replace(plan, device=torch.device("cuda", fleet.local_rank))
    _join_fleet(fleet)
    previous_handler = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        _check_agreement(split)
        return run_session(plan, callbacks, distribution=FleetDistribution(fleet, split, plan.device))
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if dist.is_initialized():
            dist.destroy_process_group()


def _join_fleet(fleet: Fleet) -> None:
    """The process group of the fleet's ranks (gloo: the rows travel over the host network). A timeout that
    is not a number, or a rendezvous that fails (WORLD_SIZE set by hand, without torchrun's MASTER_ADDR),
    is a GemmbenchError."""
    text = os.environ.get(TIMEOUT_ENV, str(COLLECTIVE_TIMEOUT_S))
    try:
        timeout_s = float(text)
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(text)
    except ValueError:
        raise GemmbenchError(
            f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds", f"set it like {TIMEOUT_ENV}=600"
        ) from None
    try:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise GemmbenchError(
            f"rank {fleet.rank} of {fleet.world_size} could not join the fleet: {_gist(exc)}",
            "start gemmbench with torchrun, or unset WORLD_SIZE",
        ) from None


def _raise_stopped(signum, frame):
    raise _Stopped("the launcher ended the run (another rank failed, or it was interrupted)")


def _gather(obj) -> list:
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def _check_agreement(split: str) -> None:
    """Every rank runs the same gemmbench and torch with the same options, or none starts."""
    mine = {"gemmbench": __version__, "torch": torch.__version__, "options": sys.argv[1:], "split": split}
    everyone = _gather(mine)
    for key in mine:
        values = {rank: facts[key] for rank, facts in enumerate(everyone)}
        if len({repr(v) for v in values.values()}) > 1:
            shown = "; ".join(f"rank {rank}: {value}" for rank, value in values.items())
            raise GemmbenchError(
                f"the ranks disagree on {key} ({shown})", "run the same gemmbench, torch and options on every rank"
            )


class FleetDistribution:
    """The fleet's share of a sweep's points among its ranks (the session's Distribution): the cases dealt out
    by the split, a round of one case per rank gathered to rank 0, and, where the fleet stops early, an
    error row for every point a rank did not report. A sweep's points only: the group and kernels commands
    refuse torchrun. One object per session: it keeps where each rank's rows are among those kept, for the
    kernel pass and for the error rows."""

    # RuntimeError: what a collective raises when a rank has gone or the timeout passed.
    stops = (_Stopped, KeyboardInterrupt, RuntimeError)

    def __init__(self, fleet: Fleet, split: str, device: torch.device) -> None:
        self.fleet, self.split = fleet, split
        self.rank, self.leader = fleet.rank, fleet.leader
        self.device_id = device_id(fleet.rank, device)
        self._shares: list[SweepPlan] = []
        self._everyone: list[Provenance] = []  # every rank's provenance, by rank
        self._positions: list[list[int]] = [[] for _ in range(fleet.world_size)]  # each rank's rows among those kept
        self._kept = 0

    def provenance(self, own: Provenance) -> Provenance:
        """Rank 0: the fleet's, rank 0's own with every rank's; the others: their own."""
        mine = replace(own, rank=self.rank, device_id=self.device_id)
        self._everyone = _gather(mine)
        if not self.leader:
            return mine
        ranks = FleetProvenance(self.fleet.world_size, self.split, tuple(self._everyone))
        return replace(self._everyone[0], fleet=ranks)

    def shares(self, plan: SweepPlan) -> list[SweepPlan]:
        self._shares = [replace(plan, cases=cases) for cases in assign(plan.cases, self.fleet, self.split)]
        return self._shares

    def rounds(self, rows: Iterator) -> Iterator[list]:
        """A case a round (its rows alone and in each context), stamped with this rank and its device; a rank
        with fewer cases goes on gathering empty rounds to the last, as every rank must."""
        share = self._shares[self.rank]
        for _ in range(max(len(s.cases) for s in self._shares)):
            round_rows = itertools.islice(rows, share.rows_per_case)
            yield [replace(row, rank=self.rank, device_id=self.device_id) for row in round_rows]

    def gather(self, rows: list) -> list:
        """Every rank's rows of the round at rank 0, in rank order; the other ranks keep their own."""
        kept = []
        for rank, theirs in enumerate(_gather(rows)):
            if self._keeps(rank):
                kept += self._kept_rows(rank, theirs)
        return kept

    def gather_profiled(self, rows: list, kept: list) -> list:
        """The rows kept, each rank's profiled rows where its rows were kept (rank 0: every rank's)."""
        kept = list(kept)
        for rank, theirs in enumerate(_gather(rows)):
            if self._keeps(rank):
                for position, row in zip(self._positions[rank], theirs, strict=True):
                    kept[position] = row
        return kept

    def stopped(self, exc: BaseException, measured: list) -> tuple[str | None, list]:
        """Why the fleet stopped, and the rows to keep: this rank's of the round not gathered, and on rank 0
        an error row for every row of every point a rank did not report. Ctrl-C (torchrun passes it to every
        rank) is no failure: the run is interrupted, as one process's is, with what finished."""
        left = self._kept_rows(self.rank, measured[len(self._positions[self.rank]) :])
        if isinstance(exc, KeyboardInterrupt):
            return None, left
        reason = _gist(exc)
        return reason, left + (self._unreported(reason) if self.leader else [])

    def _keeps(self, rank: int) -> bool:
        return self.leader or rank == self.rank

    def _kept_rows(self, rank: int, rows: list) -> list:
        """`rows` of `rank`, noted where they go among the rows kept."""
        self._positions[rank] += range(self._kept, self._kept + len(rows))
        self._kept += len(rows)
        return rows

    def _unreported(self, reason: str) -> list[Record]:
        """An error row, naming the rank, for every row of every point of a rank that did not report it."""
        rows = []
        for rank, share in enumerate(self._shares):
            reported = len(self._positions[rank]) // max(1, share.rows_per_case)
            for case in share.cases[reported:]:
                for producer in (None, *share.producers):  # every row of the case: alone and in each context
                    for variant in share.variants:
                        rows.append(
                            Record.for_case(
                                case,
                                variant.name,
                                ERROR,
                                f"{NOT_MEASURED}the fleet stopped before rank {rank} reported it ({reason})",
                                pdl=variant.pdl,
                                context=producer.name if producer else None,
                                rank=rank,
                                device_id=self._everyone[rank].device_id,
                            )
                        )
        return rows


def _gist(exc: BaseException) -> str:
    """The gist of an exception: its first line, without the `[file.cc:123]` location gloo puts first."""
    return re.sub(r"^\[[^\]]*\]\s*", "", first_line(exc)) or type(exc).__name__
