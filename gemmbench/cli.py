"""The command line: parse options, call the library, render what it returns. The only module that prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from gemmbench.errors import GemmbenchError

# Width for output that is not a terminal (files, CI logs), where rich would assume 80 columns and
# wrap kernel names and table cells.
PIPE_WIDTH = 160
# Results go to stdout; progress, notes, warnings and errors to stderr, so `--csv -` pipes cleanly.
out_console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else PIPE_WIDTH)

# Exit code of a run stopped with Ctrl-C, as shells report SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


class _Group(TyperGroup):
    """Turns a GemmbenchError from any command into `Error: what — how to fix` and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GemmbenchError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Which way of computing a bf16 x bf16 -> fp32 GEMM is right and fastest on this GPU, "
    "and which kernel does it run?",
)


def _split(values: list[str] | None) -> list[str]:
    """Repeatable options also take comma-separated lists: --backend a,b == --backend a --backend b."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


PresetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--preset", "-p", help="Shape preset from configs/ (repeatable; `gemmbench list` shows them). "
                 "Default: deepseek-v3 when no --preset, --config or --shape is given."),
]
ConfigOpt = Annotated[
    Optional[list[Path]], typer.Option("--config", help="Your own preset TOML file (repeatable), same format as configs/*.toml.")
]
ShapeOpt = Annotated[
    Optional[list[str]],
    typer.Option("--shape", help="An explicit GEMM MxNxK: x[M, K] @ w[N, K].T (repeatable). --m does not apply to it."),
]
RoleOpt = Annotated[Optional[list[str]], typer.Option("--role", help="Only GEMMs of this role: router or attention.")]
MOpt = Annotated[
    Optional[str],
    typer.Option("--m", help="Token counts M: a list 1,8,64, a range 1:16384:x2 or 8:64:+8, or a mix. "
                 "Default: 1 to 16384 in powers of two on a GPU, 1,8,64 on the CPU."),
]
BackendOpt = Annotated[
    Optional[list[str]],
    typer.Option("--backend", "-b", help="Backends to run (repeatable or comma-separated). Default: every real backend; "
                 "those that cannot run here show as skipped rows."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if present), cuda or cpu.")]


def _selection(preset, config, shape, role, m, device_choice):
    """Parse the shared shape options into (cases, device); raise before any work on bad input."""
    from gemmbench import environment, shapes

    presets, configs, roles = _split(preset), list(config or []), _split(role)
    explicit = [shapes.parse_shape(s) for s in _split(shape)]
    if not presets and not configs and not explicit:
        presets = [shapes.DEFAULT_PRESET]
    device = environment.select_device(device_choice)
    if m:
        m_values = shapes.parse_m_list(m)
    else:
        m_values = shapes.DEFAULT_M if device.type == "cuda" else shapes.CPU_DEFAULT_M
    gemms = shapes.select_gemms(presets, configs, roles)
    return shapes.build_cases(gemms, explicit, m_values), device, m_values


@app.command()
def sweep(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    role: RoleOpt = None,
    m: MOpt = None,
    backend: BackendOpt = None,
    device: DeviceOpt = "auto",
    csv: Annotated[Optional[str], typer.Option("--csv", help="Also write one CSV row per (case, backend) here; - for stdout.")] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help="Also write the run as JSON here; - for stdout.")] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the run file, written after every row.")] = Path("results"),
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not write a run file.")] = False,
    hot: Annotated[bool, typer.Option("--hot", help="Time one set of buffers (hot L2). Default: cold L2, rotating "
                                      "input copies past twice the L2, as in a forward pass that evicted the weights.")] = False,
    target_ci: Annotated[float, typer.Option("--target-ci", min=0.01, help="Sample each timer until the 95% CI of the "
                                             "median is within ± this many percent...")] = 1.0,
    budget_ms: Annotated[float, typer.Option("--budget-ms", min=1, help="...or until this many ms of sampling per timer "
                                             "and point; rows that miss the target are flagged noisy.")] = 200.0,
    warmup_ms: Annotated[Optional[float], typer.Option("--warmup-ms", min=0, help="Warm-up time per point before timing, "
                                                       "in ms (default 20).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    no_kernels: Annotated[bool, typer.Option("--no-kernels", help="Skip the profiler pass that records kernel names.")] = False,
    md: Annotated[bool, typer.Option("--md", help="Print the results as a Markdown table instead of rich tables.")] = False,
    remeasure_roofline: Annotated[bool, typer.Option("--remeasure-roofline", help="Measure the device's bandwidth and "
                                                     "bf16 throughput again instead of using the cached figures.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no notes on stderr.")] = False,
) -> None:
    """Check and time each backend on each shape and M; print tables, save the run."""
    from dataclasses import asdict

    from gemmbench import environment, render, results, roofline
    from gemmbench.backends import select_backends
    from gemmbench.sweep import COLD, HOT, POINT_WARMUP_S, SweepOptions, run_sweep
    from gemmbench.timing import Target

    cases, dev, m_values = _selection(preset, config, shape, role, m, device)
    backends = select_backends(_split(backend))
    for path in (csv, json_path):
        if path:
            results.ensure_writable_file(path)
    if not no_save:
        results.ensure_writable_dir(out_dir)
    if csv == "-" and json_path == "-":
        raise GemmbenchError("--csv - and --json - both ask for stdout", "send one of them to a file")
    tables_console = err_console if "-" in (csv, json_path) else out_console

    notes = err_console if not quiet else None
    if notes and dev.type != "cuda":
        notes.print(
            "note: no CUDA device — timing on the CPU with the host clock; GPU-only backends are skipped rows"
            + ("" if m else f"; M cut to {','.join(map(str, m_values))}"),
            style="yellow",
        )
    _announce_extension_build(backends, dev, notes)
    provenance = environment.collect_provenance(dev)
    roof = roofline.for_device(dev, remeasure=remeasure_roofline)
    if roof is not None:
        provenance["roofline"] = asdict(roof)
    writer = None if no_save else results.RunWriter(results.new_run_path(out_dir, provenance), provenance)
    records: list[results.Record] = []
    points = [(case, b.name) for case in cases for b in backends]
    interrupted = False
    tables_console.print(render.header(provenance))
    options = SweepOptions(
        warmup_s=POINT_WARMUP_S if warmup_ms is None else warmup_ms / 1e3,
        target=Target(ci_rel=target_ci / 100, budget_s=budget_ms / 1e3),
        l2=HOT if hot else COLD,
        seed=seed,
        capture_kernels=not no_kernels,
        roofline=roof,
    )
    with render.progress(err_console, enabled=not quiet and err_console.is_terminal) as bar:
        task = bar.add_task(render.point_label(*points[0]) if points else "", total=len(points))
        try:
            for record in run_sweep(cases, backends, dev, options, warn=_warn):
                records.append(record)
                if writer:
                    writer.add(record)
                nxt = points[len(records)] if len(records) < len(points) else None
                bar.update(task, advance=1, description=render.point_label(*nxt) if nxt else "done")
        except KeyboardInterrupt:
            interrupted = True
    _print_results(tables_console, records, md)
    _export(records, provenance, csv, json_path)
    if notes and writer:
        notes.print(f"saved {len(records)} rows to {writer.path}", style="dim")
    if interrupted:
        err_console.print(f"interrupted: {len(records)} of {len(points)} rows finished and kept", style="yellow")
        raise typer.Exit(EXIT_INTERRUPTED)


def _print_results(console: Console, records, md: bool) -> None:
    from gemmbench import render

    if md:
        console.print(render.sweep_markdown(records), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render.sweep_tables(records))


def _announce_extension_build(backends, device, notes) -> None:
    """The first sweep that needs the cuBLAS extension compiles it (tens of seconds): say so first."""
    from gemmbench import ext

    if notes and device.type == "cuda" and any(b.needs_extension for b in backends):
        status = ext.status()
        if not status.built and not status.cannot_build:
            notes.print(f"building the cuBLAS extension into {status.library.parent} (first use; about a minute)…")


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="yellow")


def _export(records, provenance: dict, csv: str | None, json_path: str | None) -> None:
    from gemmbench import results

    if csv:
        results.write_text(csv, results.records_to_csv(records), sys.stdout)
    if json_path:
        results.write_text(json_path, results.run_to_json(results.Run(provenance, list(records))), sys.stdout)


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="A run file (results/*.json) or a CSV export.")],
    csv: Annotated[Optional[str], typer.Option("--csv", help="Write the rows as CSV here; - for stdout.")] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help="Write the run as JSON here; - for stdout.")] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table instead of rich tables.")] = False,
) -> None:
    """Re-render a saved run."""
    from gemmbench import render, results

    for path in (csv, json_path):
        if path:
            results.ensure_writable_file(path)
    loaded = results.load_run(run)
    console = err_console if "-" in (csv, json_path) else out_console
    if loaded.provenance:
        console.print(render.header(loaded.provenance))
    _print_results(console, loaded.records, md)
    _export(loaded.records, loaded.provenance, csv, json_path)


@app.command()
def kernels(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    shape: ShapeOpt = None,
    role: RoleOpt = None,
    m: MOpt = None,
    backend: BackendOpt = None,
    device: DeviceOpt = "auto",
    from_run: Annotated[
        Optional[Path], typer.Option("--from", help="Read kernels from a saved run file or CSV (any GPU) instead of running.")
    ] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table for a pull request.")] = False,
) -> None:
    """Which kernels each backend runs per case, decoded, and which backends share a GEMM kernel.

    Runs each backend a few times per case under torch.profiler, without timing: seconds, not minutes.
    """
    from gemmbench import environment, render, results
    from gemmbench.backends import select_backends
    from gemmbench.sweep import SweepOptions, run_sweep

    if from_run is not None:
        run = results.load_run(from_run)
        records, provenance = run.records, run.provenance
    else:
        cases, dev, _ = _selection(preset, config, shape, role, m, device)
        if dev.type != "cuda":
            raise GemmbenchError("no CUDA device: kernel names need a GPU", "run on a GPU, or inspect a saved run with --from RUN")
        backends = select_backends(_split(backend))
        provenance = environment.collect_provenance(dev)
        with render.progress(err_console, enabled=err_console.is_terminal) as bar:
            task = bar.add_task("profiling", total=len(cases) * len(backends))
            records = []
            for record in run_sweep(cases, backends, dev, SweepOptions(time_calls=False), warn=_warn):
                records.append(record)
                bar.advance(task)
    if md:
        typer.echo(render.kernel_markdown(records), nl=False)
        return
    if provenance:
        out_console.print(render.header(provenance))
    out_console.print(render.kernel_tables(records))


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
    fail_above: Annotated[Optional[float], typer.Option("--fail-above", min=0, help="Exit 1 if a row is slower by more "
                                                         "than this many percent (verdict 'slower'): for CI.")] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
) -> None:
    """Compare two runs row by row: ratio of medians and a verdict (faster, slower, same, noisy)."""
    from gemmbench import render, results
    from gemmbench.compare import compare_runs

    comparison = compare_runs(results.load_run(base), results.load_run(new))
    if not comparison.rows:
        raise GemmbenchError(f"{base} and {new} share no (case, backend) rows", "compare runs of the same shapes")
    if md:
        typer.echo(render.comparison_markdown(comparison), nl=False)
    else:
        out_console.print(render.comparison_table(comparison))
    if fail_above is not None:
        regressions = comparison.regressions(fail_above)
        if regressions:
            worst = max(regressions, key=lambda r: r.ratio)
            typer.echo(f"{len(regressions)} row(s) slower by more than {fail_above:g}% (worst: {worst.base.model} "
                       f"{worst.base.gemm} M={worst.base.m} {worst.base.backend}, {worst.ratio:.3f}x)", err=True)
            raise typer.Exit(1)


@app.command()
def recommend(
    run: Annotated[Path, typer.Argument(help="A run file or CSV.")],
    tolerance: Annotated[Optional[float], typer.Option("--tolerance", min=0, help="Largest rel_err a backend may have "
                                                       "(default 1e-4: fp32-output semantics, which excludes linear_cast's "
                                                       "bf16 rounding; 1e-2 admits it).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table.")] = False,
) -> None:
    """Per GEMM shape: the fastest accurate backend at each M, collapsed into M ranges with the crossovers."""
    from gemmbench import render, results
    from gemmbench.recommend import recommend as recommend_backends

    loaded = results.load_run(run)
    recommendations = recommend_backends(loaded.records, results.FP32_ACCURATE_REL_ERR if tolerance is None else tolerance)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in recommendations], indent=1))
    elif md:
        typer.echo(render.recommendation_markdown(recommendations), nl=False)
    else:
        if loaded.provenance:
            out_console.print(render.header(loaded.provenance))
        out_console.print(render.recommendation_tables(recommendations))


@app.command()
def plot(
    run: Annotated[Path, typer.Argument(help="A run file or CSV.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file: .png or .svg.")],
) -> None:
    """Plot time against M (log-log), one panel per GEMM shape, one line per backend, and the floor."""
    from gemmbench import plot as plotting
    from gemmbench import results

    results.ensure_writable_file(str(output))
    path = plotting.plot_run(results.load_run(run), output)
    out_console.print(f"wrote {path}")


@app.command("list")
def list_(device: DeviceOpt = "auto") -> None:
    """List the shape presets with their GEMMs, and the backends with their availability here."""
    from gemmbench import environment, ext, shapes
    from gemmbench.backends import REGISTRY

    table = Table(title="Presets (configs/*.toml)", title_justify="left")
    for column in ("preset", "model", "gemm", "role", "N", "K", "in → out", "top_k"):
        table.add_column(column, justify="right" if column in ("N", "K", "top_k") else "left")
    for name in shapes.preset_names():
        preset = shapes.load_preset(name)
        for i, g in enumerate(preset.gemms):
            table.add_row(name if i == 0 else "", preset.model if i == 0 else "", g.name, g.role, str(g.n), str(g.k),
                          f"{g.in_dtype} → {g.out_dtype}", str(g.top_k or ""))
    out_console.print(table)

    dev = environment.select_device(device)
    probe = shapes.load_preset(shapes.DEFAULT_PRESET).gemms[0].case(1)
    table = Table(title=f"Backends (availability on {dev.type})", title_justify="left")
    for column in ("backend", "code", "here"):
        table.add_column(column)
    extension = ext.status()  # once for the three extension backends
    for backend in REGISTRY.values():
        table.add_row(backend.name, backend.code, _availability(backend, probe, dev, extension))
    out_console.print(table)


def _availability(backend, probe, device, extension) -> str:
    """Whether `backend` runs here, without building the extension just to say so."""
    if not backend.real:
        return "test double"
    if backend.needs_extension:
        reason = extension.cannot_run or extension.cannot_build
        if not reason and not extension.built:
            return "[green]yes[/] (the extension builds on first use)"
    else:
        reason = backend.supports(probe, device)
    return f"[yellow]no: {reason}[/]" if reason else "[green]yes[/]"


@app.command()
def env(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """What this machine offers: torch, CUDA, GPU, cuBLAS, and whether torch.mm(out_dtype=) works."""
    from gemmbench import environment
    from gemmbench.backends.mm_out_dtype import out_dtype_unavailable

    dev = environment.select_device("auto")
    facts = environment.collect_provenance(dev)
    for key in ("command", "started"):
        facts.pop(key)
    facts["cuda_available"] = dev.type == "cuda"
    reason = out_dtype_unavailable(dev.type)
    facts["mm_out_dtype"] = "works" if reason is None else f"unavailable: {reason}"
    _print_facts(facts, as_json)


ext_app = typer.Typer(
    cls=_Group, no_args_is_help=True, rich_markup_mode=None,
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
        raise GemmbenchError(f"cannot build the cuBLAS extension here: {status.cannot_build}", "see gemmbench ext status")
    err_console.print(f"building into {status.library.parent} (about a minute) …")
    try:
        path = ext.build()
    except ext.ExtensionUnavailable as exc:
        log = ext.build_dir() / ext.LOG_NAME
        if log.is_file():
            err_console.print(log.read_text(), markup=False, highlight=False)
        raise GemmbenchError(f"cannot build the cuBLAS extension: {exc}", "fix the compiler error above and run gemmbench ext build again") from None
    out_console.print(f"built: {path}")


@ext_app.command("status")
def ext_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Built or not, where, for which torch and CUDA; and if it cannot build or run here, why."""
    from gemmbench import ext

    status = ext.status()
    facts = {
        "built": status.built,
        "library": str(status.library),
        "torch": status.torch,
        "cuda": status.cuda,
        "can_build": status.cannot_build is None,
        "cannot_build": status.cannot_build,
        "can_run_here": status.cannot_run is None and (status.built or status.cannot_build is None),
        "cannot_run": status.cannot_run,
        "last_build_log": str(status.build_log) if status.build_log else None,
    }
    _print_facts(facts, as_json)


@ext_app.command("clean")
def ext_clean() -> None:
    """Remove every cached build of the extension."""
    from gemmbench import ext

    removed = ext.clean()
    out_console.print(f"removed {len(removed)} build(s) from {ext.cache_root() / 'ext'}")


def _print_facts(facts: dict, as_json: bool) -> None:
    """A flat dict as JSON, or as a two-column table for people."""
    if as_json:
        typer.echo(json.dumps(facts, indent=1))
        return
    table = Table(show_header=False)
    for key, value in facts.items():
        table.add_row(key, "–" if value is None else str(value))
    out_console.print(table)


def main() -> None:
    app()
