"""A session: what the `sweep`, `kernels` and `group` commands and the Python API run.

`plan_sweep` turns options into a plan (bad input raises before any work). `run_session` is the one driver
of every kind of work, a sweep's points (`SweepWork`) or a preset's groups (`GroupWork`), in one process
(`OneProcess`) or as one rank of a fleet (measure/fleet.py's distribution): it collects the provenance,
measures the roofline (once per GPU, cached), measures every row on one `Bench`, brings the rows to the
process that keeps the run, writes the run file after every round of rows (in one process: every row), runs
the kernel pass after all timing, and keeps what finished when interrupted. It reports through callbacks
(progress, notes, warnings) and never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Protocol

import torch

from gemmbench.backends import REGISTRY, Backend, select_backends
from gemmbench.backends.plugins import load_plugins
from gemmbench.backends.producers import NO_CONTEXT, Producer, select_producers
from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.measure import environment, roofline
from gemmbench.measure.bench import Bench, MeasureOptions, Variant, ignore, variants
from gemmbench.measure.groups import measure_groups, profile_groups
from gemmbench.measure.option_checks import check_count, check_kinds, check_lists, check_options
from gemmbench.measure.points import measure_cases, profile_records
from gemmbench.measure.routing_data import load_routing_data
from gemmbench.records import Run, after_context
from gemmbench.records.provenance import Provenance
from gemmbench.records.record import PDL_SUFFIX
from gemmbench.records.runfile import RunWriter, ensure_writable_dir, new_run_path
from gemmbench.spec.cases import Case, GroupSpec
from gemmbench.spec.parse import CPU_DEFAULT_M, DEFAULT_M, build_cases, parse_m_list, parse_shape
from gemmbench.spec.presets import DEFAULT_PRESET, select_gemms
from gemmbench.spec.steps import MEASURE, PROFILE, Step
from gemmbench.timing.defaults import (
    DEFAULT_BUDGET_MS,
    DEFAULT_TARGET_CI_PCT,
    MAX_PLACEMENTS,
    PLACEMENTS,
    POINT_WARMUP_S,
)
from gemmbench.timing.inputs import COLD, HOT
from gemmbench.timing.stopping import MAX_SAMPLES, FixedCount, Target, rule_conflict, rule_options_given

# What every session measures on (`session_bench`): the one seam between the driver and the executor,
# where the tests put a made-up device instead (tests/fakes.py).
SESSION_BENCH: type[Bench] = Bench


@dataclass(frozen=True)
class SweepCallbacks:
    """How a session reports as it goes; every callback is optional."""

    started: Callable[[Provenance, list[Step]], None] = ignore  # the run's provenance, and this process's steps
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
    def variants(self) -> list[Variant]:
        """What each case is measured with: every backend, twice where it can launch with PDL."""
        return variants(self.backends)

    @property
    def profiles(self) -> bool:
        """Whether the session ends with a kernel pass (torch.profiler needs a GPU)."""
        return self.options.capture_kernels and self.device.type == "cuda"

    @property
    def rows_per_case(self) -> int:
        """Rows each case makes: every variant alone and in each context."""
        return len(self.variants) * (1 + len(self.producers))

    @property
    def steps(self) -> list[Step]:
        return self.steps_for(self.cases)

    def steps_for(self, cases: list[Case]) -> list[Step]:
        return steps_of(self, [(c.model, c.gemm, c.m) for c in cases], [v.label for v in self.variants])


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
    planned: int  # rows planned, on every process; fewer records when interrupted
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
    target_ci_pct: float = DEFAULT_TARGET_CI_PCT,
    budget_ms: float = DEFAULT_BUDGET_MS,
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
    """The sweep's options (as the command line takes them) as a plan; bad input raises a GemmbenchError before
    any work. Defaults: deepseek-v3; M = 1..16 then powers of two to 16384 on a GPU, 1, 8, 64 on the CPU; every
    backend (those of `plugins` and installed plugin packages too); no context (producer names, or a list)."""
    check_options(seed, hot, kernels, remeasure_roofline, keep_samples, target_ci_pct, budget_ms, warmup_ms)
    check_count("placements", placements, MAX_PLACEMENTS, f"None for the default ({PLACEMENTS} on a GPU, 1 on the CPU)")
    check_count("samples", samples, MAX_SAMPLES, "None for the --target-ci/--budget-ms rule")
    given = rule_options_given(samples, target_ci_pct, budget_ms, ("samples", "target_ci_pct", "budget_ms"))
    if conflict := rule_conflict(given, "samples"):
        raise UsageError(conflict, "give one or the other")
    lists = check_lists(
        presets=presets, configs=configs, shapes=shapes, roles=roles, backends=backends, plugins=plugins
    )
    presets, configs, shapes, roles, backends, plugins = lists.values()
    if not isinstance(context, str):
        context = check_lists(context=context)["context"]
    path, text = (str, PathLike), (str,)
    device = "auto" if device is None else device  # None: the default, as for the list options
    check_kinds(
        device=(device, text),
        context=(context, (str, list, tuple)),
        out_dir=(out_dir, path),
        weights=(weights, path),
        activations=(activations, path),
        weight_tensor=(weight_tensor, text),
        bias_tensor=(bias_tensor, text),
        activations_tensor=(activations_tensor, text),
    )
    load_plugins(list(plugins))
    producers = select_producers(context)
    dev = environment.select_device(device)
    cases, m_values = _cases(presets, configs, shapes, roles, m, dev)
    routing_data = load_routing_data(weights, weight_tensor, bias_tensor, activations, activations_tensor)
    if routing_data is not None and (unused := routing_data.unused(cases)):
        raise GemmbenchError(*unused)
    options = MeasureOptions(
        warmup_s=POINT_WARMUP_S if warmup_ms is None else warmup_ms / 1e3,
        target=FixedCount(samples) if samples else Target(ci_rel=target_ci_pct / 100, budget_s=budget_ms / 1e3),
        l2=HOT if hot else COLD,
        seed=seed,
        time_calls=time_calls,
        capture_kernels=kernels,
        keep_samples=keep_samples,
        placements=placements or (PLACEMENTS if dev.type == "cuda" else 1),
        routing_data=routing_data,
    )
    return SweepPlan(
        cases=cases,
        backends=_backends(list(backends)),
        device=dev,
        m_values=m_values,
        options=options,
        out_dir=None if out_dir is None else ensure_writable_dir(Path(out_dir)),
        remeasure_roofline=remeasure_roofline,
        producers=producers,
    )


# The options only a GPU acts on, by their Python names, with why (the command line names them as flags).
_DEVICE_TIMER_ONLY = "it sets the CUDA-graph device timer; the CPU is timed in eager windows"
GPU_ONLY_OPTIONS = {
    "hot": "gemmbench manages the L2 of GPUs only",
    "remeasure_roofline": "the roofline is measured on GPUs only",
    "samples": _DEVICE_TIMER_ONLY,
    "target_ci_pct": _DEVICE_TIMER_ONLY,
    "budget_ms": _DEVICE_TIMER_ONLY,
}


def ignored_here(plan: SweepPlan, given: list[str]) -> dict[str, str]:
    """Of the options `given` (Python names), those that have no effect on the plan's device, with why."""
    if plan.device.type == "cuda":
        return {}
    return {name: GPU_ONLY_OPTIONS[name] for name in given if name in GPU_ONLY_OPTIONS}


