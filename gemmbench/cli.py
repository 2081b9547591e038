"""The command line: parse options, call the library, render what it returns. The only module that prints."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from gemmbench.errors import GemmbenchError, UsageError

# Width for output that is not a terminal (files, CI logs), where rich would assume 80 columns and
# wrap kernel names and table cells. $COLUMNS, where set, wins (rich reads it).
PIPE_WIDTH = 160


def _width(stream) -> int | None:
    return None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH


# Results go to stdout; progress, notes, warnings and errors to stderr, so `--csv -` pipes cleanly.
out_console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

# `gemmbench group` without --backend: the backends serving engines use for the light GEMMs.
GROUP_DEFAULT_BACKENDS = ("mm_out_dtype", "cublas_ext", "linear_cast")
# Exit code of a run stopped with Ctrl-C, as shells report SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


# The click that typer runs on: typer.BadParameter derives from its UsageError and ClickException (recent
# typer releases carry a click of their own, distinct from the click package).
_ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_NoArgsIsHelpError = getattr(sys.modules[_ClickUsageError.__module__], "NoArgsIsHelpError", ())


class _OneLineUsageError(_ClickException):
    """A click usage error (bad option value, unknown option or command), shown as one line like every
    other error instead of click's usage block."""

    exit_code = UsageError.exit_code

    def __init__(self, error: _ClickUsageError) -> None:
        super().__init__(error.format_message())
        self.command_path = error.ctx.command_path if error.ctx else "gemmbench"

    def show(self, file=None) -> None:
        typer.echo(f"Error: {self.format_message().rstrip('.')} — see '{self.command_path} --help'", err=True)


def _one_line(error: _ClickUsageError) -> _ClickException:
    # "gemmbench" alone prints the help, through a usage error of its own: leave that one as it is.
    return error if isinstance(error, _NoArgsIsHelpError) else _OneLineUsageError(error)


class _Group(TyperGroup):
    """Turns a GemmbenchError from any command into `Error: what — how to fix` and its exit code, and
    click's usage errors into the same one-line form."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except _ClickUsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GemmbenchError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except _ClickUsageError as exc:
            raise _one_line(exc) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Which way of computing a bf16 x bf16 -> fp32 GEMM is right and fastest on this GPU, "
    "and which kernel does it run?",
)


def _print_version(value: bool) -> None:
    if value:
        from gemmbench import __version__

        typer.echo(f"gemmbench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Which way of computing a bf16 x bf16 -> fp32 GEMM is right and fastest on this GPU, and which kernel
    does it run?"""


