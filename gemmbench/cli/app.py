"""The Typer app and what every command shares: the consoles (results on stdout; progress, notes, warnings
and errors on stderr, so `--csv -` pipes cleanly), and the one place errors are caught: a GemmbenchError
from any command, and click's usage errors, become one line `Error: what — how to fix` and an exit code.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.records import ERROR, OK

# Width for output that is not a terminal (files, CI logs), where rich would assume 80 columns and
# wrap kernel names and table cells. $COLUMNS, where set, wins (rich reads it).
PIPE_WIDTH = 160


def _width(stream) -> int | None:
    return None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH


# Results go to stdout; progress, notes, warnings and errors to stderr, so `--csv -` pipes cleanly.
class _OutConsole(Console):
    """stdout's console. Where a pipe's reader has gone (`gemmbench show RUN | head -1`), rich exits 1, the
    code of an error; this exits EXIT_PIPE_CLOSED, as a plain write to stdout does (`_Group.invoke`)."""

    def on_broken_pipe(self) -> None:
        _drop_stdout()
        raise SystemExit(EXIT_PIPE_CLOSED)


out_console = _OutConsole(width=_width(sys.stdout))

err_console = Console(stderr=True, width=_width(sys.stderr))


@contextlib.contextmanager
def backends_print_to_stderr() -> Iterator[None]:
    """While backends and producers (plugins among them) run, what they print goes to stderr, and stdout
    carries gemmbench's own tables or CSV only (one plugin's prints once put 3,389 lines into `--csv -`).
    Python's prints only: a kernel's printf writes to the process's stdout itself."""
    out_console.file = sys.stdout  # gemmbench's own output keeps the real stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        out_console.file = None  # back to following sys.stdout


# Exit code of a run stopped with Ctrl-C, as shells report SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
# Exit code where stdout was closed before the output was written (`gemmbench show RUN | head -1`): as
# shells report a process that SIGPIPE ended (128 + 13), so that it reads as neither an error nor success.
EXIT_PIPE_CLOSED = 141
# Exit code of a run that timed nothing (every row skipped) and of a recommendation with no answer for some
# shape: apart from 1 (an error row) so that a CI job can tell "nothing here to measure" from "broken".
EXIT_NO_ANSWER = 3
# The exit codes, as the help of the commands that measure (sweep, group) lists them.
EXIT_CODES_HELP = (
    "Exit codes: 0 every row timed or skipped for a stated reason, and at least one timed; 1 an error row, "
    "or an error; 2 a bad command line; "
    f"{EXIT_NO_ANSWER} nothing timed (every row skipped; --allow-empty makes it 0); "
    f"{EXIT_INTERRUPTED} interrupted (Ctrl-C), what finished kept; {EXIT_PIPE_CLOSED} stdout closed early "
    "(a pipe's reader exited), the run file kept."
)
# The exit codes of the commands that answer from a run file, by command; what every command shares last.
_COMMON_EXIT_CODES = "2 a bad command line."
ANSWER_EXIT_CODES_HELP = (
    "Exit codes: 0 an answer for every shape; 1 an error (an unreadable run file); "
    f"{EXIT_NO_ANSWER} no backend qualified for some shape (named on stderr); {_COMMON_EXIT_CODES}"
)
COMPARE_EXIT_CODES_HELP = (
    "Exit codes: 0 compared; 1 with --fail-above, a row slower by more than that or one the base run timed "
    f"and the new run did not; 1 also an error (an unreadable run file, runs timed differently); "
    f"{EXIT_NO_ANSWER} no row timed in both runs; {_COMMON_EXIT_CODES}"
)
FLEET_EXIT_CODES_HELP = (
    "Exit codes: 0 every row timed and, with --fail-above, no device slower than that; 1 an error row, a "
    f"device slower than --fail-above, or an error; {_COMMON_EXIT_CODES}"
)
SHOW_EXIT_CODES_HELP = f"Exit codes: 0 shown; 1 an error (an unreadable run file); {_COMMON_EXIT_CODES}"
DECODE_EXIT_CODES_HELP = f"Exit codes: 0 every name recognised; 1 a name not recognised; {_COMMON_EXIT_CODES}"
TUNE_EXIT_CODES_HELP = (
    "Exit codes: 0 every shape tuned; 1 a shape that could not be tuned (the file holds the others), or an "
    f"error; {_COMMON_EXIT_CODES}"
)
KERNELS_EXIT_CODES_HELP = (
    "Exit codes: 0 every backend ran or was skipped for a stated reason, and at least one ran (or, with "
    f"--from, shown); 1 an error row, or an error; {EXIT_NO_ANSWER} every row skipped; {_COMMON_EXIT_CODES}"
)

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
        except KeyboardInterrupt:  # outside a session (which keeps its rows and says so itself)
            typer.echo("interrupted (Ctrl-C)", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # the reader of stdout is gone: nothing more to say to it, nor an error
            _drop_stdout()
            raise typer.Exit(EXIT_PIPE_CLOSED) from None


def _drop_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


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
        from gemmbench.version import __version__

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


def warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="yellow")


def rows_phrase(count: int, kind: str = "row") -> str:
    return f"{count} {kind}{'' if count == 1 else 's'}"


def exit_if_nothing_timed(rows, allow_empty: bool, timed: bool = True) -> None:
    """Exit EXIT_NO_ANSWER, saying why, where no row ran (ok): a run that measured nothing must not pass a
    CI job unless asked to (`--allow-empty`). `timed` False: a pass that runs without timing and has no
    --allow-empty (`gemmbench kernels`)."""
    if allow_empty or any(row.status == OK for row in rows):
        return
    skipped = "the one row was skipped" if len(rows) == 1 else f"all {rows_phrase(len(rows))} were skipped"
    what = f"{skipped} (the reasons are above)" if rows else "there were no rows"
    done, escape = ("was timed", ", or pass --allow-empty to exit 0 anyway") if timed else ("ran", "")
    err_console.print(f"nothing {done}: {what} — run where they can run{escape}", style="red")
    raise typer.Exit(EXIT_NO_ANSWER)


def exit_if_errored(rows) -> None:
    """Exit 1, saying how many, where any row is an error row: a CI job must fail on them (exit 0 means
    every row is ok or skipped for a stated reason)."""
    errors = sum(1 for row in rows if row.status == ERROR)
    if errors:
        err_console.print(f"{errors} of {rows_phrase(len(rows))} errored (their reasons are above)", style="red")
        raise typer.Exit(1)
