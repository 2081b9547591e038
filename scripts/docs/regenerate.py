"""Rewrite the generated blocks of the doc pages in place: each block between
`<!-- generated: scripts/PATH.py ARGS -->` and `<!-- end generated -->` becomes what
`python scripts/PATH.py ARGS` prints today (tests/test_docs.py fails where one differs).

Usage: python scripts/docs/regenerate.py [PAGE...]   (default: README.md and every page of docs/; from the
repository root). Prints each page it changed, and how many of its blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent.parent
# A generated block: the script (under scripts/), its arguments, and the text it printed.
BLOCK = re.compile(r"<!-- generated: scripts/(\S+\.py)([^>]*) -->\n(.*?)<!-- end generated -->", re.S)


def pages() -> list[Path]:
    """The pages that may hold generated blocks."""
    return [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]


def printed_by(script: str, args: list[str]) -> str:
    """What `python scripts/SCRIPT ARGS` prints, run in this process from the repository root."""
    path = REPOSITORY / "scripts" / script
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    printed, before = io.StringIO(), os.getcwd()
    os.chdir(REPOSITORY)  # not contextlib.chdir: Python 3.10 has none
    try:
        with contextlib.redirect_stdout(printed):
            module.main(args)
    finally:
        os.chdir(before)
    return printed.getvalue()


def regenerate(text: str) -> tuple[str, int]:
    """`text` with every generated block printed afresh, and how many blocks changed."""
    changed = 0

    def fresh(match: re.Match) -> str:
        nonlocal changed
        body = printed_by(match.group(1), shlex.split(match.group(2)))
        changed += body != match.group(3)
        start, end = match.start(3) - match.start(), match.end(3) - match.start()
        return match.group(0)[:start] + body + match.group(0)[end:]

    return BLOCK.sub(fresh, text), changed


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to rewrite (default: README.md and docs/*.md)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    for page in parse_args(argv).pages or pages():
        text, changed = regenerate(page.read_text())
        if changed:
            page.write_text(text)
            print(f"{page}: {changed} block(s) regenerated")


if __name__ == "__main__":
    main()
