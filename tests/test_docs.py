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


README = DOCS.parent / "README.md"


def test_the_readme_fits_a_screen_width_and_stays_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    assert [n for n, line in enumerate(lines, 1) if len(line) > 100] == []


def test_the_readmes_command_table_names_every_command():
    from typer.main import get_command

    from gemmbench.cli import app

    commands = set(get_command(app).commands)
    table = {m.group(1) for m in re.finditer(r"^\| `gemmbench (\w+)", README.read_text(), re.M)}
    assert commands == table


def test_ci_runs_exactly_the_readmes_test_command():
    command = next(line for line in README.read_text().splitlines() if "python -m pytest" in line)
    ci = (DOCS.parent / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command


@pytest.mark.parametrize("path", sorted((DOCS / "runs").glob("*")), ids=lambda p: p.name)
def test_every_file_under_docs_runs_is_a_run_file(path):
    from gemmbench.records.runfile import load_run

    assert load_run(path).records or load_run(path).groups
