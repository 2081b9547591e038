"""The command line's side of a measuring session, shared by the commands that measure (sweep, group,
kernels, tune) and those that render saved runs: the progress bar and the run's header, the CSV kept as
rows finish, where the run file went, the exports, and the closing lines that a second Ctrl-C must not
lose."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from gemmbench.cli.app import (
    EXIT_INTERRUPTED,
    backends_print_to_stderr,
    err_console,
    exit_if_errored,
    exit_if_nothing_timed,
    rows_phrase,
    warn,
)
from gemmbench.errors import GemmbenchError
from gemmbench.output.format import header
from gemmbench.output.progress import progress, step_label
from gemmbench.output.sweep import incomplete_note, sweep_markdown, sweep_tables
from gemmbench.records import Provenance, in_range, runfile, table


def refuse_torchrun(command: str, fix: str) -> None:
    """A one-GPU command started by torchrun would run every rank on the same GPU: one error instead."""
    from gemmbench.measure.fleet import Fleet

    if Fleet.from_environment() is not None:
        raise GemmbenchError(f"gemmbench {command} runs on one GPU, not under torchrun", fix)


def plan_session(**options):
    """`measure.session.plan_sweep(**options)`, with what plugins print as they are imported sent to stderr,
    as what backends print while they run is (app.backends_print_to_stderr): stdout carries gemmbench's
    tables or CSV only."""
    from gemmbench.measure.session import plan_sweep

    with backends_print_to_stderr():
        return plan_sweep(**options)


def finish(result, rows: list, show: Callable[[], None], notes, csv, json_path, allow_empty: bool, kind="row") -> None:
    """The one ending of a measuring run (sweep, group): its tables (`show`), where its run file went, its
    exports, what an interruption kept, and its exit code from its `rows` (of `kind`)."""
    if result.failure:
        err_console.print(
            f"the fleet stopped early: {result.failure}; rows it did not report are error rows", style="red"
        )
    with finishing():
        show()
        report_saved(result, notes, rows_phrase(len(rows), kind))  # first: an export that fails raises
        export(result.run, csv, json_path)
        if result.interrupted:
            err_console.print(f"interrupted: {incomplete_note(result.run)}; kept", style="yellow")
    if result.failure:
        raise typer.Exit(1)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    exit_if_errored(rows)
    exit_if_nothing_timed(rows, allow_empty)


def report_saved(result, notes: Console | None, rows: str) -> None:
    """Where the run file went: a warning where it had to go to a fallback path, then where it is."""
    if result.save_problem:
        warn(result.save_problem)
    if notes and result.path:
        notes.print(f"saved {rows} to {result.path}", style="dim")


@contextlib.contextmanager
def finishing():
    """Once a run has ended (finished or stopped with Ctrl-C), its tables, exports and closing lines are
    written even if Ctrl-C is pressed again: a second Ctrl-C would otherwise lose the exports."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_with_progress(
    plan,
    header_console: Console | None,
    notes: Console | None,
    enabled: bool,
    fleet=None,
    split="",
    work=None,
    csv: str | None = None,
):
    """Run a session (a sweep's points, or `work`; this rank's, under torchrun) with a progress bar on stderr
    (a terminal only); the header goes first. `csv` (a file, not '-'): the CSV export, kept as rows finish."""
    from gemmbench.measure.fleet import run_fleet
    from gemmbench.measure.session import SweepCallbacks, run_session

    with progress(err_console, enabled=enabled and err_console.is_terminal) as bar, backends_print_to_stderr():
        task = bar.add_task("", total=None)
        steps: list = []

        def started(provenance: Provenance, planned: list) -> None:
            steps.extend(planned)
            bar.update(task, total=len(steps))
            if header_console:
                header_console.print(header(provenance))
            advance(0)

        def advance(done: int) -> None:
            bar.update(task, completed=done, description=step_label(steps[done]) if done < len(steps) else "done")

        appender = table.CsvAppender(Path(csv)) if csv and csv != "-" else None
        callbacks = SweepCallbacks(
            started=started,
            progress=advance,
            note=(lambda message: notes.print(message)) if notes else (lambda message: None),
            warn=warn,
            row_done=appender.append if appender else (lambda row: None),
        )
        return run_fleet(plan, fleet, split, callbacks) if fleet else run_session(plan, callbacks, work)


def print_results(console: Console, records, md: bool, all_rows: bool = False) -> None:
    """The sweep's tables; rows of backends beyond their M range only with `all_rows`."""
    records = records if all_rows else in_range(records)
    if md:
        console.print(sweep_markdown(records), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(sweep_tables(records))


def export(run, csv: str | None, json_path: str | None) -> None:
    """Each export asked for; one that cannot be written does not stop the other (its error is raised after)."""
    exports = [
        (
            csv,
            lambda: table.rows_to_csv(run.groups if run.groups and not run.records else run.records),
        ),
        (json_path, lambda: runfile.run_to_json(run)),
    ]
    failures = []
    for path, text in exports:
        if path:
            try:
                runfile.write_text(path, text(), sys.stdout)
            except GemmbenchError as exc:
                failures.append(exc)
    if failures:
        raise failures[0]
