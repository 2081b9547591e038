"""Pages of results are generated from run files: every block a doc page marks as generated is what its
script prints today, so that the page cannot drift from the run file or the code."""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from test_scripts import load_script

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"<!-- generated: scripts/(\S+\.py)([^>]*) -->\n(.*?)<!-- end generated -->", re.S)


def generated_blocks():
    for page in sorted(DOCS.glob("*.md")):
        for match in BLOCK.finditer(page.read_text()):
            yield pytest.param(match.group(1), shlex.split(match.group(2)), match.group(3), id=f"{page.name}")


def test_a_page_has_generated_blocks():
    assert list(generated_blocks())  # the pattern still finds the pages' blocks


@pytest.mark.parametrize("script, args, text", generated_blocks())
def test_every_generated_block_is_what_its_script_prints(script, args, text, monkeypatch):
    monkeypatch.chdir(DOCS.parent)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        load_script(script).main(args)
    assert printed.getvalue() == text, f"regenerate it: python scripts/{script} {' '.join(args)}"
