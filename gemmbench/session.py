"""A sweep session: what the `sweep` and `kernels` commands and the Python API run.

It collects the provenance, measures the roofline (once per GPU, cached), measures every point, writes
the run file after every row, and keeps what finished when interrupted. It reports through callbacks
(progress, notes, warnings) and never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from gemmbench import environment, roofline
from gemmbench.backends import Backend, select_backends
from gemmbench.inputs import COLD, HOT
from gemmbench.measure import POINT_WARMUP_S, SweepOptions, run_points
from gemmbench.records import Record
from gemmbench.runfile import Run, RunWriter, ensure_writable_dir, new_run_path
from gemmbench.shapes import (
    CPU_DEFAULT_M,
    DEFAULT_M,
    DEFAULT_PRESET,
    Case,
    build_cases,
    parse_m_list,
    parse_shape,
    select_gemms,
)
from gemmbench.timing import Target


def _ignore(*_args) -> None:
    return None


@dataclass(frozen=True)
class SweepCallbacks:
    """How a session reports as it goes; every callback is optional."""

    started: Callable[[dict, list[tuple[Case, str]]], None] = _ignore  # provenance, the points planned
    finished_point: Callable[[Record, int], None] = _ignore  # each record, and how many are done
    note: Callable[[str], None] = _ignore  # what is about to take a while
    warn: Callable[[str], None] = _ignore  # a sweep-wide problem that leaves columns empty


@dataclass(frozen=True)
class SweepPlan:
    """What to run, where and how; `out_dir` None: keep the run in memory only."""

    cases: list[Case]
    backends: list[Backend]
    device: torch.device
    m_values: tuple[int, ...]  # the M values the presets' GEMMs run at (explicit shapes carry their own)
    options: SweepOptions = SweepOptions()
    out_dir: Path | None = None
    remeasure_roofline: bool = False

    @property
    def points(self) -> list[tuple[Case, str]]:
        """(case, backend) in the order rows arrive: case by case, each backend in turn."""
        return [(case, backend.name) for case in self.cases for backend in self.backends]


@dataclass(frozen=True)
class SweepResult:
    run: Run
    path: Path | None  # the run file, where saved
    planned: int  # points planned; fewer records when interrupted
    interrupted: bool


def plan_sweep(
    presets: Sequence[str] = (),
    configs: Sequence[str | Path] = (),
    shapes: Sequence[str] = (),
    roles: Sequence[str] = (),
    m: str | Sequence[int] | None = None,
    backends: Sequence[str] = (),
    device: str = "auto",
    hot: bool = False,
    target_ci_pct: float = 1.0,
    budget_ms: float = 200.0,
    warmup_ms: float | None = None,
    seed: int = 0,
    kernels: bool = True,
    out_dir: str | Path | None = None,
    remeasure_roofline: bool = False,
    time_calls: bool = True,
) -> SweepPlan:
    """Turn the sweep's options (as the command line takes them) into a plan; bad input raises a
    GemmbenchError before any work. Defaults: the deepseek-v3 preset; M from 1 to 16384 in powers of
    two on a GPU, 1, 8, 64 on the CPU; every real backend."""
    explicit = [parse_shape(text) for text in shapes]
    if not presets and not configs and not explicit:
        presets = [DEFAULT_PRESET]
    dev = environment.select_device(device)
    if m is None:
        m_values = DEFAULT_M if dev.type == "cuda" else CPU_DEFAULT_M
    elif isinstance(m, str):
        m_values = parse_m_list(m)
    else:
        m_values = parse_m_list(",".join(str(value) for value in m))
    gemms = select_gemms(list(presets), [Path(c) for c in configs], list(roles))
    options = SweepOptions(
        warmup_s=POINT_WARMUP_S if warmup_ms is None else warmup_ms / 1e3,
        target=Target(ci_rel=target_ci_pct / 100, budget_s=budget_ms / 1e3),
        l2=HOT if hot else COLD,
        seed=seed,
        time_calls=time_calls,
        capture_kernels=kernels,
    )
    return SweepPlan(
        cases=build_cases(gemms, explicit, m_values),
        backends=select_backends(list(backends)),
        device=dev,
        m_values=m_values,
        options=options,
        out_dir=None if out_dir is None else ensure_writable_dir(Path(out_dir)),
        remeasure_roofline=remeasure_roofline,
    )


def run_session(plan: SweepPlan, callbacks: SweepCallbacks = SweepCallbacks()) -> SweepResult:
    """Run every point of `plan`; Ctrl-C ends the session early with the rows that finished."""
    provenance = environment.collect_provenance(plan.device)
    options = plan.options
    if options.time_calls:
        roof = roofline.for_device(plan.device, remeasure=plan.remeasure_roofline)
        if roof is not None:
            provenance["roofline"] = asdict(roof)
            options = replace(options, roofline=roof)
    writer = RunWriter(new_run_path(plan.out_dir, provenance), provenance) if plan.out_dir is not None else None
    run = writer.run if writer else Run(provenance)
    points = plan.points
    callbacks.started(provenance, points)
    interrupted = False
    try:
        for record in run_points(plan.cases, plan.backends, plan.device, options, callbacks.warn, callbacks.note):
            if writer:
                writer.add(record)
            else:
                run.records.append(record)
            callbacks.finished_point(record, len(run.records))
    except KeyboardInterrupt:
        interrupted = True
    return SweepResult(run, writer.path if writer else None, len(points), interrupted)
