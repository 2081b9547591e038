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
from gemmbench.errors import UsageError
from gemmbench.inputs import COLD, HOT
from gemmbench.measure import POINT_WARMUP_S, SweepOptions, measure_cases, profile_records
from gemmbench.plugins import load_plugins
from gemmbench.runfile import Run, RunWriter, ensure_writable_dir, new_run_path
from gemmbench.shapes import (
    CPU_DEFAULT_M,
    DEFAULT_M,
    DEFAULT_PRESET,
    Case,
    GroupSpec,
    build_cases,
    parse_m_list,
    parse_shape,
    select_gemms,
)
from gemmbench.timing import Target


def _ignore(*_args) -> None:
    return None


MEASURE, PROFILE = "measure", "kernels"  # the two passes of a session


@dataclass(frozen=True)
class Step:
    """One unit of a session's work, for progress: a point measured, or profiled."""

    phase: str  # MEASURE or PROFILE
    case: Case
    backend: str


@dataclass(frozen=True)
class SweepCallbacks:
    """How a session reports as it goes; every callback is optional."""

    started: Callable[[dict, list[Step]], None] = _ignore  # the provenance, and every step planned
    progress: Callable[[int], None] = _ignore  # how many steps are done
    note: Callable[[str], None] = _ignore  # what is about to take a while
    warn: Callable[[str], None] = _ignore  # a sweep-wide problem that leaves columns empty


@dataclass(frozen=True)
class SweepPlan:
    """What to run, where and how; `out_dir` None: keep the run in memory only."""

    cases: list[Case]
    backends: list[Backend]
    device: torch.device
    m_values: tuple[int, ...]  # the M values the GEMMs run at; empty where only MxNxK shapes (own M) run
    options: SweepOptions = SweepOptions()
    out_dir: Path | None = None
    remeasure_roofline: bool = False

    @property
    def profiles(self) -> bool:
        """Whether the session ends with a kernel pass (torch.profiler needs a GPU)."""
        return self.options.capture_kernels and self.device.type == "cuda"

    @property
    def steps(self) -> list[Step]:
        return self.steps_for(self.cases)

    def steps_for(self, cases: list[Case]) -> list[Step]:
        """Case by case, each backend in turn; then the same again for the kernel pass, if any."""
        phases = (MEASURE, PROFILE) if self.profiles else (MEASURE,)
        return [Step(phase, case, b.name) for phase in phases for case in cases for b in self.backends]


@dataclass(frozen=True)
class SweepResult:
    run: Run
    path: Path | None  # the run file, where saved
    planned: int  # points planned; fewer records when interrupted
    interrupted: bool
    failure: str | None = None  # why a fleet stopped early (a rank gone, a collective timed out)


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
    plugins: Sequence[str] = (),
    out_dir: str | Path | None = None,
    remeasure_roofline: bool = False,
    time_calls: bool = True,
) -> SweepPlan:
    """Turn the sweep's options (as the command line takes them) into a plan; bad input raises a
    GemmbenchError before any work. Defaults: the deepseek-v3 preset; M from 1 to 16384 in powers of
    two on a GPU, 1, 8, 64 on the CPU; every real backend, those of `plugins` (module names or .py
    files) and of installed plugin packages included."""
    load_plugins(list(plugins))
    parsed = [parse_shape(text) for text in shapes]
    explicit = [shape for shape in parsed if isinstance(shape, Case)]  # MxNxK: at its own M
    custom = [shape for shape in parsed if not isinstance(shape, Case)]  # NxK: at the M values
    if explicit and m is not None:
        raise UsageError(
            f"--shape {shapes[parsed.index(explicit[0])]} carries its own M, and --m was given too",
            "write the shape as NxK to run it at the --m values, or drop --m",
        )
    if not presets and not configs and not parsed:
        presets = [DEFAULT_PRESET]
    dev = environment.select_device(device)
    if m is None:
        m_values = DEFAULT_M if dev.type == "cuda" else CPU_DEFAULT_M
    elif isinstance(m, str):
        m_values = parse_m_list(m)
    else:
        m_values = parse_m_list(",".join(str(value) for value in m))
    gemms = select_gemms(list(presets), [Path(c) for c in configs], list(roles)) + custom
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
        m_values=m_values if gemms else (),
        options=options,
        out_dir=None if out_dir is None else ensure_writable_dir(Path(out_dir)),
        remeasure_roofline=remeasure_roofline,
    )


def provenance_and_options(plan: SweepPlan) -> tuple[dict, SweepOptions]:
    """The provenance of a run on `plan.device`, and the plan's options with the device's roofline where
    timing (measured once per GPU and cached)."""
    provenance = environment.collect_provenance(plan.device)
    options = plan.options
    if options.time_calls:
        roof = roofline.for_device(plan.device, remeasure=plan.remeasure_roofline)
        if roof is not None:
            provenance["roofline"] = asdict(roof)
            options = replace(options, roofline=roof)
    return provenance, options


def _open_run(plan: SweepPlan, provenance: dict, planned: int) -> tuple[Run, RunWriter | None]:
    """A run not yet complete, and the writer of its file where the plan saves one."""
    run = Run(provenance, planned=planned, complete=False)
    return run, RunWriter(new_run_path(plan.out_dir, provenance), run) if plan.out_dir is not None else None


def _close_run(run: Run, writer: RunWriter | None, planned: int) -> SweepResult:
    """The file written once more (complete or not), and the session's result."""
    if writer:
        writer.flush()
    return SweepResult(run, writer.path if writer else None, planned, not run.complete)


def run_session(plan: SweepPlan, callbacks: SweepCallbacks = SweepCallbacks()) -> SweepResult:
    """Measure every point of `plan`, then profile them; Ctrl-C ends the session early with what
    finished, and the run says it is incomplete."""
    provenance, options = provenance_and_options(plan)
    points = len(plan.cases) * len(plan.backends)
    run, writer = _open_run(plan, provenance, points)
    steps = plan.steps
    callbacks.started(provenance, steps)
    done = 0
    try:
        for record in measure_cases(plan.cases, plan.backends, plan.device, options, callbacks.warn, callbacks.note):
            run.records.append(record)
            if writer:
                writer.flush()
            done += 1
            callbacks.progress(done)
        if plan.profiles:
            measured = done
            callbacks.progress(done)
            run.records[:] = profile_records(
                run.records,
                plan.backends,
                plan.device,
                options,
                callbacks.warn,
                lambda index: callbacks.progress(measured + index + 1),
            )
        run.complete = True
    except KeyboardInterrupt:
        pass
    return _close_run(run, writer, points)


def run_group_session(
    plan: SweepPlan, groups: list[GroupSpec], callbacks: SweepCallbacks = SweepCallbacks()
) -> SweepResult:
    """`gemmbench group`: every (group, M, backend) of `plan` timed serially and in parallel, then the
    kernel pass; the run file holds the group records."""
    from gemmbench.groups import measure_groups, profile_groups

    provenance, options = provenance_and_options(plan)
    points = len(groups) * len(plan.m_values) * len(plan.backends)
    run, writer = _open_run(plan, provenance, points)
    callbacks.started(provenance, [])
    try:
        for record in measure_groups(groups, plan.m_values, plan.backends, plan.device, options, callbacks.note):
            run.groups.append(record)
            if writer:
                writer.flush()
            callbacks.progress(len(run.groups))
        if plan.profiles:
            run.groups[:] = profile_groups(run.groups, groups, plan.backends, plan.device, options)
        run.complete = True
    except KeyboardInterrupt:
        pass
    return _close_run(run, writer, points)
