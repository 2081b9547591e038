"""A session: what the `sweep`, `kernels` and `group` commands and the Python API run.

`plan_sweep` turns options into a plan (bad input raises before any work). `run_session` is the one driver
of every kind of work, a sweep's points (`SweepWork`) or a preset's groups (`GroupWork`): it collects the
provenance, measures the roofline (once per GPU, cached), measures every row on one `Bench`, writes the
run file after every row, runs the kernel pass after all timing, and keeps what finished when
interrupted. It reports through callbacks (progress, notes, warnings) and never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch

from gemmbench.backends import Backend, select_backends
from gemmbench.backends.plugins import load_plugins
from gemmbench.backends.producers import NO_CONTEXT, Producer, select_producers
from gemmbench.errors import UsageError
from gemmbench.measure import environment, roofline
from gemmbench.measure.bench import Bench, MeasureOptions, Variant, ignore, variants
from gemmbench.measure.groups import measure_groups, profile_groups
from gemmbench.measure.option_checks import check_count, check_lists, check_options
from gemmbench.measure.points import measure_cases, profile_records
from gemmbench.measure.routing_data import load_routing_data
from gemmbench.records import Run, after_context
from gemmbench.records.provenance import Provenance
from gemmbench.records.runfile import RunWriter, ensure_writable_dir, new_run_path
from gemmbench.spec.cases import Case, GroupSpec
from gemmbench.spec.parse import CPU_DEFAULT_M, DEFAULT_M, build_cases, parse_m_list, parse_shape
from gemmbench.spec.presets import DEFAULT_PRESET, select_gemms
from gemmbench.spec.steps import MEASURE, PROFILE, Step
from gemmbench.timing.defaults import (
    DEVICE_BUDGET_S,
    DEVICE_TARGET_CI_REL,
    MAX_PLACEMENTS,
    PLACEMENTS,
    POINT_WARMUP_S,
)
from gemmbench.timing.inputs import COLD, HOT
from gemmbench.timing.stopping import MAX_SAMPLES, FixedCount, Target


@dataclass(frozen=True)
class SweepCallbacks:
    """How a session reports as it goes; every callback is optional."""

    started: Callable[[Provenance, list[Step]], None] = ignore  # the provenance, and every step planned
    progress: Callable[[int], None] = ignore  # how many steps are done
    note: Callable[[str], None] = ignore  # what is about to take a while
    warn: Callable[[str], None] = ignore  # a sweep-wide problem that leaves columns empty
    row_done: Callable[[object], None] = ignore  # each measured row (a record or a group row), as it is kept


@dataclass(frozen=True)
class SweepPlan:
    """What to run, where and how; `out_dir` None: keep the run in memory only."""

    cases: list[Case]
    backends: list[Backend]
    device: torch.device
    m_values: tuple[int, ...]  # the M values the GEMMs run at; empty where only MxNxK shapes (own M) run
    options: MeasureOptions = MeasureOptions()
    out_dir: Path | None = None
    remeasure_roofline: bool = False
    # The contexts: what writes x before each GEMM in a layer; each row is timed alone and after each of them.
    producers: tuple[Producer, ...] = ()

    @property
    def rows(self) -> list[Variant]:
        """What each case is measured with: every backend, twice where it can launch with PDL."""
        return variants(self.backends)

    @property
    def profiles(self) -> bool:
        """Whether the session ends with a kernel pass (torch.profiler needs a GPU)."""
        return self.options.capture_kernels and self.device.type == "cuda"

    @property
    def rows_per_case(self) -> int:
        """Rows each case makes: every variant alone and in each context."""
        return len(self.rows) * (1 + len(self.producers))

    @property
    def steps(self) -> list[Step]:
        return self.steps_for(self.cases)

    def steps_for(self, cases: list[Case]) -> list[Step]:
        return steps_of(self, [(c.model, c.gemm, c.m) for c in cases], [v.label for v in self.rows])


def steps_of(plan: SweepPlan, points: list[tuple[str, str, int]], labels: list[str]) -> list[Step]:
    """Point by point (model, GEMM or group, M), alone then in each context, each row label in turn; then the
    points alone again for the kernel pass, if any (a GEMM in a layer launches the kernels it launches alone)."""
    contexts = ("", *(after_context(p.name) for p in plan.producers))
    measure = [Step(MEASURE, *point, label + after) for point in points for after in contexts for label in labels]
    profile = [Step(PROFILE, *point, label) for point in points for label in labels]
    return measure + (profile if plan.profiles else [])


@dataclass(frozen=True)
class SweepResult:
    run: Run
    path: Path | None  # the run file, where saved
    planned: int  # points planned; fewer records when interrupted
    interrupted: bool
    failure: str | None = None  # why a fleet stopped early (a rank gone, a collective timed out)
    save_problem: str | None = None  # why the run file went to a fallback path


class Work(Protocol):
    """One kind of session work: the rows it plans, how it measures them, how it profiles them."""

    def steps(self, plan: SweepPlan) -> list[Step]: ...

    def rows(self, run: Run) -> list: ...  # the run's list the rows go to

    def measure(self, plan: SweepPlan, bench: Bench, note: Callable[[str], None]) -> Iterator: ...

    def profile(self, plan: SweepPlan, rows: list, bench: Bench, callbacks: SweepCallbacks, done: int) -> list: ...


class SweepWork:
    """A sweep's points: one Record per (case, backend)."""

    def steps(self, plan: SweepPlan) -> list[Step]:
        return plan.steps

    def rows(self, run: Run) -> list:
        return run.records

    def measure(self, plan: SweepPlan, bench: Bench, note: Callable[[str], None]) -> Iterator:
        return measure_cases(plan.cases, plan.backends, bench, note, plan.producers)

    def profile(self, plan: SweepPlan, rows: list, bench: Bench, callbacks: SweepCallbacks, done: int) -> list:
        return profile_records(rows, plan.backends, bench, callbacks.warn, lambda i: callbacks.progress(done + i + 1))