def _backends(names: list[str]) -> list[Backend]:
    """The backends named; a row's label in their place (`router_small_m_ext+pdl`, as `recommend` names it)
    is refused with the backend's name, which is timed with and without PDL."""
    for name in names:
        plain = name.removesuffix(PDL_SUFFIX)
        if plain != name and plain in REGISTRY:
            raise UsageError(
                f"'{name}' is the row of {plain} launched with PDL, not a backend",
                f"name the backend, --backend {plain}: it is timed with and without PDL",
            )
    return select_backends(names)


def _cases(presets, configs, shapes, roles, m, device: torch.device) -> tuple[list[Case], tuple[int, ...]]:
    """The cases of the presets, configs and shapes (an MxNxK shape at its own M, an NxK one at the M values)
    and the M values (none where no GEMM runs at them); the default preset where nothing was named."""
    parsed = [parse_shape(text) for text in shapes]
    explicit = [shape for shape in parsed if isinstance(shape, Case)]
    custom = [shape for shape in parsed if not isinstance(shape, Case)]
    if explicit and m is not None:
        raise UsageError(
            f"shape {shapes[parsed.index(explicit[0])]} carries its own M, and M values were given too",
            "write the shape as NxK to run it at the M values given, or give no M values",
        )
    if not presets and not configs and not parsed:
        presets = [DEFAULT_PRESET]
    m_values = _m_values(m, device)
    gemms = select_gemms(list(presets), [Path(c) for c in configs], list(roles)) + custom
    return build_cases(gemms, explicit, m_values), (m_values if gemms else ())


