"""The package's own import graph, read from its source: every import goes to a layer the importing layer may
use (docs/design.md, architecture), no module imports itself back through others, and the answers that need
no GPU never load torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gemmbench"
FIXTURE = Path(__file__).parent / "fixtures" / "h200_deepseek_v3_sm90.json"

FOUNDATION = ("gemmbench.errors", "gemmbench.cache", "gemmbench.files", "gemmbench.version")
# What each layer may import (module-name prefixes), besides itself and the foundation.
MAY_IMPORT = {
    "gemmbench.spec": (),
    "gemmbench.records": ("gemmbench.spec",),
    "gemmbench.analysis": ("gemmbench.records", "gemmbench.spec"),
    "gemmbench.output": ("gemmbench.analysis", "gemmbench.records", "gemmbench.spec"),
    "gemmbench.timing": ("gemmbench.records", "gemmbench.spec"),
    "gemmbench.backends": ("gemmbench.timing", "gemmbench.spec"),
    "gemmbench.measure": (
        "gemmbench.backends",
        "gemmbench.timing",
        "gemmbench.records",
        "gemmbench.spec",
    ),
    "gemmbench.cli": ("gemmbench",),
    "gemmbench.shapes": ("gemmbench.spec",),  # the former home of the spec, kept for plugins
    "gemmbench.__main__": ("gemmbench.cli",),
}
# The package itself (the Python API) may import the measuring and record layers.
API_MAY_IMPORT = ("gemmbench.measure", "gemmbench.records")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The gemmbench modules `name` imports, at any depth of its code (function-local imports too)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("gemmbench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gemmbench"):
            for alias in node.names:  # `from gemmbench.backends import ext` imports the module ext
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> str | None:
    return next((layer for layer in MAY_IMPORT if name == layer or name.startswith(layer + ".")), None)


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_package():
    assert {"gemmbench.cli.app", "gemmbench.measure.session", "gemmbench.records.schema"} <= set(MODULES)
    assert "gemmbench.records.timers" in GRAPH["gemmbench.timing.timers"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_from_a_layer_above_it(name):
    layer = layer_of(name)
    if name == "gemmbench":
        allowed = API_MAY_IMPORT
    elif layer is None:
        allowed = ()  # the foundation imports nothing of gemmbench
    else:
        allowed = (layer, *MAY_IMPORT[layer])
    wrong = sorted(t for t in GRAPH[name] if not within(t, (*allowed, *FOUNDATION)))
    assert not wrong, f"{name} imports {wrong}, above its layer"


def test_no_backend_calls_the_timers_itself():
    """A tuned backend times its candidates with the timer the session gives its `tune` (backends/base.py),
    so that tuning happens before the correctness check, with the session's timers and rules."""
    timing_backends = sorted(
        n for n in MODULES if n.startswith("gemmbench.backends") and "gemmbench.timing.timers" in GRAPH[n]
    )
    assert not timing_backends


def test_there_is_no_import_cycle():
    """A package's __init__ importing its own modules is how packages work; every other path back is a cycle."""

    def edges(name):
        return [t for t in GRAPH[name] if t in MODULES and not (name.startswith(t + ".") and t != "gemmbench")]

    state: dict[str, str] = {}
    cycles = []

    def visit(name, path):
        state[name] = "open"
        for target in edges(name):
            if state.get(target) == "open":
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [name])
    assert not cycles


NO_TORCH = f"""
import sys
from typer.testing import CliRunner
import gemmbench.analysis.compare, gemmbench.analysis.decode, gemmbench.analysis.fleet, gemmbench.analysis.recommend
import gemmbench.output.compare, gemmbench.output.sweep, gemmbench.output.kernels, gemmbench.output.dispatch
import gemmbench.records.provenance, gemmbench.records.runfile, gemmbench.records.table, gemmbench.spec.presets
from gemmbench.cli import app
runner = CliRunner()
for args in (["--help"], ["decode", "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT"], ["show", {str(FIXTURE)!r}],
             ["show", {str(FIXTURE)!r}, "--csv", "-"], ["compare", {str(FIXTURE)!r}, {str(FIXTURE)!r}],
             ["recommend", {str(FIXTURE)!r}, "--python"], ["kernels", "--from", {str(FIXTURE)!r}]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
# Answers that may refuse these files (one device is no fleet; matplotlib may be absent): their imports count.
import tempfile
plotted = tempfile.mkdtemp() + "/plot.png"
for args in (["fleet", {str(FIXTURE)!r}], ["plot", {str(FIXTURE)!r}, "--output", plotted]):
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.output)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(loaded[:5])
"""


def test_the_answers_that_need_no_gpu_never_import_torch():
    result = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
