"""The command line: parse options, call the library, render what it returns; the only code that prints.

app.py is the Typer app, its consoles and the one place errors become `Error: what — how to fix`;
options.py the options commands share; session.py what the measuring commands share (progress, the run
file, exports); one module per kind of command: run.py (sweep, kernels: they measure), group.py (group),
tune.py (tune: router_small_m's tuning files), answers.py (show, compare, recommend, fleet, plot, decode:
they read saved runs, no torch), info.py (list, env, ext). Commands import the measuring packages only
when they run, so the answers and `--help` start without torch.
"""

# Importing a command module registers its commands, in this order: the order of `gemmbench --help`.
# isort: off
from gemmbench.cli import run, group, answers, info, tune  # noqa: F401

# isort: on
import sys

from gemmbench.cli.app import EXIT_INTERRUPTED, app


def main() -> None:
    _replace_what_cannot_be_encoded()
    app()


def _replace_what_cannot_be_encoded() -> None:
    """Where stdout or stderr cannot encode what gemmbench writes (µ, ≤, box drawing: PYTHONIOENCODING=ascii,
    a C locale without Python's UTF-8 mode), such characters are written as '?' instead of ending the
    command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


__all__ = ["EXIT_INTERRUPTED", "app", "main"]
