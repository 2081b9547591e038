"""Backends of your own: --plugin files and modules, entry points, the contract, and the examples."""

import csv
import io
from pathlib import Path

import fakes
import pytest
import torch
from typer.testing import CliRunner

from gemmbench import backends
from gemmbench.backends import plugins
from gemmbench.backends.producers import PRODUCERS
from gemmbench.cli import app
from gemmbench.cli.app import out_console
from gemmbench.errors import GemmbenchError

EXAMPLES = Path(__file__).parent.parent / "examples"
CPU_PLUGIN = EXAMPLES / "chunked_fp32_plugin.py"
runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_registry(isolated_registry):
    """Every test starts from the built-in backends and contexts, and leaves them so."""
    built_in = dict(PRODUCERS)
    yield
    PRODUCERS.clear()  # plugins' producers (contexts) go again
    PRODUCERS.update(built_in)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="gemmbench")


def write_plugin(tmp_path, body: str, name: str = "mine.py") -> Path:
    path = tmp_path / name
    path.write_text("import torch\nfrom gemmbench.backends import Backend\n\n" + body)
    return path


def cpu_sweep_to_csv(plugin: Path, backends: str, *more, selection=("--shape", "4x8x16")):
    """A sweep of one small shape (or `selection`) on the CPU with `plugin` loaded, its CSV on stdout."""
    return invoke(
        "sweep",
        "--plugin",
        plugin,
        "--backend",
        backends,
        *selection,
        "--device",
        "cpu",
        "--no-save",
        "--csv",
        "-",
        "-q",
        *more,
    )


def test_the_cpu_example_runs_end_to_end():
    result = invoke(
        "sweep", "--plugin", CPU_PLUGIN, "--backend", "chunked_fp32", "--shape", "1x64x128", "--no-save", "--csv", "-"
    )
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["backend"], row["status"]) == ("chunked_fp32", "ok") and float(row["rel_err"]) < 1e-6


def test_the_vllm_example_is_a_skipped_row_with_the_reason_where_it_cannot_run():
    result = invoke(
        "sweep",
        "--plugin",
        EXAMPLES / "vllm_router_plugin.py",
        "-b",
        "vllm_dsv3_router_gemm",
        "--device",
        "cpu",
        "--m",
        "1",
        "--no-save",
        "--csv",
        "-",
    )
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["status"] == "skipped" and row["reason"] == "no CUDA device"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the reason on a GPU machine without vLLM")
def test_the_vllm_example_says_when_vllm_is_missing():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    (backend,) = plugins.load_plugins([str(EXAMPLES / "vllm_router_plugin.py")], entry_points=False)
    from gemmbench.spec.presets import load_preset

    case = load_preset("deepseek-v3").gemms[0].case(1)
    assert backend.unavailable_reason(case, torch.device("cuda")) == "vLLM is not installed (pip install vllm)"


def test_list_shows_where_a_backend_comes_from():
    result = invoke("list", "--plugin", CPU_PLUGIN)
    assert result.exit_code == 0 and "chunked_fp32" in result.stdout and "│ plugin " in result.stdout
    assert "│ built-in" in result.stdout and backends.REGISTRY["chunked_fp32"].origin == f"plugin {CPU_PLUGIN}"


