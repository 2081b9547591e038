"""Pages of results are generated from run files: every block a doc page marks as generated is what its
script prints today, so that the page cannot drift from the run file or the code."""

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_scripts import load_script

DOCS = Path(__file__).resolve().parent.parent / "docs"
REGENERATE = load_script("docs/regenerate.py")


def generated_blocks():
    for page in REGENERATE.pages():
        for match in REGENERATE.BLOCK.finditer(page.read_text()):
            yield pytest.param(match.group(1), shlex.split(match.group(2)), match.group(3), id=f"{page.name}")


def test_a_page_has_generated_blocks():
    assert list(generated_blocks())  # the pattern still finds the pages' blocks


@pytest.mark.parametrize("script, args, text", list(generated_blocks()))
def test_every_generated_block_is_what_its_script_prints(script, args, text):
    assert REGENERATE.printed_by(script, args) == text, "regenerate it: python scripts/docs/regenerate.py"


def test_regenerate_rewrites_a_stale_block_and_fills_an_empty_one(tmp_path, capsys):
    block = "<!-- generated: scripts/docs/schema_table.py -->\n{}<!-- end generated -->\n"
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n" + block.format("stale\n") + "\ntext between\n\n" + block.format(""))
    REGENERATE.main([str(page)])
    fresh = REGENERATE.printed_by("docs/schema_table.py", [])
    assert page.read_text() == "# A page\n\n" + block.format(fresh) + "\ntext between\n\n" + block.format(fresh)
    assert capsys.readouterr().out == f"{page}: 2 block(s) regenerated\n"
    REGENERATE.main([str(page)])  # nothing left to change: the page is not rewritten, nothing is printed
    assert capsys.readouterr().out == ""


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


# scripts/docs/gemmbench_output.py: a gemmbench answer as a doc block.
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "h200_deepseek_v3_sm90.json"
FIXTURE_B = FIXTURE.with_name("h200_deepseek_v3_sm90_b.json")


def printed_by_output_script(args: list[str]) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        load_script("docs/gemmbench_output.py").main(args)
    return printed.getvalue()


def test_every_gemmbench_command_is_answered_or_refused_by_the_output_script():
    from typer.main import get_command

    from gemmbench.cli import app

    script = load_script("docs/gemmbench_output.py")
    assert set(get_command(app).commands) == set(script.ANSWERS) | set(script.REFUSED)
    assert not set(script.ANSWERS) & set(script.REFUSED)


@pytest.mark.parametrize(
    "args, why",
    [
        (["sweep", "-p", "deepseek-v3"], "measures on a GPU"),
        (["group", "-p", "deepseek-v4-pro"], "measures on a GPU"),
        (["tune", "-p", "deepseek-v3"], "measures on a GPU"),
        (["kernels", "-p", "deepseek-v3", "--md"], "without --from runs kernels on a GPU"),
        (["plot", "run.json", "-o", "plot.png"], "writes an image"),
        (["env"], "describes this machine"),
        (["bench"], "not a gemmbench command"),
    ],
)
def test_the_output_script_refuses_what_needs_a_gpu_or_is_no_saved_answer(args, why, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("docs/gemmbench_output.py").parse_args(args)
    assert exit_info.value.code == 2 and why in capsys.readouterr().err


def test_the_output_script_prints_what_the_command_prints_at_a_fixed_width(monkeypatch):
    from typer.testing import CliRunner

    from gemmbench.cli import app
    from gemmbench.cli.app import PIPE_WIDTH, out_console

    monkeypatch.setattr(out_console, "width", PIPE_WIDTH)
    printed = CliRunner().invoke(app, ["kernels", "--from", str(FIXTURE)]).stdout
    expected = "".join(line.rstrip() + "\n" for line in printed.splitlines())  # no padding of wrapped lines
    narrow = PIPE_WIDTH // 2  # a terminal's width must not change a doc block
    monkeypatch.setattr(out_console, "width", narrow)
    assert printed_by_output_script(["kernels", "--from", str(FIXTURE)]) == expected
    assert out_console.width == narrow  # and the console gets its width back


def test_the_output_script_draws_at_the_width_asked_for():
    text = printed_by_output_script(["--width", "80", "kernels", "--from", str(FIXTURE)])
    assert (
        max(len(line) for line in text.splitlines())
        <= 80
        < len(printed_by_output_script(["kernels", "--from", str(FIXTURE)]).splitlines()[0])
    )


def test_the_output_script_keeps_the_rows_asked_for_and_fences_code():
    whole = printed_by_output_script(["compare", str(FIXTURE), str(FIXTURE_B), "--md"])
    kept = printed_by_output_script(["--rows", r"\| 16 \|", "compare", str(FIXTURE), str(FIXTURE_B), "--md"])
    rows = [line for line in kept.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == next(line for line in whole.splitlines() if line.startswith("| GEMM"))
    assert len(rows) > 1 and all("| 16 |" in row for row in rows[1:])
    assert [line for line in whole.splitlines() if not line.startswith("|")] == [
        line for line in kept.splitlines() if not line.startswith("|")
    ]
    fenced = printed_by_output_script(["--code", "python", "recommend", str(FIXTURE), "--python"])
    assert fenced.startswith("```python\n") and fenced.endswith("\n```\n")


def test_the_output_script_fails_where_the_command_fails():
    with pytest.raises(SystemExit, match="exited 1"):
        printed_by_output_script(["recommend", "no_such_run.json", "--md"])


NO_TORCH = f"""
import contextlib, io, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from test_scripts import load_script
with contextlib.redirect_stdout(io.StringIO()):
    for args in (["show", {str(FIXTURE)!r}], ["recommend", {str(FIXTURE)!r}, "--md"],
                 ["compare", {str(FIXTURE)!r}, {str(FIXTURE_B)!r}, "--md"], ["kernels", "--from", {str(FIXTURE)!r}]):
        load_script("docs/gemmbench_output.py").main(args)
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))[:5])
"""


def test_the_output_script_never_imports_torch():
    result = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_preset_of_the_usage_page_loads_as_a_config_with_its_group(tmp_path):
    from gemmbench.spec.presets import load_config

    section = (DOCS / "usage.md").read_text().split("## Adding a preset", 1)[1]
    path = tmp_path / "preset.toml"
    path.write_text("\n".join(re.findall(r"```toml\n(.*?)```", section, re.S)))
    preset = load_config(path)
    router = next(gemm for gemm in preset.gemms if gemm.name == "router")
    assert router.top_k == 8 and router.per_forward == 58 and router.routing.n_group == 8
    assert [member.gemm.name for member in preset.groups[0].members] == ["fused_wqa_wkv", "indexer.weights_proj"]
