"""Smoke tests of scripts/ and research/: each Python script imports (so a library change that breaks one
fails here) and parses its arguments; each shell script is valid bash, sources a file that exists and calls
only scripts that exist."""

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
SCRIPTS = REPOSITORY / "scripts"
RESEARCH = REPOSITORY / "research"
# Arguments each Python script accepts, by its path from the repository root (a run file or an output folder
# are only parsed, never opened).
SAMPLE_ARGS = {
    "scripts/checks/aa_table.py": ["a.json", "b.json", "c.json"],
    "scripts/checks/ext_check.py": [],
    "scripts/checks/first_tier_goal.py": ["run.json"],
    "scripts/checks/layer_check_table.py": ["check.json"],
    "scripts/checks/layer_check.py": ["run.json", "out", "--points", "4", "--dry-run"],
    "scripts/checks/layer_kernels.py": ["out"],
    "scripts/checks/layer_table.py": ["run.json", "--m", "1,2"],
    "scripts/checks/routing_table.py": ["a.json"],
    "scripts/docs/gemmbench_output.py": ["recommend", "run.json", "--md"],
    "scripts/docs/regenerate.py": ["docs/context.md"],
    "scripts/docs/schema_table.py": [],
    "scripts/docs/tiers_table.py": ["run.json"],
    "research/checks/repeatability.py": ["a.json", "b.json", "--hot", "c.json"],
    "research/checks/sweep_phases.py": ["out.md", "sweep", "--m", "1"],
    "research/checks/validate_timers.py": ["out"],
    "research/experiments/engine_steps.py": ["out"],
    "research/experiments/graph_sizing.py": ["out"],
    "research/experiments/host_states.py": [],
    "research/experiments/layer_gap.py": ["out"],
    "research/experiments/layer_norm_l2.py": ["mm_out_dtype", "--layers", "29"],
    "research/experiments/layer_placement_ab.py": ["out"],
    "research/experiments/layer_replay_ab.py": ["out"],
    "research/experiments/placement_modes.py": ["out"],
    "research/experiments/power_drift.py": ["out"],
    "research/experiments/stopping_replay.py": ["a.json", "b.json"],
    "research/experiments/triton_compile_time.py": ["--arch", "90"],
    "research/experiments/router_ext_ab.py": ["out", "a.cu", "b.cu", "--m", "1,2", "--rounds", "2"],
    "research/experiments/router_ext_variants.py": ["out"],
    "research/experiments/router_floor.py": ["out"],
    "research/experiments/router_mma_stages.py": ["out"],
    "research/experiments/router_mma_variants.py": ["out", "--m", "1,16", "--quick"],
    "research/experiments/router_small_m_tuning.py": ["out"],
}


def load_script(relative: str, root: Path = SCRIPTS):
    path = root / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_python_script_has_a_smoke_test():
    found = [p.relative_to(REPOSITORY).as_posix() for folder in (SCRIPTS, RESEARCH) for p in folder.rglob("*.py")]
    assert sorted(found) == sorted(SAMPLE_ARGS)


@pytest.mark.parametrize("relative", sorted(SAMPLE_ARGS))
def test_python_script_imports_and_parses_its_arguments(relative, capsys):
    module = load_script(relative, REPOSITORY)
    module.parse_args(SAMPLE_ARGS[relative])
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--help"])
    assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out


SHELL_SCRIPTS = sorted([*SCRIPTS.rglob("*.sh"), *RESEARCH.rglob("*.sh")])


def test_the_shell_scripts_are_found():
    folders = {p.parent.relative_to(REPOSITORY).as_posix() for p in SHELL_SCRIPTS}
    assert folders == {"scripts/checks", "research/checks"}


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_is_valid_and_calls_existing_scripts(path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    for sourced in re.findall(r'source "\$\(dirname "\$0"\)/([^"]+)"', text):
        assert (path.parent / sourced).resolve().is_file(), f"{path.name} sources {sourced}, which does not exist"
    for called in re.findall(r"(?<![\w/.])(?:scripts|research)/[\w/]+\.(?:py|sh)", text):
        assert (REPOSITORY / called).is_file(), f"{path.name} calls {called}, which does not exist"


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_the_python_a_shell_script_embeds_imports_what_exists(path):
    for module, names in re.findall(r"from (gemmbench[\w.]*) import ([\w, ]+)", path.read_text()):
        imported = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), f"{module}.{name}"