def listed_backends(stdout: str) -> list[str]:
    """The backend names of `gemmbench list`'s first table."""
    table = stdout.split("Contexts:", 1)[0]
    names = [line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")]
    return [name for name in names if name]  # a row folded onto more lines leaves the name cell empty


def test_the_tests_fake_backend_is_listed_only_where_its_plugin_is_loaded(monkeypatch):
    monkeypatch.setattr(out_console, "width", 300)  # the origin on one line, whatever the checkout's path
    built_in = invoke("list", "--device", "cpu")
    assert built_in.exit_code == 0 and "upcast" in listed_backends(built_in.stdout)
    assert "fake" not in listed_backends(built_in.stdout)
    loaded = invoke("list", "--plugin", fakes.__file__, "--device", "cpu")
    assert listed_backends(loaded.stdout)[-1] == "fake" and f"plugin {fakes.__file__}" in loaded.stdout


def test_a_backend_outside_the_default_set_runs_only_when_named(tmp_path, monkeypatch):
    plugin = write_plugin(
        tmp_path,
        "class B(Backend):\n    name = 'on_request'\n    code = 'x'\n    in_default_set = False\n"
        "    def prepare(self, case, inputs):\n"
        "        return lambda: torch.mm(inputs.x.float(), inputs.w.float().t(), out=inputs.out)\n\n"
        "BACKENDS = [B()]\n",
    )
    monkeypatch.setattr(out_console, "width", 300)  # the cell on one line, whatever the plugin's path
    listed = invoke("list", "--plugin", plugin)
    assert listed.exit_code == 0 and "only with --backend on_request" in listed.stdout
    default = invoke("sweep", "--plugin", plugin, "--shape", "1x64x128", "--no-save", "--csv", "-")
    named = invoke(
        "sweep", "--plugin", plugin, "--backend", "on_request", "--shape", "1x64x128", "--no-save", "--csv", "-"
    )
    assert default.exit_code == 0 and "on_request" not in default.stdout
    assert named.exit_code == 0 and [row["status"] for row in csv.DictReader(io.StringIO(named.stdout))] == ["ok"]


def test_a_module_name_works_like_a_file(tmp_path, monkeypatch):
    write_plugin(
        tmp_path,
        "class B(Backend):\n    name = 'by_module'\n    code = 'x'\n"
        "    def prepare(self, case, inputs):\n        return lambda: inputs.out\n\nBACKENDS = [B()]\n",
        name="my_gemm_plugin.py",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (backend,) = plugins.load_plugins(["my_gemm_plugin"], entry_points=False)
    assert backends.REGISTRY["by_module"] is backend and backend.origin == "plugin my_gemm_plugin"


BROKEN = [
    (
        "raise ImportError('no module named fancy_kernels')\n",
        "failed to import: ImportError: no module named fancy_kernels",
    ),
    ("x = 1\n", "defines no BACKENDS list"),
    ("BACKENDS = [object()]\n", "is not a gemmbench.backends.Backend instance"),
    ("class B(Backend):\n    name = 'no_prepare'\n    code = 'x'\n\nBACKENDS = [B()]\n", "does not implement prepare"),
    (
        "class B(Backend):\n    name = 'bad name!'\n    code = 'x'\n    def prepare(self, c, i):\n        pass\n\n"
        "BACKENDS = [B()]\n",
        "is not letters, digits",
    ),
    (
        "class B(Backend):\n    name = 'upcast'\n    code = 'x'\n    def prepare(self, c, i):\n        pass\n\n"
        "BACKENDS = [B()]\n",
        "the backend name 'upcast' is taken (built-in)",
    ),
    (
        "class B(Backend):\n    name = 'twin'\n    code = 'x'\n    def prepare(self, c, i):\n        pass\n\n"
        "BACKENDS = [B(), B()]\n",
        "the backend name 'twin' is taken (twice in this plugin)",
    ),
    (
        "class B(Backend):\n    name = 'ranged'\n    code = 'x'\n    max_m = '16'\n"
        "    def prepare(self, c, i):\n        pass\n\nBACKENDS = [B()]\n",
        "max_m is '16', not a positive int or None",
    ),
    (
        "class B(Backend):\n    name = 'pdl'\n    code = 'x'\n    launches_with_pdl = 1\n"
        "    def prepare(self, c, i):\n        pass\n\nBACKENDS = [B()]\n",
        "launches_with_pdl is 1, not True or False",
    ),
    (
        "from gemmbench.backends.producers import Producer\n"
        "class P(Producer):\n    name = 'silent'\n    def prepare(self, c, h, w, x):\n        pass\n\n"
        "PRODUCERS = [P()]\n",
        "producer 'silent' does not say what it runs",
    ),
]


@pytest.mark.parametrize("body, message", BROKEN)
def test_a_broken_plugin_is_one_error_line_naming_it(tmp_path, body, message, fake_device):
    path = write_plugin(tmp_path, body)
    result = invoke("sweep", "--plugin", path, "-b", "fake", "--device", "cpu", "--no-save")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: plugin {path}") and message in lines[0] and "Traceback" not in result.output


def test_a_missing_plugin_file_is_named(tmp_path):
    with pytest.raises(GemmbenchError, match="nope.py: no such file — check the path"):
        plugins.load_plugins([str(tmp_path / "nope.py")], entry_points=False)
    not_python = tmp_path / "backends.json"
    not_python.write_text("{}")
    with pytest.raises(GemmbenchError, match="is not a Python file"):
        plugins.load_plugins([str(not_python)], entry_points=False)


def test_a_plugin_that_raises_in_a_call_is_an_error_row(tmp_path):
    path = write_plugin(
        tmp_path,
        "class B(Backend):\n    name = 'raiser'\n    code = 'x'\n"
        "    def prepare(self, case, inputs):\n"
        "        def call():\n            raise RuntimeError('kernel launch failed')\n"
        "        return call\n\nBACKENDS = [B()]\n",
    )
    result = invoke(
        "sweep", "--plugin", path, "-b", "raiser", "--device", "cpu", "--shape", "2x8x16", "--no-save", "--csv", "-"
    )
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert result.exit_code == 1 and row["status"] == "error" and "kernel launch failed" in row["reason"]


def test_installed_packages_register_through_entry_points(monkeypatch):
    import importlib.metadata

    point = importlib.metadata.EntryPoint(
        name="chunked", value="gemmbench_plugin_chunked_fp32_plugin:BACKENDS", group=plugins.ENTRY_POINT_GROUP
    )
    module = plugins._import_file(CPU_PLUGIN)  # stands in for an installed package's module
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point] if group == point.group else [])
    loaded = plugins.load_plugins()
    assert [b.name for b in loaded] == ["chunked_fp32"] and backends.REGISTRY["chunked_fp32"] is module.BACKENDS[0]
    assert loaded[0].origin.startswith("entry point chunked")


