"""Answers from saved runs, none of which needs a GPU or imports torch: show, compare, recommend, fleet,
plot, decode."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from gemmbench.analysis.compare import compare_groups, compare_runs, mismatches, run_kind
from gemmbench.analysis.decode import decode as decode_name
from gemmbench.analysis.fleet import fleet_report
from gemmbench.analysis.group_advice import advise
from gemmbench.analysis.policy import FP32_ACCURATE_REL_ERR
from gemmbench.analysis.recommend import dispatch_view, in_view
from gemmbench.analysis.recommend import recommend as recommend_backends
from gemmbench.cli.app import (
    ANSWER_EXIT_CODES_HELP,
    COMPARE_EXIT_CODES_HELP,
    DECODE_EXIT_CODES_HELP,
    EXIT_NO_ANSWER,
    FLEET_EXIT_CODES_HELP,
    SHOW_EXIT_CODES_HELP,
    app,
    err_console,
    exit_if_errored,
    out_console,
)
from gemmbench.cli.group import print_groups
from gemmbench.cli.options import AllRowsOpt, MdOpt, check_exports, one_format
from gemmbench.cli.session import export, print_results
from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.output.compare import (
    comparison_markdown,
    comparison_table,
    group_comparison_markdown,
    group_comparison_table,
)
from gemmbench.output.dispatch import recommendation_python
from gemmbench.output.fleet import fleet_markdown, fleet_table
from gemmbench.output.format import header, reasons_text
from gemmbench.output.groups import advice_dicts, advice_markdown, advice_tables
from gemmbench.output.kernels import decoded_tables
from gemmbench.output.recommend import (
    error_lines,
    recommendation_dicts,
    recommendation_markdown,
    recommendation_tables,
)
from gemmbench.output.sweep import incomplete_note
from gemmbench.records import OK, after_context, in_range, runfile
from gemmbench.records.flags import WRONG_RESULT_REL_ERR


def load(path: Path) -> runfile.Run:
    """A run file or CSV to answer from; one that a sweep did not finish (interrupted, or still running)
    is said so on stderr, since its answers cover only the rows it has."""
    loaded = runfile.load_run(path)
    if not loaded.complete:
        err_console.print(f"{path}: incomplete run (interrupted): {incomplete_note(loaded)}", style="yellow")
    return loaded


@app.command(epilog=SHOW_EXIT_CODES_HELP)
def show(
    run: Annotated[Path, typer.Argument(help="A run file (results/*.json) or a CSV export.")],
    csv: Annotated[str | None, typer.Option("--csv", help="Write the rows as CSV here; - for stdout.")] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Write the run as JSON here; - for stdout.")] = None,
    md: Annotated[bool, typer.Option("--md", help="Print a Markdown table instead of rich tables.")] = False,
    all_rows: AllRowsOpt = False,
) -> None:
    """Re-render a saved run."""
    check_exports(csv, json_path)
    loaded = load(run)
    if not loaded.records and not loaded.groups:
        raise GemmbenchError(f"{run} holds no rows", "give a run file of a sweep or a group run")
    console = err_console if "-" in (csv, json_path) else out_console
    if loaded.provenance.recorded:
        console.print(header(loaded.provenance))
    if loaded.records:
        print_results(console, loaded.records, md, all_rows)
    if loaded.groups:
        print_groups(console, loaded.groups, md)
    export(loaded, csv, json_path)


@app.command(epilog=DECODE_EXIT_CODES_HELP)
def decode(
    names: Annotated[list[str], typer.Argument(help="Kernel names, as torch.profiler, nsys or ncu print them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per name, in order.")] = False,
) -> None:
    """Decode kernel names (nvjet, xmma, CUTLASS, TensorRT-LLM's router GEMM, split-K reduce, gemv, copies):
    family, arch, dtypes, tile.

    Exits 1 where a name is of no known family (after decoding the others)."""
    if any(not name.strip() for name in names):
        raise UsageError("an empty kernel name", "give the names as the profiler prints them, each non-empty")
    infos = [decode_name(name) for name in names]
    if as_json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=1))
    else:
        out_console.print(decoded_tables(infos))
    unknown = [info.name for info in infos if not info.recognised]
    if unknown:
        typer.echo(f"{len(unknown)} of {len(infos)} name(s) not recognised: {', '.join(unknown)}", err=True)
        raise typer.Exit(1)


def exit_if_slower(slower: list, what: str, ratio: Callable, name: Callable) -> None:
    """`--fail-above` for CI: exit 1, saying how many are `what` and which is worst, where any is."""
    if slower:
        worst = max(slower, key=ratio)
        typer.echo(f"{len(slower)} {what} (worst: {name(worst)}, {ratio(worst):.3f}x)", err=True)
        raise typer.Exit(1)


@app.command(epilog=COMPARE_EXIT_CODES_HELP)
def compare(
    base: Annotated[Path, typer.Argument(help="The reference run (run file or CSV).")],
    new: Annotated[Path, typer.Argument(help="The run to judge against it.")],
    fail_above: Annotated[
        float | None,
        typer.Option(
            "--fail-above",
            min=0,
            help="Exit 1 if a row is slower by more than this many percent (verdict 'slower'), or if a row "
            "the base run timed was not timed in the new one (an error, a skip, no time, or missing): for CI.",
        ),
    ] = None,
    md: MdOpt = False,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch",
            help="Compare runs timed differently (CPU and GPU, cold and hot L2, other timers) all the same.",
        ),
    ] = False,
    all_rows: AllRowsOpt = False,
) -> None:
    """Compare two runs row by row: ratio of medians and a verdict (faster, slower, same, noisy)."""

    base_run, new_run = load(base), load(new)
    if not all_rows:
        base_run, new_run = (replace(run, records=in_range(run.records)) for run in (base_run, new_run))
    if base.resolve() == new.resolve():
        err_console.print(f"note: {base} is compared with itself: every row is the same", style="yellow")
    gpus = base_run.provenance.device_name, new_run.provenance.device_name
    if None not in gpus and gpus[0] != gpus[1]:
        two_gpus = f"note: the runs are of two GPUs ({' and '.join(gpus)}): the ratios compare them"
        err_console.print(two_gpus, style="yellow")
    kinds = run_kind(base_run), run_kind(new_run)
    if kinds[0] != kinds[1]:
        raise GemmbenchError(
            f"{base} is {kinds[0]} and {new} is {kinds[1]}: they have no rows in common",
            "compare group runs (gemmbench group) with group runs and sweeps with sweeps",
        )
    differences = mismatches(base_run, new_run)
    if differences and not allow_mismatch:
        raise GemmbenchError(
            f"{base} and {new} were timed differently ({'; '.join(differences)}), so their ratios mean little",
            "compare runs of the same kind, or pass --allow-mismatch",
        )
    views = [  # sweep rows, group rows: each compared, with its table and its Markdown
        (compare_runs(base_run, new_run), comparison_table, comparison_markdown),
        (compare_groups(base_run, new_run), group_comparison_table, group_comparison_markdown),
    ]
    views = [view for view in views if view[0].rows]
    if not views:
        raise GemmbenchError(f"{base} and {new} share no (case, backend) rows", "compare runs of the same shapes")
    for comparison, table, markdown in views:
        if md:
            typer.echo(markdown(comparison), nl=False)
        else:
            out_console.print(table(comparison))
    comparisons = [comparison for comparison, _, _ in views]
    if fail_above is not None:
        exit_if_slower(
            [row for c in comparisons for row in c.regressions(fail_above)],
            f"row(s) slower by more than {fail_above:g}%",
            lambda r: r.ratio,
            lambda r: r.base.row_name,
        )
        exit_if_lost([lost for c in comparisons for lost in c.lost()], new)
    if not any(r.ratio for c in comparisons for r in c.rows):
        err_console.print(f"no row was timed in both {base} and {new}: nothing compared", style="red")
        raise typer.Exit(EXIT_NO_ANSWER)


def exit_if_lost(lost: list, new: Path) -> None:
    """`--fail-above` for CI: exit 1 where rows the base run timed are not timed in the new run, naming the
    first and why (its row's status and reason, or that the new run has no such row)."""
    if lost:
        base_row, new_row = lost[0]
        if new_row is None:
            why = "no such row"
        elif new_row.status == OK:
            why = "ok, but no time recorded (a row cut short?)"
        else:
            why = f"{new_row.status}: {new_row.reason}"
        typer.echo(
            f"{len(lost)} row(s) timed in the base run are not timed in {new} (first: {base_row.row_name}, {why})",
            err=True,
        )
        raise typer.Exit(1)


ToleranceOpt = Annotated[
    float | None,
    typer.Option(
        "--tolerance",
        min=0,
        help=f"Largest rel_err a backend may have (default {FP32_ACCURATE_REL_ERR:g}: fp32-output semantics, which "
        f"excludes linear_cast's bf16 rounding; {WRONG_RESULT_REL_ERR:g}, the wrong-result bound, admits it).",
    ),
]
MaxFlipsOpt = Annotated[
    float | None,
    typer.Option(
        "--max-flips",
        min=0,
        max=100,
        help="Also require the routing check of router rows (a GEMM that is not a router is exempt): at most "
        "this percent of tokens may route to other experts than with float64 logits (docs/routing.md). "
        "Default: not required.",
    ),
]
PythonOpt = Annotated[
    bool,
    typer.Option(
        "--python", help="Print a dispatch function for these shapes on this GPU, to paste into serving code."
    ),
]
ViewOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="The view to decide by: the producer before the GEMM in its layer ('none': the GEMMs alone). "
        "Default: every view in the tables; with --python, the run's engine producer (FlashInfer's fused add "
        "+ norm first), or its only one.",
    ),
]