def _split(values: list[str] | None) -> list[str]:
    """Repeatable options also take comma-separated lists: --backend a,b == --backend a --backend b."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


PresetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--preset",
        "-p",
        help="Shape preset from configs/ (repeatable; `gemmbench list` shows them). "
        "Default: deepseek-v3 when no --preset, --config or --shape is given.",
    ),
]
ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option("--config", help="Your own preset TOML file (repeatable), same format as configs/*.toml."),
]
ShapeOpt = Annotated[
    list[str] | None,
    typer.Option("--shape", help="An explicit GEMM MxNxK: x[M, K] @ w[N, K].T (repeatable). --m does not apply to it."),
]
RoleOpt = Annotated[list[str] | None, typer.Option("--role", help="Only GEMMs of this role: router or attention.")]
MOpt = Annotated[
    str | None,
    typer.Option(
        "--m",
        help="Token counts M: a list 1,8,64, a range 1:16384:x2 or 8:64:+8, or a mix. "
        "Default: 1 to 16384 in powers of two on a GPU, 1,8,64 on the CPU.",
    ),
]
BackendOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        "-b",
        help="Backends to run (repeatable or comma-separated). Default: every real backend; "
        "those that cannot run here show as skipped rows.",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if present), cuda or cpu.")]
# Options that sweep and group share.
JsonOutOpt = Annotated[str | None, typer.Option("--json", help="Also write the run as JSON here; - for stdout.")]
OutDirOpt = Annotated[Path, typer.Option("--out-dir", help="Folder for the run file, written after every row.")]
NoSaveOpt = Annotated[bool, typer.Option("--no-save", help="Do not write a run file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes on stderr.")]
PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        help="A module or .py file that adds backends of your own (repeatable; docs/plugins.md). Plugins of "
        "installed packages (entry points, group gemmbench.backends) load without it.",
    ),
]


def _filtered(records, preset, config, shape, role, m, backend) -> list:
    """The records of a saved run that the shape, M and backend options admit (only those given)."""
    from gemmbench import shapes
    from gemmbench.records import select_records

    for role_name in _split(role):
        if role_name not in shapes.ROLES:
            raise UsageError(f"unknown role '{role_name}'", f"use one of: {', '.join(shapes.ROLES)}")
    gemms = shapes.select_gemms(_split(preset), list(config or []), []) if preset or config else []
    return select_records(
        records,
        backends=_split(backend),
        m_values=shapes.parse_m_list(m) if m else (),
        gemms=gemms,
        roles=_split(role),
        shapes=[shapes.parse_shape(text) for text in _split(shape)],
    )


def _selection(preset, config, shape, role, m, backend, device, plugin) -> dict:
    """The shape, M, backend, device and plugin options that sweep and kernels share, as plan_sweep takes them."""
    return {
        "plugins": _split(plugin),
        "presets": _split(preset),
        "configs": config or [],
        "shapes": _split(shape),
        "roles": _split(role),
        "m": m,
        "backends": _split(backend),
        "device": device,
    }


@app.command()
def sweep(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    role: RoleOpt = None,
    m: MOpt = None,
    backend: BackendOpt = None,
    device: DeviceOpt = "auto",
    plugin: PluginOpt = None,
    csv: Annotated[
        str | None, typer.Option("--csv", help="Also write one CSV row per (case, backend) here; - for stdout.")
    ] = None,
    json_path: JsonOutOpt = None,
    out_dir: OutDirOpt = Path("results"),
    no_save: NoSaveOpt = False,
    hot: Annotated[
        bool,
        typer.Option(
            "--hot",
            help="Time one set of buffers (hot L2). Default: cold L2, rotating "
            "input copies past twice the L2, as in a forward pass that evicted the weights.",
        ),
    ] = False,
    target_ci: Annotated[
        float,
        typer.Option(
            "--target-ci",
            min=0.01,
            help="Sample the device time (CUDA graphs) until the 95% CI of its median is within ± this many percent...",
        ),
    ] = 1.0,
    budget_ms: Annotated[
        float,
        typer.Option(
            "--budget-ms",
            min=1,
            help="...or until this many ms of sampling per point; rows that miss the target are flagged noisy. "
            "(The eager latency is sampled in 6 windows of 10 ms interleaved between the point's backends.)",
        ),
    ] = 200.0,
    warmup_ms: Annotated[
        float | None,
        typer.Option("--warmup-ms", min=0, help="Warm-up time per point before timing, in ms (default 20)."),
    ] = None,
    seed: SeedOpt = 0,
    no_kernels: Annotated[
        bool, typer.Option("--no-kernels", help="Skip the profiler pass that records kernel names.")
    ] = False,
    md: Annotated[
        bool, typer.Option("--md", help="Print the results as a Markdown table instead of rich tables.")
    ] = False,
    remeasure_roofline: Annotated[
        bool,
        typer.Option(
            "--remeasure-roofline",
            help="Measure the device's bandwidth and bf16 throughput again instead of using the cached figures.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="Under torchrun: 'points' measures each point once, spread over the ranks (one merged run); "
            "'none' has every rank measure every point (a fleet check; see gemmbench fleet).",
        ),
    ] = "points",
) -> None:
    """Check and time each backend on each shape and M; print tables, save the run.

    Started by torchrun, it runs one rank per GPU and rank 0 writes one run file (README: fleets).
    """
    from gemmbench import runfile
    from gemmbench.distributed import SPLITS, Fleet
    from gemmbench.session import plan_sweep

    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'", f"use one of: {', '.join(SPLITS)}")
    fleet = Fleet.from_environment()
    if fleet and not fleet.leader:
        quiet = True  # rank 0 speaks for the fleet

    for path in (csv, json_path):
        if path:
            runfile.ensure_writable_file(path)
    if csv == "-" and json_path == "-":
        raise UsageError("--csv - and --json - both ask for stdout", "send one of them to a file")
    plan = plan_sweep(
        **_selection(preset, config, shape, role, m, backend, device, plugin),
        hot=hot,
        target_ci_pct=target_ci,
        budget_ms=budget_ms,
        warmup_ms=warmup_ms,
        seed=seed,
        kernels=not no_kernels,
        out_dir=None if no_save else out_dir,
        remeasure_roofline=remeasure_roofline,
    )
    tables_console = err_console if "-" in (csv, json_path) else out_console
    notes = err_console if not quiet else None
    if notes and plan.device.type != "cuda":
        notes.print(
            "note: no CUDA device — timing on the CPU with the host clock; GPU-only backends are skipped rows"
            + ("" if m or not plan.m_values else f"; M cut to {','.join(map(str, plan.m_values))}"),
            style="yellow",
        )
    if fleet is None and split != "points":
        _warn("--split has no effect without torchrun: this sweep runs on one device")
    if plan.device.type != "cuda":
        for flag, given, why in (
            ("--hot", hot, "gemmbench manages the L2 of GPUs only"),
            ("--remeasure-roofline", remeasure_roofline, "the roofline is measured on GPUs only"),
        ):
            if given:
                _warn(f"{flag} has no effect on the CPU: {why}")
    speaks = fleet is None or fleet.leader  # under torchrun, rank 0 speaks for the fleet
    result = _run_with_progress(plan, tables_console if speaks else None, notes, not quiet, fleet, split)
    if not speaks:
        raise typer.Exit(1 if result.failure else 0)
    if result.failure:
        err_console.print(
            f"the fleet stopped early: {result.failure}; rows it did not report are error rows", style="red"
        )
    records = result.run.records
    _print_results(tables_console, records, md)
    _export(result.run, csv, json_path)
    if notes and result.path:
        notes.print(f"saved {len(records)} rows to {result.path}", style="dim")
    if result.failure:
        raise typer.Exit(1)
    if result.interrupted:
        from gemmbench import render

        err_console.print(f"interrupted: {render.incomplete_note(result.run)}; kept", style="yellow")
        raise typer.Exit(EXIT_INTERRUPTED)


def _run_with_progress(
    plan, header_console: Console | None, notes: Console | None, enabled: bool, fleet=None, split=""
):
    """Run a sweep session (this rank's, under torchrun) with a progress bar on stderr (a terminal only);
    the header goes first."""
    from gemmbench import render
    from gemmbench.distributed import run_fleet
    from gemmbench.session import SweepCallbacks, run_session

    with render.progress(err_console, enabled=enabled and err_console.is_terminal) as bar:
        task = bar.add_task("", total=len(plan.steps))
        steps: list = []

        def started(provenance: dict, planned: list) -> None:
            steps.extend(planned)
            if header_console:
                header_console.print(render.header(provenance))
            progress(0)

        def progress(done: int) -> None:
            bar.update(
                task, completed=done, description=render.step_label(steps[done]) if done < len(steps) else "done"
            )

        callbacks = SweepCallbacks(
            started=started,
            progress=progress,
            note=(lambda message: notes.print(message)) if notes else (lambda message: None),
            warn=_warn,
        )
        return run_fleet(plan, fleet, split, callbacks) if fleet else run_session(plan, callbacks)


def _print_results(console: Console, records, md: bool) -> None:
    from gemmbench import render

    if md:
        console.print(render.sweep_markdown(records), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render.sweep_tables(records))


def _one_format(*flags: tuple[str, bool]) -> None:
    """At most one output-format flag: each of them chooses the whole output."""
    given = [flag for flag, on in flags if on]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} each choose the output format", "give one of them")


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="yellow")


def _export(run, csv: str | None, json_path: str | None) -> None:
    from gemmbench import runfile

    if csv:
        text = (
            runfile.groups_to_csv(run.groups) if run.groups and not run.records else runfile.records_to_csv(run.records)
        )
        runfile.write_text(csv, text, sys.stdout)
    if json_path:
        runfile.write_text(json_path, runfile.run_to_json(run), sys.stdout)


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="A run file (results/*.json) or a CSV export.")],
    csv: Annotated[str | None, typer.Option("--csv", help="Write the rows as CSV here; - for stdout.")] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Write the run as JSON here; - for stdout.")] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table instead of rich tables.")] = False,
) -> None:
    """Re-render a saved run."""
    from gemmbench import render, runfile

    for path in (csv, json_path):
        if path:
            runfile.ensure_writable_file(path)
    loaded = runfile.load_run(run)
    console = err_console if "-" in (csv, json_path) else out_console
    if loaded.provenance:
        console.print(render.header(loaded.provenance))
    if not loaded.complete:
        err_console.print(f"incomplete run (interrupted): {render.incomplete_note(loaded)}", style="yellow")
    if loaded.records or not loaded.groups:
        _print_results(console, loaded.records, md)
    if loaded.groups and md:
        console.print(render.group_markdown(loaded.groups), markup=False, highlight=False, soft_wrap=True)
    elif loaded.groups:
        console.print(render.group_tables(loaded.groups))
    _export(loaded, csv, json_path)


@app.command()
def kernels(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    role: RoleOpt = None,
    m: MOpt = None,
    backend: BackendOpt = None,
    device: DeviceOpt = "auto",
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
    from gemmbench import render, runfile
    from gemmbench.distributed import Fleet
    from gemmbench.session import plan_sweep

    if Fleet.from_environment() is not None and from_run is None:
        raise GemmbenchError(
            "gemmbench kernels runs on one GPU, not under torchrun", "run it without torchrun (seconds)"
        )
    if from_run is not None:
        run = runfile.load_run(from_run)
        run.records = _filtered(run.records, preset, config, shape, role, m, backend)
        if not run.records:
            raise GemmbenchError(f"no row of {from_run} matches the filters given", "drop or change them")
    else:
        plan = plan_sweep(**_selection(preset, config, shape, role, m, backend, device, plugin), time_calls=False)
        if plan.device.type != "cuda":
            raise GemmbenchError(
                "no CUDA device: kernel names need a GPU", "run on a GPU, or inspect a saved run with --from RUN"
            )
        run = _run_with_progress(plan, None, err_console, enabled=True).run
    if md:
        typer.echo(render.kernel_markdown(run.records), nl=False)
        return
    if run.provenance:
        out_console.print(render.header(run.provenance))
    out_console.print(render.kernel_tables(run.records))


@app.command()
def decode(
    names: Annotated[list[str], typer.Argument(help="Kernel names, as torch.profiler, nsys or ncu print them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per name, in order.")] = False,
) -> None:
    """Decode kernel names (nvjet, xmma, CUTLASS, split-K reduce, gemv, copies): family, arch, dtypes, tile."""
    from gemmbench import render
    from gemmbench.decode import decode as decode_name

    infos = [decode_name(name) for name in names]
    if as_json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=1))
        return
    out_console.print(render.decoded_tables(infos))


@app.command()
def compare(
    base: Annotated[Path, typer.Argument(help="The reference run (run file or CSV).")],
    new: Annotated[Path, typer.Argument(help="The run to judge against it.")],
    fail_above: Annotated[
        float | None,
        typer.Option(
            "--fail-above",
            min=0,
            help="Exit 1 if a row is slower by more than this many percent (verdict 'slower'): for CI.",
        ),
    ] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch",
            help="Compare runs timed differently (CPU and GPU, cold and hot L2, other timers) all the same.",
        ),
    ] = False,
) -> None:
    """Compare two runs row by row: ratio of medians and a verdict (faster, slower, same, noisy)."""
    from gemmbench import render, runfile
    from gemmbench.compare import compare_groups, compare_runs, mismatches

    base_run, new_run = runfile.load_run(base), runfile.load_run(new)
    differences = mismatches(base_run, new_run)
    if differences and not allow_mismatch:
        raise GemmbenchError(
            f"{base} and {new} were timed differently ({'; '.join(differences)}), so their ratios mean little",
            "compare runs of the same kind, or pass --allow-mismatch",
        )
    comparison = compare_runs(base_run, new_run)
    group_rows = compare_groups(base_run, new_run)
    if not comparison.rows and not group_rows:
        raise GemmbenchError(f"{base} and {new} share no (case, backend) rows", "compare runs of the same shapes")
    if comparison.rows and md:
        typer.echo(render.comparison_markdown(comparison), nl=False)
    elif comparison.rows:
        out_console.print(render.comparison_table(comparison))
    if group_rows and md:
        typer.echo(render.group_comparison_markdown(group_rows), nl=False)
    elif group_rows:
        out_console.print(render.group_comparison_table(group_rows))
    if fail_above is not None:
        regressions = comparison.regressions(fail_above)
        if regressions:
            worst = max(regressions, key=lambda r: r.ratio)
            typer.echo(
                f"{len(regressions)} row(s) slower by more than {fail_above:g}% (worst: {worst.base.model} "
                f"{worst.base.gemm} M={worst.base.m} {worst.base.backend}, {worst.ratio:.3f}x)",
                err=True,
            )
            raise typer.Exit(1)


@app.command()
def recommend(
    run: Annotated[Path, typer.Argument(help="A run file or CSV.")],
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            min=0,
            help="Largest rel_err a backend may have "
            "(default 1e-4: fp32-output semantics, which excludes linear_cast's "
            "bf16 rounding; 1e-2 admits it).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
    python: Annotated[
        bool,
        typer.Option(
            "--python", help="Print a dispatch function for these shapes on this GPU, to paste into serving code."
        ),
    ] = False,
) -> None:
    """Per GEMM shape: the fastest accurate backend at each M, collapsed into M ranges with the crossovers."""
    from gemmbench import render, runfile
    from gemmbench.recommend import recommend as recommend_backends
    from gemmbench.records import FP32_ACCURATE_REL_ERR

    _one_format(("--json", as_json), ("--md", md), ("--python", python))
    loaded = runfile.load_run(run)
    tolerance = FP32_ACCURATE_REL_ERR if tolerance is None else tolerance
    if loaded.groups:  # a `gemmbench group` run: per group, whether and up to which M the streams pay
        from gemmbench.group_advice import advise

        if python:
            raise UsageError("--python writes a dispatch function for sweeps, not for group runs", "drop --python")
        advice = advise(loaded.groups, tolerance)
        if as_json:
            typer.echo(json.dumps(render.advice_dicts(advice), indent=1))
        elif md:
            typer.echo(render.advice_markdown(advice), nl=False)
        else:
            out_console.print(render.advice_tables(advice))
        return
    recommendations = recommend_backends(loaded.records, tolerance)
    if python:
        typer.echo(render.recommendation_python(recommendations, loaded.provenance, str(run)), nl=False)
    elif as_json:
        typer.echo(json.dumps(render.recommendation_dicts(recommendations), indent=1))
    elif md:
        typer.echo(render.recommendation_markdown(recommendations), nl=False)
    else:
        if loaded.provenance:
            out_console.print(render.header(loaded.provenance))
        out_console.print(render.recommendation_tables(recommendations))


@app.command()
def group(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    m: MOpt = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="Backends that compute the group's light (bf16 -> fp32) members, each in turn (repeatable or "
            "comma-separated). Default: mm_out_dtype, cublas_ext, linear_cast; the heavy member runs torch.mm in "
            "its own dtypes.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    plugin: PluginOpt = None,
    csv: Annotated[
        str | None, typer.Option("--csv", help="Also write the group rows as CSV here; - for stdout.")
    ] = None,
    json_path: JsonOutOpt = None,
    out_dir: OutDirOpt = Path("results"),
    no_save: NoSaveOpt = False,
    hot: Annotated[bool, typer.Option("--hot", help="One set of inputs (hot L2). Default: cold L2.")] = False,
    seed: SeedOpt = 0,
    no_kernels: Annotated[
        bool, typer.Option("--no-kernels", help="Skip the profiler pass that shows which streams overlapped.")
    ] = False,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run each [[group]] of a preset (DeepSeek-V4's attention input GEMMs) serially and on its CUDA streams:
    what the auxiliary streams are worth, with which backend for the light GEMMs, up to which M."""
    from gemmbench import render, runfile, shapes
    from gemmbench.session import SweepCallbacks, plan_sweep, run_group_session

    for path in (csv, json_path):
        if path:
            runfile.ensure_writable_file(path)
    presets = _split(preset)
    if not presets and not config:
        with_groups = [name for name in shapes.preset_names() if shapes.load_preset(name).groups]
        raise UsageError("no preset given", f"name one with groups: {', '.join(with_groups)}")
    loaded = [shapes.load_preset(name) for name in presets] + [shapes.load_config(path) for path in config or []]
    groups = [g for p in loaded for g in p.groups]
    if not groups:
        raise UsageError(f"{', '.join(p.name for p in loaded)} define(s) no [[group]]", "give a preset with groups")
    plan = plan_sweep(
        presets=presets,
        configs=config or [],
        m=m,
        backends=_split(backend) or list(GROUP_DEFAULT_BACKENDS),
        device=device,
        hot=hot,
        seed=seed,
        kernels=not no_kernels,
        plugins=_split(plugin),
        out_dir=None if no_save else out_dir,
    )
    console = err_console if "-" in (csv, json_path) else out_console
    notes = err_console if not quiet else None
    with render.progress(err_console, enabled=not quiet and err_console.is_terminal) as bar:
        task = bar.add_task("groups", total=len(groups) * len(plan.m_values) * len(plan.backends))
        callbacks = SweepCallbacks(
            started=lambda provenance, steps: console.print(render.header(provenance)),
            progress=lambda done: bar.update(task, completed=done),
            note=(lambda message: notes.print(message)) if notes else (lambda message: None),
            warn=_warn,
        )
        result = run_group_session(plan, groups, callbacks)
    if md:
        console.print(render.group_markdown(result.run.groups), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render.group_tables(result.run.groups))
    if csv:
        runfile.write_text(csv, runfile.groups_to_csv(result.run.groups), sys.stdout)
    if json_path:
        runfile.write_text(json_path, runfile.run_to_json(result.run), sys.stdout)
    if notes and result.path:
        notes.print(f"saved {len(result.run.groups)} group rows to {result.path}", style="dim")
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def fleet(
    run: Annotated[
        Path, typer.Argument(help="A fleet check: the run file of torchrun ... gemmbench -- sweep --split none.")
    ],
    fail_above: Annotated[
        float | None,
        typer.Option(
            "--fail-above",
            min=0,
            help="Exit 1 if a device's median time is more than this many percent above the fleet's: for CI.",
        ),
    ] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: every device and every point.")] = False,
) -> None:
    """Per device of a fleet: its times against the fleet's median, and whether it is an outlier."""
    from gemmbench import render, runfile
    from gemmbench.fleet import fleet_report

    _one_format(("--json", as_json), ("--md", md))
    loaded = runfile.load_run(run)
    report = fleet_report(loaded, str(run))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1))
    elif md:
        typer.echo(render.fleet_markdown(report), nl=False)
    else:
        if loaded.provenance:
            out_console.print(render.header(loaded.provenance))
        out_console.print(render.fleet_table(report))
    if fail_above is not None:
        failing = report.failing(fail_above)
        if failing:
            worst = max(failing, key=lambda d: d.median_ratio)
            typer.echo(
                f"{len(failing)} device(s) slower than the fleet by more than {fail_above:g}% "
                f"(worst: {worst.device_id}, {worst.median_ratio:.3f}x)",
                err=True,
            )
            raise typer.Exit(1)