def _m_values(m, device: torch.device) -> tuple[int, ...]:
    """The M values asked for (a list, an int, or a string as --m takes it), or the device's default."""
    if m is None:
        return DEFAULT_M if device.type == "cuda" else CPU_DEFAULT_M
    if isinstance(m, int) and not isinstance(m, bool):
        m = [m]
    return parse_m_list(m if isinstance(m, str) else ",".join(str(value) for value in m))


def _provenance_and_options(plan: SweepPlan, warn: Callable[[str], None] = ignore) -> tuple[Provenance, MeasureOptions]:
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


def session_bench(plan: SweepPlan, options: MeasureOptions, warn: Callable[[str], None]) -> Bench:
    """The bench a session measures `plan` on, with `options` (the plan's, with the device's roofline)."""
    return SESSION_BENCH(plan.device, options, warn)


class Distribution(Protocol):
    """How a session's work is shared among processes, and how the rows each measures reach the process that
    keeps the run (`leader`): one object per session, called in this order, which may keep what it needs
    from one call to the next. The rows `gather` and `stopped` return are appended to the run's, in order."""

    rank: int  # this process's index among the shares
    leader: bool  # this process keeps the run: it writes the run file
    stops: tuple[type[BaseException], ...]  # what ends the session early, keeping what finished

    def provenance(self, own: Provenance) -> Provenance: ...  # the run's, from this process's own

    def shares(self, plan: SweepPlan) -> list[SweepPlan]: ...  # every process's part of the plan, by rank

    def rounds(self, rows: Iterator) -> Iterator[list]: ...  # this process's rows, a round at a time

    def gather(self, rows: list) -> list: ...  # a round's rows to keep here, this process's and others'

    def gather_profiled(self, rows: list, kept: list) -> list: ...  # the rows kept, profiled ones in place

    def stopped(self, exc: BaseException, measured: list) -> tuple[str | None, list]: ...  # why, and rows to keep


class OneProcess:
    """A session in one process: the whole plan, each row a round, nothing to gather; Ctrl-C interrupts it,
    which is no failure."""

    rank = 0
    leader = True
    stops = (KeyboardInterrupt,)

    def provenance(self, own: Provenance) -> Provenance:
        return own

    def shares(self, plan: SweepPlan) -> list[SweepPlan]:
        return [plan]

    def rounds(self, rows: Iterator) -> Iterator[list]:
        return ([row] for row in rows)

    def gather(self, rows: list) -> list:
        return rows

    def gather_profiled(self, rows: list, kept: list) -> list:
        return rows

    def stopped(self, exc: BaseException, measured: list) -> tuple[str | None, list]:
        return None, []  # every measured row was kept as it came


def run_session(
    plan: SweepPlan,
    callbacks: SweepCallbacks = SweepCallbacks(),
    work: Work | None = None,
    distribution: Distribution | None = None,
) -> SweepResult:
    """Measure this process's rows of `work` (default: the plan's sweep points) and keep them with every
    process's (`distribution`, default: this one process alone), then profile them; what the distribution
    stops on (Ctrl-C) ends the session early with what finished, and the run says it is incomplete."""
    work, distribution = work or SweepWork(), distribution or OneProcess()
    if plan.device.type == "cuda" and plan.device.index is not None:
        torch.cuda.set_device(plan.device)  # timers, events and graphs run on the current device: the chosen one
    own, options = _provenance_and_options(plan, callbacks.warn)
    provenance = distribution.provenance(own)
    shares = distribution.shares(plan)
    mine = shares[distribution.rank]
    planned = sum(step.phase == MEASURE for share in shares for step in work.steps(share))
    run = Run(provenance, planned=planned, complete=False)
    saved = plan.out_dir is not None and distribution.leader
    writer = RunWriter(new_run_path(plan.out_dir, provenance), run) if saved else None
    rows = work.rows(run)
    callbacks.started(provenance, work.steps(mine))
    bench = session_bench(plan, options, callbacks.warn)
    measured: list = []  # this process's rows, in its order
    failure = None
    try:
        for batch in distribution.rounds(work.measure(mine, bench, callbacks.note)):
            measured += batch
            kept = distribution.gather(batch)
            rows += kept
            if writer:
                writer.flush()
            for row in kept:
                callbacks.row_done(row)
            callbacks.progress(len(measured))
        if plan.profiles:
            profiled = work.profile(mine, measured, bench, callbacks, len(measured))
            rows[:] = distribution.gather_profiled(profiled, rows)
        run.complete = True
    except distribution.stops as exc:
        failure, left = distribution.stopped(exc, measured)
        rows += left
    finally:
        if writer:
            writer.flush()
    path, problem = (writer.path, writer.problem) if writer else (None, None)
    return SweepResult(run, path, planned, not run.complete, failure, problem)
