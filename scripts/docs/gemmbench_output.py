"""What a gemmbench command prints from saved runs, run in-process through the Typer app (gemmbench.cli.app),
so that a doc block can be any real answer of the tool: `show`, `compare`, `recommend`, `fleet`, `decode`
and `kernels --from`, none of which needs a GPU or imports torch. Rich tables are drawn at a fixed width
(PIPE_WIDTH, the width gemmbench writes to a file at) and without colour, so the output is the same on any
terminal. Commands that measure (sweep, group, tune, kernels without --from), describe this machine (list,
env, ext) or write a file (plot) are refused. A command that exits non-zero fails the script.

--rows REGEX keeps, of the output's Markdown table rows, only those REGEX matches (each table's header and
separator stay), to quote part of a long table; --code LANG puts the output in a fenced code block.

Usage: python scripts/docs/gemmbench_output.py [--rows REGEX] [--code LANG] COMMAND [ARGS ...]
  e.g. python scripts/docs/gemmbench_output.py recommend docs/runs/h200_tiers.json --md
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Iterator

# Commands that answer from saved runs (or from names given), printing text.
ANSWERS = ("show", "compare", "recommend", "fleet", "decode", "kernels")
# Every other command, and why a doc block cannot show it.
REFUSED = {
    "sweep": "it measures on a GPU",
    "group": "it measures on a GPU",
    "tune": "it measures on a GPU",
    "list": "it describes this machine, not a saved run",
    "env": "it describes this machine, not a saved run",
    "ext": "it builds or inspects this machine's extension, not a saved run",
    "plot": "it writes an image, not text",
}
# `kernels` answers from a run file with this option only; without it, it runs kernels on a GPU.
KERNELS_FROM = "--from"
# A Markdown table's separator line (|---|---|), which follows its header.
SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
NEWLINE = "\n"
# ANSI escape sequences, which rich writes where FORCE_COLOR or TTY_COMPATIBLE make it think of a terminal.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--rows", help="keep only the Markdown table rows this regular expression matches")
    parser.add_argument("--code", metavar="LANG", help="print the output as a fenced code block of this language")
    parser.add_argument(
        "--width", type=int, help="the columns rich tables are drawn at (default: the width gemmbench writes files at)"
    )
    parser.add_argument("command", help=f"a gemmbench command that answers from saved runs: {', '.join(ANSWERS)}")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments and options, as on the command line")
    args = parser.parse_args(argv)
    if args.command in REFUSED:
        parser.error(f"gemmbench {args.command} cannot make a doc block: {REFUSED[args.command]}")
    if args.command not in ANSWERS:
        parser.error(f"{args.command!r} is not a gemmbench command: give one of {', '.join(ANSWERS)}")
    if args.command == "kernels" and not any(a == KERNELS_FROM or a.startswith(f"{KERNELS_FROM}=") for a in args.args):
        parser.error(f"gemmbench kernels without {KERNELS_FROM} runs kernels on a GPU: pass {KERNELS_FROM} RUN")
    return args


@contextlib.contextmanager
def fixed_width(consoles, width: int) -> Iterator[None]:
    """The consoles draw at `width` columns, whatever the terminal, and get their width back after."""
    saved = [console.width for console in consoles]
    for console in consoles:
        console.width = width
    try:
        yield
    finally:
        for console, before in zip(consoles, saved, strict=True):
            console.width = before


def gemmbench_output(words: list[str], width: int | None = None) -> str:
    """What `gemmbench WORDS...` prints on stdout, rich tables drawn at `width` columns (default: the width
    gemmbench writes to a file at); what it prints on stderr goes to stderr."""
    from typer.testing import CliRunner

    from gemmbench.cli import app
    from gemmbench.cli.app import PIPE_WIDTH, err_console, out_console

    with fixed_width((out_console, err_console), width or PIPE_WIDTH):
        result = CliRunner().invoke(app, words, env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None})
    sys.stderr.write(result.stderr)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if result.exit_code != 0:
        raise SystemExit(f"gemmbench {' '.join(words)} exited {result.exit_code}: a doc block needs its answer")
    return ANSI.sub("", result.stdout)


def keep_rows(text: str, pattern: re.Pattern) -> str:
    """`text` with only the Markdown table rows that `pattern` matches, and every header and separator."""
    lines = text.splitlines(keepends=True)
    kept = []
    for i, line in enumerate(lines):
        header = i + 1 < len(lines) and SEPARATOR.match(lines[i + 1])
        if not line.startswith("|") or header or SEPARATOR.match(line) or pattern.search(line):
            kept.append(line)
    return "".join(kept)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    text = gemmbench_output([args.command, *args.args], args.width)
    text = "".join(line.rstrip() + NEWLINE for line in text.splitlines())  # rich pads the lines it wraps
    if args.rows is not None:
        text = keep_rows(text, re.compile(args.rows))
    if args.code is not None:
        text = f"```{args.code}\n{text if text.endswith(NEWLINE) else text + NEWLINE}```\n"
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
