"""Smoke tests of scripts/: each Python script imports (so a library change that breaks one fails here)
and parses its arguments; each shell script is valid bash and calls only scripts that exist."""

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
# Arguments each Python script accepts (a run file or an output folder are only parsed, never opened).
SAMPLE_ARGS = {
    "checks/ext_check.py": [],
    "checks/first_tier_goal.py": ["run.json"],
    "checks/layer_check.py": ["run.json", "out", "--points", "4", "--dry-run"],
    "checks/layer_kernels.py": ["out"],
    "checks/layer_table.py": ["run.json", "--m", "1,2"],
    "checks/repeatability.py": ["a.json", "b.json", "--hot", "c.json"],
    "checks/aa_table.py": ["a.json", "b.json", "c.json"],
    "checks/routing_table.py": ["a.json"],
    "docs/gemmbench_output.py": ["recommend", "run.json", "--md"],
    "docs/schema_table.py": [],
    "docs/tiers_table.py": ["run.json"],
    "checks/validate_timers.py": ["out"],
    "experiments/graph_sizing.py": ["out"],
    "experiments/host_states.py": [],
    "experiments/layer_norm_l2.py": ["mm_out_dtype", "--layers", "29"],
    "experiments/layer_placement_ab.py": ["out"],
    "experiments/layer_replay_ab.py": ["out"],
    "experiments/power_drift.py": ["out"],
    "experiments/router_ext_ab.py": ["out", "a.cu", "b.cu", "--m", "1,2", "--rounds", "2"],
    "experiments/router_ext_variants.py": ["out"],
    "experiments/router_floor.py": ["out"],
    "experiments/router_mma_stages.py": ["out"],
    "experiments/router_mma_variants.py": ["out", "--m", "1,16", "--quick"],
    "experiments/router_small_m_tuning.py": ["out"],
}


def load_script(relative: str):
    path = SCRIPTS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_python_script_has_a_smoke_test():
    assert sorted(str(p.relative_to(SCRIPTS)) for p in SCRIPTS.rglob("*.py")) == sorted(SAMPLE_ARGS)


@pytest.mark.parametrize("relative", sorted(SAMPLE_ARGS))
def test_python_script_imports_and_parses_its_arguments(relative, capsys):
    module = load_script(relative)
    module.parse_args(SAMPLE_ARGS[relative])
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--help"])
    assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(SCRIPTS.rglob("*.sh")), ids=lambda p: p.name)
def test_shell_script_is_valid_and_calls_existing_scripts(path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    repository = SCRIPTS.parent
    for called in re.findall(r"scripts/[\w/]+\.(?:py|sh)", path.read_text()):
        assert (repository / called).is_file(), f"{path.name} calls {called}, which does not exist"


@pytest.mark.parametrize("path", sorted(SCRIPTS.rglob("*.sh")), ids=lambda p: p.name)
def test_the_python_a_shell_script_embeds_imports_what_exists(path):
    for module, names in re.findall(r"from (gemmbench[\w.]*) import ([\w, ]+)", path.read_text()):
        imported = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), f"{module}.{name}"