@dataclass(frozen=True)
class GroupWork:
    """A preset's groups: one GroupRecord per (group, M, backend), at the plan's M values."""

    groups: list[GroupSpec]

    def steps(self, plan: SweepPlan) -> list[Step]:
        points = [(group.model, group.name, m) for group in self.groups for m in plan.m_values]
        return steps_of(plan, points, [b.name for b in plan.backends])

    def rows(self, run: Run) -> list:
        return run.groups

    def measure(self, plan: SweepPlan, bench: Bench, note: Callable[[str], None]) -> Iterator:
        return measure_groups(self.groups, plan.m_values, plan.backends, bench, note, plan.producers)

    def profile(self, plan: SweepPlan, rows: list, bench: Bench, callbacks: SweepCallbacks, done: int) -> list:
        profiled = profile_groups(rows, self.groups, plan.backends, bench)
        callbacks.progress(done + len(rows))
        return profiled


def plan_sweep(
    presets: Sequence[str] = (),
    configs: Sequence[str | Path] = (),
    shapes: Sequence[str] = (),
    roles: Sequence[str] = (),
    m: str | Sequence[int] | None = None,
    backends: Sequence[str] = (),
    device: str = "auto",
    hot: bool = False,
    target_ci_pct: float = DEVICE_TARGET_CI_REL * 100,
    budget_ms: float = DEVICE_BUDGET_S * 1e3,
    warmup_ms: float | None = None,
    seed: int = 0,
    kernels: bool = True,
    plugins: Sequence[str] = (),
    out_dir: str | Path | None = None,
    remeasure_roofline: bool = False,
    time_calls: bool = True,
    context: str | Sequence[str] = NO_CONTEXT,
    keep_samples: bool = False,
    placements: int | None = None,
    weights: str | Path | None = None,
    weight_tensor: str | None = None,
    bias_tensor: str | None = None,
    activations: str | Path | None = None,
    activations_tensor: str | None = None,
    samples: int | None = None,
) -> SweepPlan:
    """Turn the sweep's options (as the command line takes them) into a plan; bad input raises a
    GemmbenchError before any work. Defaults: the deepseek-v3 preset; M = 1..16, then powers of two to
    16384, on a GPU, 1, 8, 64 on the CPU; every real backend, those of `plugins` (module names or .py
    files) and of installed plugin packages included; no context (`context`: a producer's name, several
    comma-separated, or a list of them)."""
    check_options(seed, hot, kernels, remeasure_roofline, keep_samples, target_ci_pct, budget_ms, warmup_ms)
    check_count("placements", placements, MAX_PLACEMENTS, f"None for the default ({PLACEMENTS} on a GPU, 1 on the CPU)")
    check_count("samples", samples, MAX_SAMPLES, "None for the --target-ci/--budget-ms rule")
    lists = {"presets": presets, "configs": configs, "shapes": shapes, "roles": roles, "backends": backends}
    check_lists({**lists, "plugins": plugins})
    load_plugins(list(plugins))
    producers = select_producers(context)
    parsed = [parse_shape(text) for text in shapes]
    explicit = [shape for shape in parsed if isinstance(shape, Case)]  # MxNxK: at its own M
    custom = [shape for shape in parsed if not isinstance(shape, Case)]  # NxK: at the M values
    if explicit and m is not None:
        raise UsageError(
            f"shape {shapes[parsed.index(explicit[0])]} carries its own M, and M values were given too",
            "write the shape as NxK to run it at the M values given, or give no M values",
        )
    if not presets and not configs and not parsed:
        presets = [DEFAULT_PRESET]
    dev = environment.select_device(device)
    m_values = _m_values(m, dev)
    gemms = select_gemms(list(presets), [Path(c) for c in configs], list(roles)) + custom
    options = MeasureOptions(
        warmup_s=POINT_WARMUP_S if warmup_ms is None else warmup_ms / 1e3,
        target=FixedCount(samples) if samples else Target(ci_rel=target_ci_pct / 100, budget_s=budget_ms / 1e3),
        l2=HOT if hot else COLD,
        seed=seed,
        time_calls=time_calls,
        capture_kernels=kernels,
        keep_samples=keep_samples,
        placements=placements or (PLACEMENTS if dev.type == "cuda" else 1),
        routing_data=load_routing_data(
            weights and Path(weights), weight_tensor, bias_tensor, activations and str(activations), activations_tensor
        ),
    )
    return SweepPlan(
        cases=build_cases(gemms, explicit, m_values),
        backends=select_backends(list(backends)),
        device=dev,
        m_values=m_values if gemms else (),
        options=options,
        out_dir=None if out_dir is None else ensure_writable_dir(Path(out_dir)),
        remeasure_roofline=remeasure_roofline,
        producers=producers,
    )