@app.command()
def plot(
    run: Annotated[Path, typer.Argument(help="A run file or CSV.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file: .png or .svg.")],
) -> None:
    """Plot time against M (log-log), one panel per GEMM shape, one line per backend, and the floor."""
    from gemmbench import plot as plotting
    from gemmbench import runfile

    runfile.ensure_writable_file(str(output), example="plot.png")
    path = plotting.plot_run(runfile.load_run(run), output)
    out_console.print(f"wrote {path}")


@app.command("list")
def list_(device: DeviceOpt = "auto", plugin: PluginOpt = None) -> None:
    """List the shape presets with their GEMMs, and the backends with their origin and availability here."""
    from gemmbench import environment, render, shapes
    from gemmbench.backends import REGISTRY, availability
    from gemmbench.plugins import load_plugins

    dev = environment.select_device(device)  # a bad --device is an error before any output
    load_plugins(_split(plugin))
    out_console.print(render.presets_table([shapes.load_preset(name) for name in shapes.preset_names()]))
    probe = shapes.load_preset(shapes.DEFAULT_PRESET).gemms[0].case(1)
    out_console.print(render.backends_table(availability(list(REGISTRY.values()), probe, dev), dev.type))


@app.command()
def env(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """What this machine offers: torch, CUDA, GPU, cuBLAS, and whether torch.mm(out_dtype=) works."""
    from gemmbench import environment

    _print_facts(environment.environment_facts(environment.select_device("auto")), as_json)


ext_app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The optional cuBLAS extension (backends cublas_ext, cublaslt_ext, cublaslt_tuned_ext).",
)
app.add_typer(ext_app, name="ext")


