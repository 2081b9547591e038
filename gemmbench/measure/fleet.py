"""One sweep over many GPUs, launched by torchrun: one rank per GPU, across the GPUs of a host and across
hosts. Without torchrun (no WORLD_SIZE in the environment) none of this runs.

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
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass, replace
from datetime import timedelta

import torch
import torch.distributed as dist

from gemmbench.errors import GemmbenchError
from gemmbench.measure.bench import Bench
from gemmbench.measure.points import measure_cases, profile_records
from gemmbench.measure.session import SweepCallbacks, SweepPlan, SweepResult, provenance_and_options
from gemmbench.records import ERROR, Record, Run
from gemmbench.records.provenance import FleetProvenance
from gemmbench.records.runfile import RunWriter, new_run_path
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
        torch.cuda.set_device(fleet.local_rank)
        plan = replace(plan, device=torch.device("cuda", fleet.local_rank))
    timeout_s = float(os.environ.get(TIMEOUT_ENV, COLLECTIVE_TIMEOUT_S))
    dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    previous_handler = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        return _run(plan, fleet, split, callbacks)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if dist.is_initialized():
            dist.destroy_process_group()


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


def _run(plan: SweepPlan, fleet: Fleet, split: str, callbacks: SweepCallbacks) -> SweepResult:
    _check_agreement(split)
    provenance, options = provenance_and_options(plan, callbacks.warn)
    provenance = replace(provenance, rank=fleet.rank, device_id=device_id(fleet.rank, plan.device))
    everyone = _gather(provenance)
    assignment = assign(plan.cases, fleet, split)
    rows_per_case = plan.rows_per_case
    planned = sum(len(cases) for cases in assignment) * rows_per_case
    merged = replace(everyone[0], fleet=FleetProvenance(fleet.world_size, split, tuple(everyone)))
    run = Run(merged if fleet.leader else provenance, planned=planned, complete=False)
    writer = RunWriter(new_run_path(plan.out_dir, merged), run) if fleet.leader and plan.out_dir else None
    mine: list[Record] = []  # this rank's records, in its order
    positions: list[list[int]] = [[] for _ in range(fleet.world_size)]  # rank 0: where each rank's rows are
    callbacks.started(merged, plan.steps_for(assignment[fleet.rank]))
    rounds = max(len(cases) for cases in assignment)
    stamp = {"rank": fleet.rank, "device_id": provenance.device_id}
    # One generator over all of this rank's cases, advanced a case per round: its device warm-up and clock
    # watch carry over from round to round.
    bench = Bench(plan.device, options, callbacks.warn)
    points = measure_cases(assignment[fleet.rank], plan.backends, bench, callbacks.note, plan.producers)
    failure = None
    try:
        for _ in range(rounds):
            records = [replace(r, **stamp) for r in itertools.islice(points, rows_per_case)]
            mine += records
            callbacks.progress(len(mine))
            for rank, theirs in enumerate(_gather(records)):
                if fleet.leader:
                    positions[rank] += range(len(run.records), len(run.records) + len(theirs))
                    run.records += theirs
            if writer:
                writer.flush()
        if plan.profiles:
            done = len(mine)
            mine = profile_records(
                mine, plan.backends, bench, callbacks.warn, lambda i: callbacks.progress(done + i + 1)
            )
            for rank, theirs in enumerate(_gather(mine)):
                if fleet.leader:
                    for position, record in zip(positions[rank], theirs, strict=True):
                        run.records[position] = record
        run.complete = True
    except (_Stopped, KeyboardInterrupt, RuntimeError) as exc:
        # RuntimeError: what a collective raises when a rank has gone or the timeout passed
        failure = _first_line(exc)
        if fleet.leader:
            own = mine[len(positions[0]) :]  # rank 0's rows of the round that was not gathered
            positions[0] += range(len(run.records), len(run.records) + len(own))
            run.records += own
            _mark_unreported(run, plan, assignment, positions, everyone, failure)
    finally:
        if writer:
            writer.flush()
    if not fleet.leader:
        run.records = mine
    return SweepResult(run, writer.path if writer else None, planned, not run.complete, failure)


def _first_line(exc: BaseException) -> str:
    """The gist of an exception: its first line, without the `[file.cc:123]` location gloo puts first."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", line) or type(exc).__name__


def _mark_unreported(run: Run, plan: SweepPlan, assignment, positions, everyone, reason: str) -> None:
    """Rank 0, when the fleet stops early: an error row, naming the rank, for every point of a rank that
    did not report it."""
    for rank, cases in enumerate(assignment):
        reported = len(positions[rank]) // max(1, plan.rows_per_case)
        for case in cases[reported:]:
            for producer in (None, *plan.producers):  # every row of the case: alone and in each context
                for variant in plan.rows:
                    run.records.append(
                        Record.for_case(
                            case,
                            variant.name,
                            ERROR,
                            f"not measured: rank {rank} did not report it ({reason})",
                            pdl=variant.pdl,
                            context=producer.name if producer else None,
                            rank=rank,
                            device_id=everyone[rank].device_id,
                        )
                    )
