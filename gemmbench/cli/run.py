"""The commands that measure: sweep, kernels (live, or from a saved run) and group. Each parses its options,
plans a session, runs it with progress on stderr and renders the run; torch is imported only when one runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gemmbench.cli.app import (
    EXIT_CODES_HELP,
    KERNELS_EXIT_CODES_HELP,
    app,
    err_console,
    exit_if_errored,
    exit_if_nothing_timed,
    out_console,
    warn,
)
from gemmbench.cli.options import (
    DEFAULT_OUT_DIR,
    ActivationsOpt,
    ActivationsTensorOpt,
    AllowEmptyOpt,
    BackendOpt,
    BiasTensorOpt,
    BudgetOpt,
    ConfigOpt,
    ContextOpt,
    CsvRowsOpt,
    DeviceOpt,
    GpuOpt,
    HotOpt,
    JsonOutOpt,
    KeepSamplesOpt,
    MdTablesOpt,
    MOpt,
    NoKernelsOpt,
    NoSaveOpt,
    OutDirOpt,
    PlacementsOpt,
    PluginOpt,
    PresetOpt,
    QuietOpt,
    RemeasureRooflineOpt,
    RoleOpt,
    SamplesOpt,
    SeedOpt,
    ShapeOpt,
    SplitOpt,
    TargetCiOpt,
    WarmupOpt,
    WeightsOpt,
    WeightTensorOpt,
    check_exports,
    filtered,
    given_timer_flags,
    refuse_timer_conflicts,
    routing_files,
    selection,
    warn_if_out_dir_unused,
)
from gemmbench.cli.session import (
    finish,
    plan_session,
    print_results,
    refuse_torchrun,
    run_with_progress,
)
from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.output.format import header
from gemmbench.output.kernels import kernel_markdown, kernel_tables
from gemmbench.records import runfile
from gemmbench.records.timers import HOST_TIMER
from gemmbench.timing.defaults import DEFAULT_BUDGET_MS, DEFAULT_TARGET_CI_PCT


@app.command(epilog=EXIT_CODES_HELP)
def sweep(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    role: RoleOpt = None,
    m: MOpt = None,
    backend: BackendOpt = None,
    device: DeviceOpt = "auto",
    plugin: PluginOpt = None,
    csv: CsvRowsOpt = None,
    json_path: JsonOutOpt = None,
    out_dir: OutDirOpt = DEFAULT_OUT_DIR,
    no_save: NoSaveOpt = False,
    allow_empty: AllowEmptyOpt = False,
    hot: HotOpt = False,
    target_ci: TargetCiOpt = DEFAULT_TARGET_CI_PCT,
    budget_ms: BudgetOpt = DEFAULT_BUDGET_MS,
    warmup_ms: WarmupOpt = None,
    seed: SeedOpt = 0,
    placements: PlacementsOpt = None,
    samples: SamplesOpt = None,
    weights: WeightsOpt = None,
    weight_tensor: WeightTensorOpt = None,
    bias_tensor: BiasTensorOpt = None,
    activations: ActivationsOpt = None,
    activations_tensor: ActivationsTensorOpt = None,
    no_kernels: NoKernelsOpt = False,
    md: MdTablesOpt = False,
    remeasure_roofline: RemeasureRooflineOpt = False,
    quiet: QuietOpt = False,
    context: ContextOpt = "none",
    keep_samples: KeepSamplesOpt = False,
    split: SplitOpt = "points",
) -> None:
    """Check and time each backend on each shape and M; print tables, save the run.

    Started by torchrun, it runs one rank per GPU and rank 0 writes one run file (docs/usage.md: fleets).
    """
    fleet = _fleet(split)
    timer_flags = given_timer_flags(samples, target_ci, budget_ms)
    refuse_timer_conflicts(timer_flags)
    warn_if_out_dir_unused(no_save, out_dir)
    plan = plan_session(
        **selection(preset, config, shape, role, m, backend, device, plugin),
        hot=hot,
        target_ci_pct=target_ci,
        budget_ms=budget_ms,
        warmup_ms=warmup_ms,
        seed=seed,
        kernels=not no_kernels,
        out_dir=None if no_save else out_dir,
        remeasure_roofline=remeasure_roofline,
        context=context,
        keep_samples=keep_samples,
        placements=placements,
        samples=samples,
        **routing_files(weights, weight_tensor, bias_tensor, activations, activations_tensor),
    )
    check_exports(csv, json_path)  # after the plan, which creates --out-dir: an export may go into it
    given = {"m_given": bool(m), "gpu_only": gpu_only_flags(hot, remeasure_roofline, timer_flags)}
    _run_and_finish(plan, fleet, split, csv, json_path, md, quiet, allow_empty, given)


def _run_and_finish(plan, fleet, split: str, csv, json_path, md: bool, quiet: bool, allow_empty: bool, given: dict):
    """A planned sweep run (this process's share of it under torchrun), shown, exported and its exit code set;
    `given`: what warn_about_options needs to know of the options."""
    speaks = fleet is None or fleet.leader  # under torchrun, rank 0 speaks for the fleet
    tables_console = err_console if "-" in (csv, json_path) else out_console
    notes = err_console if speaks and not quiet else None
    warn_about_options(plan, notes, fleet=fleet, split=split, **given)
    result = run_with_progress(
        plan, tables_console if speaks else None, notes, speaks and not quiet, fleet, split, csv=csv if speaks else None
    )
    if not speaks:
        raise typer.Exit(1 if result.failure else 0)
    records = result.run.records
    finish(result, records, lambda: print_results(tables_console, records, md), notes, csv, json_path, allow_empty)


def _fleet(split: str):
    """The fleet torchrun started this process in (None without torchrun), once `split` is known good."""
    from gemmbench.measure.fleet import SPLITS, Fleet

    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'", f"use one of: {', '.join(SPLITS)}")
    return Fleet.from_environment()


# The command line's flags of the options only a GPU acts on (measure.session.GPU_ONLY_OPTIONS).
GPU_ONLY_FLAGS = {
    "--hot": "hot",
    "--remeasure-roofline": "remeasure_roofline",
    "--samples": "samples",
    "--target-ci": "target_ci_pct",
    "--budget-ms": "budget_ms",
}


def gpu_only_flags(hot: bool, remeasure: bool, timer_flags: list[str]) -> list[str]:
    """The options given that only a GPU acts on, by their Python names (GPU_ONLY_FLAGS)."""
    given = [flag for flag, on in (("--hot", hot), ("--remeasure-roofline", remeasure)) if on] + timer_flags
    return [GPU_ONLY_FLAGS[flag] for flag in given]


def warn_about_options(plan, notes: Console | None, m_given: bool, fleet, split: str, gpu_only: list[str]) -> None:
    """What the user should know before the sweep starts: that it times on the CPU (and which M it cut
    to), and which of the options given have no effect here (`gpu_only`: those only a GPU acts on, by their
    Python names; measure.session.ignored_here says which and why, as for the Python API)."""
    from gemmbench.measure.session import ignored_here

    on_cpu = plan.device.type != "cuda"
    if notes and on_cpu:
        notes.print(
            "note: no CUDA device — timing on the CPU with the host clock; GPU-only backends are skipped rows"
            + ("" if m_given or not plan.m_values else f"; M cut to {','.join(map(str, plan.m_values))}"),
            style="yellow",
        )
    if fleet is None and split != "points":
        warn("--split has no effect without torchrun: this sweep runs on one device")
    flag_of = {name: flag for flag, name in GPU_ONLY_FLAGS.items()}
    for name, why in ignored_here(plan, gpu_only).items():
        warn(f"{flag_of[name]} has no effect on the CPU: {why}")


@app.command(epilog=KERNELS_EXIT_CODES_HELP)
def kernels(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    role: RoleOpt = None,
    m: MOpt = None,
    backend: BackendOpt = None,
    device: GpuOpt = "auto",
    plugin: PluginOpt = None,
    from_run: Annotated[
        Path | None,
        typer.Option("--from", help="Read kernels from a saved run file or CSV (any GPU) instead of running."),
    ] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table for a pull request.")] = False,
) -> None:
    """Which kernels each backend runs per case, decoded, and which backends share a GEMM kernel.

    Runs each backend a few times per case under torch.profiler, without timing: seconds, not minutes.
    """
    if from_run is not None:
        run = runfile.load_run(from_run)
        if not run.records:
            raise GemmbenchError(f"{from_run} holds no sweep rows (a group run?)", "give the run file of a sweep")
        if not any(r.kernels for r in run.records):
            host_timed = any(r.latency and r.latency.timer == HOST_TIMER for r in run.records)  # a CSV's tell
            why = (
                "was recorded on the CPU, where the profiler sees no kernels"
                if run.provenance.device_type == "cpu" or host_timed
                else "was recorded without the kernel pass (--no-kernels)"
            )
            raise GemmbenchError(
                f"{from_run} {why}: it names no kernels",
                "sweep on a GPU without --no-kernels, or run gemmbench kernels on a GPU",
            )
        run.records = filtered(run.records, preset, config, shape, role, m, backend)
        if not run.records:
            raise GemmbenchError(f"no row of {from_run} matches the filters given", "drop or change them")
    else:
        refuse_torchrun("kernels", "run it without torchrun (seconds)")
        plan = plan_session(**selection(preset, config, shape, role, m, backend, device, plugin), time_calls=False)
        if plan.device.type != "cuda":
            raise GemmbenchError(
                "no CUDA device: kernel names need a GPU", "run on a GPU, or inspect a saved run with --from RUN"
            )
        run = run_with_progress(plan, None, err_console, enabled=True).run
    if md:
        typer.echo(kernel_markdown(run.records), nl=False)
    else:
        if run.provenance.recorded:
            out_console.print(header(run.provenance))
        out_console.print(kernel_tables(run.records))
    if from_run is None:  # a pass of its own: its exit code says whether every backend ran, as a sweep's does
        exit_if_errored(run.records)
        exit_if_nothing_timed(run.records, allow_empty=False, timed=False)