@ext_app.command("build")
def ext_build() -> None:
    """Build the extension now (into the per-user cache); show the compiler output if it fails."""
    from gemmbench import ext

    status = ext.status()
    if status.built:
        out_console.print(f"already built: {status.library}")
        return
    if status.cannot_build:
        raise GemmbenchError(
            f"cannot build the cuBLAS extension here: {status.cannot_build}", "see gemmbench ext status"
        )
    err_console.print(f"building into {status.library.parent} (about a minute) …")
    try:
        path = ext.build()
    except ext.ExtensionUnavailable as exc:
        log = ext.build_dir() / ext.LOG_NAME
        if log.is_file():
            err_console.print(log.read_text(), markup=False, highlight=False)
        raise GemmbenchError(
            f"cannot build the cuBLAS extension: {exc}",
            "fix the compiler error above and run gemmbench ext build again",
        ) from None
    out_console.print(f"built: {path}")


@ext_app.command("status")
def ext_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Built or not, where, for which torch and CUDA; and if it cannot build or run here, why."""
    from gemmbench import ext

    _print_facts(ext.status().facts(), as_json)


@ext_app.command("clean")
def ext_clean() -> None:
    """Remove every cached build of the extension."""
    from gemmbench import ext

    removed = ext.clean()
    out_console.print(f"removed {len(removed)} build(s) from {ext.cache_root() / 'ext'}")


def _print_facts(facts: dict, as_json: bool) -> None:
    """A flat dict as JSON, or as a two-column table for people."""
    from gemmbench import render

    if as_json:
        typer.echo(json.dumps(facts, indent=1))
        return
    out_console.print(render.facts_table(facts))


def main() -> None:
    app()
