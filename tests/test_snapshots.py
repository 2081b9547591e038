"""Snapshot tests: the Markdown outputs, pinned on the fixture runs in tests/fixtures.

A deliberate change to an output: run `UPDATE_SNAPSHOTS=1 python -m pytest tests/test_snapshots.py`,
then review the diff of tests/snapshots/ like any other change.
"""

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemmbench.cli import app
from gemmbench.cli.app import out_console

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOTS = Path(__file__).parent / "snapshots"
SM90 = FIXTURES / "h200_deepseek_v3_sm90.json"
SM90_B = FIXTURES / "h200_deepseek_v3_sm90_b.json"
SM100 = FIXTURES / "handmade_sm100.json"

CASES = {
    "show_sm90.md": ["show", SM90, "--md"],
    "show_sm100.md": ["show", SM100, "--md"],
    "kernels_sm90.md": ["kernels", "--from", SM90, "--md"],
    "kernels_sm100.md": ["kernels", "--from", SM100, "--md"],
    "compare_sm90.md": ["compare", SM90, SM90_B, "--md"],
    "recommend_sm90.md": ["recommend", SM90, "--md"],
    "recommend_sm90.json": ["recommend", SM90, "--json"],
    "recommend_sm90_loose.md": ["recommend", SM90, "--md", "--tolerance", "1e-2"],
    # On the made-up device (tests/fakes.py) times are made up, so a CPU sweep's or group's table is exact
    # but for its header line (machine, time) and the relative errors, which the host's float32 matmul sets
    # (they differ in the second digit between machines); the fixture snapshots above pin how relative
    # errors are written.
    "group_fake.md": "group -p deepseek-v4-pro -b fake --m 1,16 --device cpu --no-save --md -q".split(),
    "sweep_fake.md": "sweep -b fake --device cpu -p deepseek-v3 --m 1,8 --shape 8x16 --no-save --md -q".split(),
    # In the layer, with a backend the CPU cannot run: the in-context figures, and the skip reason line.
    "sweep_fake_context.md": "sweep -b fake,router_small_m_ext --device cpu -p deepseek-v3 --m 1,8 --context norm "
    "--no-save --md -q".split(),
}


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.is_file(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1 to create it"
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_markdown_output_matches_its_snapshot(name, fake_device):
    result = CliRunner().invoke(app, [str(arg) for arg in CASES[name]])
    assert result.exit_code == 0, result.output
    text = result.stdout
    if name.startswith(("sweep", "group")):
        header, text = text.split("\n", 1)
        assert header.startswith("gemmbench ") and "CPU" in header
        text = re.sub(r"(µs\)), \d\.\de-\d\d", r"\1, <rel_err>", text)
    check_snapshot(name, text)


# The rich kernel tables at the widths of common terminals, where names and decoded fields fold.
TERMINAL_WIDTHS = (80, 100)


@pytest.mark.parametrize("width", TERMINAL_WIDTHS)
def test_kernel_tables_at_terminal_widths_match_their_snapshots(width, monkeypatch):
    monkeypatch.setattr(out_console, "width", width)
    result = CliRunner().invoke(app, ["kernels", "--from", str(SM90)])
    assert result.exit_code == 0, result.output
    check_snapshot(f"kernels_sm90_{width}.txt", result.stdout)


# A common terminal's width, narrower than the one-column-per-backend table of a six-backend run.
NARROW_TERMINAL = 80


def test_show_in_a_narrow_terminal_matches_its_snapshot(monkeypatch):
    # Six backends with every note the sweep tables write (floor, top-k, noisy, throttled): one row per
    # (M, backend).
    monkeypatch.setattr(out_console, "width", NARROW_TERMINAL)
    result = CliRunner().invoke(app, ["show", str(FIXTURES / "h200_one_gpu_plain.json")])
    assert result.exit_code == 0, result.output
    check_snapshot(f"show_one_gpu_{NARROW_TERMINAL}.txt", result.stdout)