def test_the_plugin_api_imports_from_its_documented_homes_and_its_former_ones(fake_device):
    from gemmbench.backends import Backend, GemmCall, GemmInputs  # noqa: F401 - the documented imports
    from gemmbench.shapes import Case as FormerCase
    from gemmbench.spec import Case
    from gemmbench.timing.inputs import GemmInputs as Defined

    assert FormerCase is Case and GemmInputs is Defined and issubclass(backends.REGISTRY["fake"].__class__, Backend)


def test_a_plugin_adds_a_context_of_its_own(tmp_path):
    path = write_plugin(
        tmp_path,
        "from gemmbench.backends.producers import Producer\n"
        "class Halve(Producer):\n"
        "    name = 'halve'\n"
        "    code = 'h / 2'\n"
        "    def prepare(self, case, hidden, weight, x):\n"
        "        return lambda: x.copy_(hidden / 2)\n"
        "PRODUCERS = [Halve()]\n",
    )
    result = invoke(
        "sweep",
        "--plugin",
        path,
        "-b",
        "upcast",
        "--device",
        "cpu",
        "--shape",
        "2x8x16",
        "--context",
        "halve",
        "--no-save",
        "--csv",
        "-",
        "-q",
        "--budget-ms",
        "1",
    )
    assert result.exit_code == 0, result.output
    alone, layer = list(csv.DictReader(io.StringIO(result.stdout)))
    assert alone["context"] == "" and alone["status"] == "ok"
    assert layer["context"] == "halve" and layer["status"] == "ok" and float(layer["latency_median_us"]) > 0
    assert float(layer["rel_err"]) < 1e-6  # against the reference of what the plugin's producer wrote