@app.command(epilog=ANSWER_EXIT_CODES_HELP)
def recommend(
    run: Annotated[Path, typer.Argument(help="A run file or CSV.")],
    tolerance: ToleranceOpt = None,
    max_flips: MaxFlipsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    md: MdOpt = False,
    python: PythonOpt = False,
    context: ViewOpt = None,
) -> None:
    """Per GEMM shape (alone, and per layer after each producer the run timed): the fastest accurate backend
    at each M, collapsed into M ranges with the crossovers, and what it saves against mm_out_dtype."""

    one_format(("--json", as_json), ("--md", md), ("--python", python))
    loaded = load(run)
    tolerance = FP32_ACCURATE_REL_ERR if tolerance is None else tolerance
    if loaded.groups:  # a `gemmbench group` run: per group, whether and up to which M the streams pay
        for flag, given in (("--python", python), ("--max-flips", max_flips is not None)):
            if given:
                raise UsageError(f"{flag} is for sweeps' router rows, not for group runs", f"drop {flag}")
        groups = loaded.groups if context is None else in_view(loaded.groups, context)
        print_group_advice(advise(groups, tolerance), as_json, md)
        return
    recommendations = recommend_backends(loaded.records, tolerance, None if max_flips is None else max_flips / 100)
    if not recommendations:
        raise GemmbenchError(f"{run} holds no rows to recommend from", "give a run file of a sweep")
    if python or context is not None:
        recommendations = dispatch_view(recommendations, context)
    if python:
        source = (
            str(run)
            if loaded.complete
            else f"{run}, an interrupted run ({incomplete_note(loaded)}; what it did not reach is missing)"
        )
        typer.echo(recommendation_python(recommendations, loaded.provenance, source), nl=False)
        for rec in recommendations:  # the dispatch is code: what it routed around goes to stderr
            for line in error_lines(rec):
                err_console.print(f"note: {rec.model} {rec.gemm}: {line}", style="yellow")
    elif as_json:
        typer.echo(json.dumps(recommendation_dicts(recommendations), indent=1))
    elif md:
        typer.echo(recommendation_markdown(recommendations), nl=False)
    else:
        if loaded.provenance.recorded:
            out_console.print(header(loaded.provenance))
        out_console.print(recommendation_tables(recommendations))
    exit_if_unanswered(
        recommendations, "the reasons are above" if not python else f"`gemmbench recommend {run}` says why"
    )