def _m_values(m, device: torch.device) -> tuple[int, ...]:
    """The M values asked for (a list, an int, or a string as --m takes it), or the device's default."""
    if m is None:
        return DEFAULT_M if device.type == "cuda" else CPU_DEFAULT_M
    if isinstance(m, int) and not isinstance(m, bool):
        m = [m]
    return parse_m_list(m if isinstance(m, str) else ",".join(str(value) for value in m))


def provenance_and_options(plan: SweepPlan, warn: Callable[[str], None] = ignore) -> tuple[Provenance, MeasureOptions]:
    """The provenance of a run on `plan.device`, and the plan's options with the device's roofline where
    timing (measured once per GPU and cached)."""
    provenance = environment.collect_provenance(plan.device)
    routing_data = plan.options.routing_data
    provenance = replace(
        provenance,
        context=",".join(p.name for p in plan.producers) or NO_CONTEXT,
        routing_data=None if routing_data is None else routing_data.describe(),
    )
    options = plan.options
    if options.time_calls:
        roof = roofline.for_device(plan.device, remeasure=plan.remeasure_roofline, warn=warn)
        if roof is not None:
            provenance = replace(provenance, roofline=roof)
            options = replace(options, roofline=roof)
    return provenance, options


def run_session(plan: SweepPlan, callbacks: SweepCallbacks = SweepCallbacks(), work: Work | None = None) -> SweepResult:
    """Measure every row of `work` (default: the plan's sweep points), then profile them; Ctrl-C ends the
    session early with what finished, and the run says it is incomplete."""
    work = work or SweepWork()
    if plan.device.type == "cuda" and plan.device.index is not None:
        torch.cuda.set_device(plan.device)  # timers, events and graphs run on the current device: the chosen one
    provenance, options = provenance_and_options(plan, callbacks.warn)
    steps = work.steps(plan)
    planned = sum(step.phase == MEASURE for step in steps)
    run = Run(provenance, planned=planned, complete=False)
    writer = RunWriter(new_run_path(plan.out_dir, provenance), run) if plan.out_dir is not None else None
    rows = work.rows(run)
    callbacks.started(provenance, steps)
    bench = Bench(plan.device, options, callbacks.warn)
    try:
        for row in work.measure(plan, bench, callbacks.note):
            rows.append(row)
            if writer:
                writer.flush()
            callbacks.row_done(row)
            callbacks.progress(len(rows))
        if plan.profiles:
            rows[:] = work.profile(plan, rows, bench, callbacks, len(rows))
        run.complete = True
    except KeyboardInterrupt:
        pass
    if writer:
        writer.flush()
    problem = writer.problem if writer else None
    return SweepResult(run, writer.path if writer else None, planned, not run.complete, save_problem=problem)