def test_a_backend_that_writes_into_its_input_is_its_own_error_row_and_the_next_backends_pass(tmp_path, fake_device):
    plugin = write_plugin(
        tmp_path,
        """
class Scribbler(Backend):
    name = "scribbler"
    code = "out = x @ w.T, then x.zero_()"

    def prepare(self, case, inputs):
        x, w, out = inputs.x, inputs.w, inputs.out

        def call():
            torch.mm(x.float(), w.float().t(), out=out)
            x.zero_()

        return call


BACKENDS = [Scribbler()]
""",
    )
    result = cpu_sweep_to_csv(plugin, "scribbler,fake")
    assert result.exit_code == 1, result.output  # an error row
    rows = {row["backend"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["scribbler"]["status"] == "error" and "scribbler wrote into its input x" in rows["scribbler"]["reason"]
    assert rows["fake"]["status"] == "ok" and float(rows["fake"]["rel_err"]) < 1e-6


def test_a_backend_that_returns_its_result_instead_of_writing_out_is_told_so(tmp_path, fake_device):
    plugin = write_plugin(
        tmp_path,
        """
class Elsewhere(Backend):
    name = "elsewhere"
    code = "x.float() @ w.float().T, returned, out untouched"

    def prepare(self, case, inputs):
        x, w = inputs.x, inputs.w
        return lambda: (x.float() @ w.float().t())[:, :3]


BACKENDS = [Elsewhere()]
""",
    )
    result = cpu_sweep_to_csv(plugin, "elsewhere,fake")
    assert result.exit_code == 1, result.output
    rows = {row["backend"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    reason = rows["elsewhere"]["reason"]
    assert rows["elsewhere"]["status"] == "error"
    assert (
        "elsewhere never wrote out (it returned a tensor of (4, 3) torch.float32 instead; out is (4, 8) torch.float32)"
        in reason
    )
    assert "computes into inputs.out" in reason and "rel_err" not in reason
    assert rows["fake"]["status"] == "ok"


def test_what_a_plugin_prints_goes_to_stderr_and_the_csv_on_stdout_stays_clean(tmp_path):
    plugin = write_plugin(
        tmp_path,
        """
class Chatty(Backend):
    name = "chatty"
    code = "x.float() @ w.float().T, printing as it goes"

    def prepare(self, case, inputs):
        print("chatty: preparing")
        x, w, out = inputs.x, inputs.w, inputs.out

        def call():
            print("chatty: called")
            torch.mm(x.float(), w.float().t(), out=out)

        return call


BACKENDS = [Chatty()]
""",
    )
    result = cpu_sweep_to_csv(plugin, "chatty")
    assert result.exit_code == 0, result.output
    assert "chatty:" not in result.stdout and "chatty: called" in result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["backend"], row["status"]) == ("chatty", "ok")


def docs_example(section: str) -> str:
    """The Python example of a section of docs/plugins.md."""
    text = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    return text.split(section, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_tuned_example_of_the_plugin_docs_is_a_plugin_that_says_it_needs_a_gpu(tmp_path):
    plugin = tmp_path / "faster_way.py"
    plugin.write_text(docs_example("## A tuned backend"))
    result = cpu_sweep_to_csv(plugin, "faster_way", "--allow-empty")
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["status"], row["reason"]) == ("skipped", "needs a GPU")


@pytest.mark.gpu
def test_the_tuned_example_of_the_plugin_docs_is_tuned_by_the_sweep_before_its_check(tmp_path):
    plugin = tmp_path / "faster_way.py"
    plugin.write_text(docs_example("## A tuned backend"))
    args = ("--no-save", "--csv", "-", "-q")
    result = invoke("sweep", "--plugin", plugin, "--backend", "faster_way", "--shape", "256x7168", "--m", "1", *args)
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["status"] == "ok" and row["backend_config"] in ("out_dtype", "upcast"), row


def test_the_producer_example_of_the_plugin_docs_runs_as_a_context(tmp_path, fake_device):
    plugin = tmp_path / "add_norm.py"
    plugin.write_text(docs_example("## A producer of your own"))
    result = cpu_sweep_to_csv(plugin, "fake", "--context", "torch_add_norm")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["context"], row["status"]) for row in rows] == [("", "ok"), ("torch_add_norm", "ok")]


FAULTY_HOOKS = """
class Faulty(Backend):
    name = "faulty"
    code = "x.float() @ w.float().T, with faulty hooks"

    def unavailable_reason(self, case, device):
        return super().unavailable_reason(case, device) or case.m > 2  # a bool, not a reason

    def configuration(self, case):
        raise KeyError("no configuration")

    def prepare(self, case, inputs):
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: torch.mm(x.float(), w.float().t(), out=out)


BACKENDS = [Faulty()]
"""


def test_a_plugins_faulty_hooks_are_its_own_rows_and_every_row_is_kept(tmp_path):
    plugin = write_plugin(tmp_path, FAULTY_HOOKS)
    result = cpu_sweep_to_csv(plugin, "faulty,upcast", selection=("--shape", "8x16", "--m", "1,4"))
    rows = {(r["m"], r["backend"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    timed = rows["1", "faulty"]  # its configuration() raised after it was timed: the row keeps its times
    assert (
        timed["status"] == "ok" and timed["latency_median_us"] and "configuration() raised KeyError" in timed["reason"]
    )
    refused = rows["4", "faulty"]  # unavailable_reason answered True: an error row that says so, not a crash
    assert refused["status"] == "error" and "returned True" in refused["reason"]
    assert rows["4", "upcast"]["status"] == "ok"


def test_list_names_a_query_that_answers_no_reason(tmp_path):
    plugin = write_plugin(tmp_path, FAULTY_HOOKS.replace("case.m > 2", "case.m > 0"))
    result = invoke("list", "--plugin", plugin, "--device", "cpu")
    assert result.exit_code == 0 and "returned True" in result.stdout, result.output


def test_a_plugin_that_fails_to_register_registers_nothing_and_loads_once_fixed(tmp_path):
    producer = (
        "from gemmbench.backends.producers import Producer\n"
        "class P(Producer):\n    name = 'mixed_producer'\n    code = 'x.copy_(h)'\n"
        "    def prepare(self, c, h, w, x):\n        return lambda: x.copy_(h)\n\n"
        "class B(Backend):\n    name = NAME\n    code = 'x'\n    def prepare(self, c, i):\n        pass\n\n"
        "PRODUCERS = [P()]\nBACKENDS = [B()]\n"
    )
    plugin = write_plugin(tmp_path, "NAME = 'bad name!'\n" + producer)
    with pytest.raises(GemmbenchError, match="is not letters"):
        plugins.load_plugins([str(plugin)], entry_points=False)
    assert "mixed_producer" not in PRODUCERS
    write_plugin(tmp_path, "NAME = 'good_name'\n" + producer)
    (backend,) = plugins.load_plugins([str(plugin)], entry_points=False)
    assert backend.name == "good_name" and "mixed_producer" in PRODUCERS


def test_a_plugin_file_edited_since_it_was_loaded_is_loaded_again(tmp_path):
    body = "class B(Backend):\n    name = NAME\n    code = 'x'\n    def prepare(self, c, i):\n        pass\n\n"
    plugin = write_plugin(tmp_path, "NAME = 'first'\n" + body + "BACKENDS = [B()]\n")
    (first,) = plugins.load_plugins([str(plugin)], entry_points=False)
    (again,) = plugins.load_plugins([f"{tmp_path}/./{plugin.name}"], entry_points=False)  # another spelling
    assert again is first
    write_plugin(tmp_path, "NAME = 'second'\n" + body + "BACKENDS = [B()]\n# edited\n")
    (second,) = plugins.load_plugins([str(plugin)], entry_points=False)
    assert second.name == "second" and "first" not in backends.REGISTRY and backends.REGISTRY["second"] is second


def test_a_folder_of_the_plugins_name_does_not_hide_the_module(tmp_path, monkeypatch):
    package = tmp_path / "my_kernels"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from gemmbench.backends import Backend\n\n"
        "class B(Backend):\n    name = 'packaged'\n    code = 'x'\n    def prepare(self, c, i):\n        pass\n\n"
        "BACKENDS = [B()]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (backend,) = plugins.load_plugins(["my_kernels"], entry_points=False)
    assert backend.name == "packaged"


def test_a_broken_installed_plugin_names_the_package_to_mend_or_uninstall(monkeypatch):
    import importlib.metadata
    from types import SimpleNamespace

    def load():
        raise ImportError("no module named fancy_kernels")

    point = SimpleNamespace(name="fancy", value="fancy_kernels", dist=SimpleNamespace(name="fancy-gemms"), load=load)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point])
    with pytest.raises(GemmbenchError, match=r"entry point fancy .*pip uninstall fancy-gemms"):
        plugins.load_plugins()


def test_what_a_plugin_prints_as_it_is_imported_goes_to_stderr(tmp_path):
    plugin = write_plugin(
        tmp_path,
        "print('loading my kernels')\n\n"
        "class B(Backend):\n    name = 'loud'\n    code = 'x'\n"
        "    def prepare(self, case, inputs):\n"
        "        x, w, out = inputs.x, inputs.w, inputs.out\n"
        "        return lambda: torch.mm(x.float(), w.float().t(), out=out)\n\n"
        "BACKENDS = [B()]\n",
    )
    result = cpu_sweep_to_csv(plugin, "loud")
    assert result.exit_code == 0 and "loading my kernels" in result.stderr, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["backend"] == "loud"


@pytest.mark.parametrize(
    "call, reason",
    [
        ("None", "context faulty_norm: its call returned NoneType, not the x it wrote"),
        ("hidden.float()", "context faulty_norm: its call returned (2, 16) torch.float32 on cpu, not an x of (2, 16)"),
        ("hidden[:1]", "its call returned (1, 16) torch.bfloat16"),
        ("1 / 0", "context faulty_norm: its call raised ZeroDivisionError"),
    ],
)
def test_a_faulty_producer_is_named_in_its_rows_not_the_backend_after_it(tmp_path, call, reason):
    path = write_plugin(
        tmp_path,
        "from gemmbench.backends.producers import Producer\n"
        "class Faulty(Producer):\n"
        "    name = 'faulty_norm'\n"
        "    code = 'a norm with a bug'\n"
        "    def prepare(self, case, hidden, weight, x):\n"
        f"        return lambda: {call}\n"
        "PRODUCERS = [Faulty()]\n",
    )
    result = invoke(
        "sweep", "--plugin", path, "-b", "upcast", "--device", "cpu", "--shape", "2x8x16", "--context", "faulty_norm",
        "--no-save", "--csv", "-", "-q", "--budget-ms", "1",
    )  # fmt: skip
    alone, layer = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.exit_code == 1 and alone["status"] == "ok", result.output
    assert layer["status"] == "error" and reason in layer["reason"], layer["reason"]