def print_group_advice(advice, as_json: bool, md: bool) -> None:
    """A group run's advice, as JSON, Markdown or rich tables."""
    if as_json:
        typer.echo(json.dumps(advice_dicts(advice), indent=1))
    elif md:
        typer.echo(advice_markdown(advice), nl=False)
    else:
        out_console.print(advice_tables(advice))


def exit_if_unanswered(recommendations, why: str) -> None:
    """Exit EXIT_NO_ANSWER, naming them, where no backend qualified for some shape: a dispatch with a hole
    must not pass a CI job."""
    unanswered = [f"{rec.model} {rec.gemm}{after_context(rec.context)}" for rec in recommendations if not rec.ranges]
    if unanswered:
        err_console.print(f"no backend qualified for {', '.join(unanswered)} ({why})", style="red")
        raise typer.Exit(EXIT_NO_ANSWER)


@app.command(epilog=FLEET_EXIT_CODES_HELP)
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
    md: MdOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: every device and every point.")] = False,
) -> None:
    """Per device of a fleet: its times against the fleet's median, and whether it is an outlier."""

    one_format(("--json", as_json), ("--md", md))
    loaded = load(run)
    report = fleet_report(loaded, str(run))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1))
    elif md:
        typer.echo(fleet_markdown(report), nl=False)
    else:
        if loaded.provenance.recorded:
            out_console.print(header(loaded.provenance))
        out_console.print(fleet_table(report))
    reasons = reasons_text(loaded.records)  # the rows the report leaves out, and why
    if reasons:
        (out_console if not (as_json or md) else err_console).print(reasons)
    if fail_above is not None:
        exit_if_slower(
            report.failing(fail_above),
            f"device(s) slower than the fleet by more than {fail_above:g}%",
            lambda d: d.median_ratio,
            lambda d: d.device_id,
        )
    exit_if_errored(loaded.records)  # the report covers the timed rows; a fleet check with holes fails


@app.command(epilog=SHOW_EXIT_CODES_HELP)
def plot(
    run: Annotated[Path, typer.Argument(help="A run file or CSV.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file: .png or .svg.")],
) -> None:
    """Plot time against M (log-log), one panel per GEMM shape, one line per backend, and the floor."""
    from gemmbench.output import plot as plotting  # matplotlib loads only here

    runfile.ensure_writable_file(str(output), example="plot.png")
    path = plotting.plot_run(load(run), output)
    out_console.print(f"wrote {path}")
