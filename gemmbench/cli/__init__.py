"""The command line: parse options, call the library, render what it returns; the only code that prints.

app.py is the Typer app, its consoles and the one place errors become `Error: what — how to fix`;
options.py the options commands share; one module per kind of command: run.py (sweep, kernels, group:
they measure), tune.py (tune: router_small_m's tuning files), answers.py (show, compare, recommend,
fleet, plot, decode: they read saved runs, no torch), info.py (list, env, ext). Commands import the
measuring packages only when they run, so the answers and `--help` start without torch.
"""

from gemmbench.cli import answers, info, run, tune  # noqa: F401 - importing a command module registers its commands
from gemmbench.cli.app import EXIT_INTERRUPTED, app


def main() -> None:
    app()


__all__ = ["EXIT_INTERRUPTED", "app", "main"]
