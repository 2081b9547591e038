"""The GEMM in its layer (`--context`), on the CPU: rows alone and per layer after each producer, layers on
the made-up device (fakes.py), skipped and error rows, PDL variants, the engines' producers and router GEMM
where FlashInfer is absent, and the answers that read layer rows (compare, recommend, dispatch)."""

import csv
import importlib.util
import io
import json
from dataclasses import replace

import pytest
import torch
from fakes import FAKE_KERNEL_SWITCH_US, FAKE_LAUNCH_US, FAKE_TIMER, Fake, FakeBench, producer_us
from samples import CASE
from typer.testing import CliRunner

import gemmbench
from gemmbench.analysis.compare import compare_groups, compare_runs
from gemmbench.analysis.policy import ENGINE_CONTEXTS, FALLBACK_BACKEND
from gemmbench.analysis.recommend import dispatch_view, recommend
from gemmbench.backends import REGISTRY, Backend, GemmInputs, default_backends
from gemmbench.backends.engines import INSTALL_FLASHINFER, INSTALL_SGL_KERNEL
from gemmbench.backends.producers import PRODUCERS, Producer, context_names, select_producers
from gemmbench.cli import app
from gemmbench.errors import UsageError
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.points import measure_cases
from gemmbench.measure.session import plan_sweep
from gemmbench.records import ERROR, OK, SKIPPED, Provenance, Record, Run, TimerSummary
from gemmbench.records.record import DEVICE
from gemmbench.records.runfile import SCHEMA_VERSION, load_run
from gemmbench.spec.cases import Case
from gemmbench.spec.presets import load_preset
from gemmbench.spec.steps import MEASURE, PROFILE
from gemmbench.timing import timers

CPU = torch.device("cpu")
FAST = MeasureOptions(warmup_s=0.0, target=timers.Target(budget_s=0.001, min_time_s=0.0), eager_windows=2)
FLASHINFER_CONTEXTS = (
    "flashinfer_rmsnorm",
    "flashinfer_rmsnorm_pdl",
    "flashinfer_fused_add_rmsnorm",
    "flashinfer_fused_add_rmsnorm_pdl",
)
runner = CliRunner()


def sweep_rows(*args):
    result = runner.invoke(app, ["sweep", "--device", "cpu", "--no-save", "--allow-empty", "--csv", "-", "-q", *args])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


# Rows alone and in each layer


def test_several_contexts_give_the_rows_alone_then_each_layers_rows_with_the_producer_and_switch_added(fake_device):
    rows = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", "norm,copy")
    assert [(row["context"], row["status"]) for row in rows] == [("", OK), ("norm", OK), ("copy", OK)]
    alone, *layers = rows
    producer_device = producer_us(Case("custom", "8x16", "custom", 4, 8, 16))
    producer_latency = producer_device + FAKE_LAUNCH_US
    assert producer_device > 0
    for row in layers:
        assert float(row["device_median_us"]) == pytest.approx(
            float(alone["device_median_us"]) + producer_device + FAKE_KERNEL_SWITCH_US
        )
        assert float(row["latency_median_us"]) == pytest.approx(
            float(alone["latency_median_us"]) + producer_latency + FAKE_KERNEL_SWITCH_US
        )
        assert row["device_timer"] == FAKE_TIMER
        assert row["tflops"] == row["gbps"] == ""  # the GEMM's throughput is of a row alone, not of a layer
    assert float(alone["tflops"]) > 0


def test_a_sweep_of_several_cases_yields_each_cases_rows_alone_then_per_context(fake_device):
    run = gemmbench.sweep(shapes=["8x16"], m=[1, 2], backends=["fake"], device="cpu", context=["copy", "norm"])
    assert [(r.m, r.context) for r in run.records] == [
        (1, None),
        (1, "copy"),
        (1, "norm"),
        (2, None),
        (2, "copy"),
        (2, "norm"),
    ]
    assert run.provenance.context == "copy,norm" and run.complete and run.planned == 6
    assert [r.in_layer for r in run.records] == [False, True, True] * 2
    assert run.records[1].view == (*run.records[0].case.shape_key, "copy")


def test_the_plan_measures_every_row_and_profiles_only_the_rows_alone(fake_device):
    plan = plan_sweep(shapes=["4x8x16"], backends=["fake", "mm_out_dtype"], device="cpu", context="norm,copy")
    assert [p.name for p in plan.producers] == ["norm", "copy"] and plan.rows_per_case == 6
    on_gpu = replace(plan, device=torch.device("cuda"))  # steps only: nothing runs
    assert on_gpu.profiles
    labels = [(step.phase, step.backend) for step in on_gpu.steps]
    assert labels == [
        (MEASURE, "fake"),
        (MEASURE, "mm_out_dtype"),
        (MEASURE, "fake after norm"),
        (MEASURE, "mm_out_dtype after norm"),
        (MEASURE, "fake after copy"),
        (MEASURE, "mm_out_dtype after copy"),
        (PROFILE, "fake"),
        (PROFILE, "mm_out_dtype"),
    ]


def test_on_the_cpu_the_layer_is_timed_with_the_host_clock():
    alone, layer = sweep_rows("-b", "upcast", "--shape", "4x8x16", "--context", "copy", "--budget-ms", "1")
    assert alone["context"] == "" and layer["context"] == "copy"
    assert layer["status"] == OK and float(layer["rel_err"]) < 1e-6
    assert layer["latency_timer"] == "host_clock" and layer["device_median_us"] == ""
    low, high = float(layer["latency_ci_low_us"]), float(layer["latency_ci_high_us"])
    assert 0 < low <= float(layer["latency_median_us"]) <= high
    assert layer["tflops"] == "" and float(alone["tflops"]) > 0


def test_a_cuda_only_producer_on_the_cpu_is_a_skipped_layer_row_beside_the_row_alone(fake_device):
    alone, layer = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", "gemmbench_norm_pdl_after_stores")
    assert alone["status"] == OK and alone["context"] == ""
    assert layer["status"] == SKIPPED and layer["context"] == "gemmbench_norm_pdl_after_stores"
    assert layer["reason"] == "context gemmbench_norm_pdl_after_stores: a CUDA kernel: needs a CUDA device"


def test_norm_pdl_is_still_accepted_as_gemmbench_norm_pdl_start(fake_device):
    assert select_producers("norm_pdl") == (PRODUCERS["gemmbench_norm_pdl_start"],)
    assert select_producers(["norm_pdl", "gemmbench_norm_pdl_start", "none"]) == (
        PRODUCERS["gemmbench_norm_pdl_start"],
    )
    _, layer = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", "norm_pdl")
    assert layer["context"] == "gemmbench_norm_pdl_start" and layer["status"] == SKIPPED
    assert layer["reason"] == "context gemmbench_norm_pdl_start: a CUDA kernel: needs a CUDA device"


def test_an_unknown_context_is_one_error_line_naming_the_known_ones(fake_device):
    result = runner.invoke(app, ["sweep", "-b", "fake", "--device", "cpu", "--context", "norm,rmsnorm", "--no-save"])
    assert result.exit_code == 2
    known = ", ".join(context_names())
    assert result.stderr.strip() == f"Error: unknown context 'rmsnorm' — choose from: {known}"
    assert known.startswith("none, copy, norm, gemmbench_norm_pdl_start, gemmbench_norm_pdl_after_stores, ")
    assert all(name in context_names() for name in FLASHINFER_CONTEXTS)
    with pytest.raises(UsageError, match="unknown context 'rmsnorm'"):
        plan_sweep(shapes=["4x8x16"], backends=["fake"], device="cpu", context=["copy", "rmsnorm"])


# The engines' kernels, where FlashInfer is absent


def engines_absent(monkeypatch, *packages):
    """The engine packages absent, as on CI; where one is installed, made to look absent."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in packages else find_spec(name, *a))


@pytest.fixture
def no_flashinfer(monkeypatch):
    engines_absent(monkeypatch, "flashinfer")


@pytest.fixture
def no_vllm(monkeypatch):
    engines_absent(monkeypatch, "vllm")


def test_flashinfer_contexts_are_skipped_rows_that_say_what_to_install(no_flashinfer, fake_device):
    rows = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", ",".join(FLASHINFER_CONTEXTS))
    assert [(row["context"], row["status"]) for row in rows] == [("", OK)] + [(c, SKIPPED) for c in FLASHINFER_CONTEXTS]
    assert [row["reason"] for row in rows[1:]] == [f"context {c}: {INSTALL_FLASHINFER}" for c in FLASHINFER_CONTEXTS]
    assert "pip install 'gemmbench[engines]', or flashinfer-python" in INSTALL_FLASHINFER


def test_vllms_norms_are_contexts_skipped_with_the_install_hint_where_vllm_is_absent(no_vllm, fake_device):
    contexts = ("vllm_rms_norm", "vllm_fused_add_rms_norm")
    assert all(PRODUCERS[c].origin == "vllm" and PRODUCERS[c].pdl == "no" for c in contexts)
    rows = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", ",".join(contexts))
    assert [(row["context"], row["status"]) for row in rows] == [("", OK)] + [(c, SKIPPED) for c in contexts]
    assert [row["reason"] for row in rows[1:]] == [
        f"context {c}: vLLM is not installed (pip install vllm)" for c in contexts
    ]


def test_flashinfers_router_gemm_is_a_default_backend_skipped_with_the_install_hint(no_flashinfer):
    backend = REGISTRY["flashinfer_router_gemm"]
    assert backend in default_backends() and backend.origin == "flashinfer" and backend.launches_with_pdl
    rows = sweep_rows("-b", "flashinfer_router_gemm", "--shape", "4x256x7168", "--context", "norm")
    assert [(row["context"], row["pdl"], row["status"]) for row in rows] == [
        ("", "False", SKIPPED),
        ("", "True", SKIPPED),
        ("norm", "False", SKIPPED),
        ("norm", "True", SKIPPED),
    ]
    assert {row["reason"] for row in rows} == {INSTALL_FLASHINFER}  # before the CUDA-device check


def test_sglangs_router_gemm_is_a_default_backend_skipped_with_the_install_hint(monkeypatch):
    engines_absent(monkeypatch, "sgl_kernel")
    backend = REGISTRY["sglang_router_gemm"]
    assert backend in default_backends() and backend.origin == "sgl_kernel" and not backend.launches_with_pdl
    rows = sweep_rows("-b", "sglang_router_gemm", "--shape", "4x256x7168", "--context", "norm")
    assert [(row["context"], row["pdl"], row["status"]) for row in rows] == [("", "", SKIPPED), ("norm", "", SKIPPED)]
    assert {row["reason"] for row in rows} == {INSTALL_SGL_KERNEL}


def test_sglangs_router_gemm_says_which_shapes_and_gpus_it_runs(monkeypatch):
    from gemmbench.backends import engines

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # sgl-kernel "installed"
    backend, cuda = REGISTRY["sglang_router_gemm"], torch.device("cuda")
    monkeypatch.setattr(engines, "capability", lambda device: (9, 0))
    assert backend.unavailable_reason(Case("m", "router", "router", 16, 384, 7168), cuda) is None
    assert backend.unavailable_reason(Case("m", "router", "router", 4, 256, 6144), cuda) == (
        "sgl-kernel has this kernel for N x K = 256x7168, 384x7168 only"
    )
    assert "M <= 16 only" in backend.unavailable_reason(Case("m", "router", "router", 17, 256, 7168), cuda)
    monkeypatch.setattr(engines, "capability", lambda device: (8, 0))
    assert backend.unavailable_reason(Case("m", "router", "router", 1, 256, 7168), cuda) == (
        "SGLang runs it on compute capability 9.0 and later only"
    )


def test_sglangs_router_gemm_writes_gemmbench_output_through_the_op_sglang_launches(monkeypatch):
    """The op under sgl_kernel.dsv3_router_gemm, (output, x, w), written into the row's output: no allocation,
    no copy. A stand-in op of that schema, on the CPU."""
    import sys
    import types

    if not hasattr(torch.ops.sgl_kernel, "dsv3_router_gemm"):

        @torch.library.custom_op("sgl_kernel::dsv3_router_gemm", mutates_args=("output",))
        def _stand_in(output: torch.Tensor, mat_a: torch.Tensor, mat_b: torch.Tensor) -> None:
            output.copy_(mat_a.float() @ mat_b.float().t())

    monkeypatch.setitem(sys.modules, "sgl_kernel", types.ModuleType("sgl_kernel"))
    x, w = torch.randn(3, 64, dtype=torch.bfloat16), torch.randn(8, 64, dtype=torch.bfloat16)
    inputs = GemmInputs(x, w, torch.full((3, 8), float("nan")))
    result = REGISTRY["sglang_router_gemm"].prepare(Case("m", "router", "router", 3, 8, 64), inputs)()
    assert result is inputs.out
    torch.testing.assert_close(result, x.float() @ w.float().t())
    backend = REGISTRY["sglang_router_gemm"]  # whether sgl-kernel launched it with PDL, on the row
    monkeypatch.delenv("TRTLLM_ENABLE_PDL", raising=False)
    assert backend.configuration(CASE) == "TRTLLM_ENABLE_PDL unset"
    monkeypatch.setenv("TRTLLM_ENABLE_PDL", "1")
    assert backend.configuration(CASE) == "TRTLLM_ENABLE_PDL=1"


def test_list_names_the_producers_with_their_pdl_and_the_install_hint_whole(no_flashinfer, monkeypatch):
    from gemmbench.cli.app import out_console

    monkeypatch.setattr(out_console, "width", 300)
    listed = runner.invoke(app, ["list", "--device", "cpu"]).stdout
    producers = listed.split("Contexts: producers before the GEMM", 1)[1]
    for name in PRODUCERS:
        assert f"│ {name} " in producers
    assert "waits at its start, lets dependents launch after its stores" in producers
    assert "lets dependents launch at its start" in producers
    assert "pip install 'gemmbench[engines]', or flashinfer-python" in listed  # the brackets whole, not markup
    assert "┃ PDL " in listed.split("Contexts:", 1)[0]  # the backends' table has a PDL column too
    assert (
        "as sgl-kernel decides: on where TRTLLM_ENABLE_PDL=1 (the row's configuration)" in listed
    )  # sgl-kernel's choice, not gemmbench's


# Producers and backends of the tests' own


class Exploding(Producer):
    name = "exploding"
    code = "raises"

    def prepare(self, case, hidden, weight, x):
        def call():
            raise RuntimeError("the plugin's norm failed")

        return call


class Halving(Producer):
    """Writes x as h / 2 into a new tensor: the GEMM is prepared on what it returns."""

    name = "halving"
    code = "h / 2"

    def prepare(self, case, hidden, weight, x):
        return lambda: hidden / 2


@pytest.fixture
def producer(request, monkeypatch):
    chosen = request.param()
    monkeypatch.setitem(PRODUCERS, chosen.name, chosen)
    return chosen


class UpcastLike(Backend):
    name = "upcast_like"
    code = "torch.mm(x.float(), w.float().T)"

    def prepare(self, case, inputs):
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: torch.mm(x.float(), w.float().t(), out=out)


class OtherUpcast(UpcastLike):
    name = "other_upcast"


class PdlCapable(UpcastLike):
    name = "pdl_capable"
    launches_with_pdl = True

    def prepare(self, case, inputs, pdl=False):
        return super().prepare(case, inputs)


@pytest.mark.parametrize("producer", [Exploding], indirect=True)
def test_a_producer_that_raises_is_an_error_row_in_its_layer_only(producer, small_case):
    for backend, bench in ((UpcastLike(), Bench), (Fake(), FakeBench)):  # FakeBench: made-up times, checked rows
        alone, layer = measure_cases([small_case], [backend], bench(CPU, FAST), producers=(producer,))
        assert alone.status == OK and alone.context is None
        assert layer.status == ERROR and layer.context == "exploding"
        assert (
            layer.reason == "ProducerFailed: context exploding: its call raised RuntimeError: the plugin's norm failed"
        )


@pytest.mark.parametrize("producer", [Halving], indirect=True)
def test_a_producer_that_returns_a_new_tensor_feeds_the_gemm_prepared_on_it(producer, small_case):
    rows = list(measure_cases([small_case], [UpcastLike(), OtherUpcast()], Bench(CPU, FAST), producers=(producer,)))
    assert [(r.backend, r.context, r.status) for r in rows] == [
        ("upcast_like", None, OK),
        ("other_upcast", None, OK),
        ("upcast_like", "halving", OK),
        ("other_upcast", "halving", OK),
    ]
    for row in rows[2:]:  # right against the reference of what the producer wrote, and timed per layer
        assert row.rel_err < 1e-6 and row.latency.median_us > 0 and row.device is None and row.tflops is None
    # the point's rows share one clock watch and one set of cold copies: they were timed in the same rounds
    assert len({(r.l2_mode, r.l2_copies, r.clocks) for r in rows}) == 1


def test_a_backend_that_can_launch_with_pdl_is_measured_both_ways(small_case):
    off, on = measure_cases([small_case], [PdlCapable()], Bench(CPU, FAST))
    assert (off.pdl, off.status, off.label) == (False, OK, "pdl_capable")
    assert (on.pdl, on.status, on.label) == (True, SKIPPED, "pdl_capable+pdl")
    assert on.reason == "programmatic dependent launch needs a CUDA device"


# The answers that read layer rows


def row(backend, device_us, context=None, pdl=None, half_width=0.1, case=CASE, rel_err=1e-6):
    """An ok row with a device time, its 95% interval `half_width` either side."""
    device = TimerSummary("cuda_graph", device_us, ci_low_us=device_us - half_width, ci_high_us=device_us + half_width)
    latency = TimerSummary("cuda_events", device_us + 20)
    return Record.for_case(case, backend, OK, rel_err=rel_err, pdl=pdl, context=context, latency=latency, device=device)


def test_recommend_chooses_per_view_and_says_what_it_saves_against_mm_out_dtype():
    records = [
        row("mm_out_dtype", 6.4),
        row("router_small_m_ext", 6.5, pdl=True),  # alone: tied with mm_out_dtype, which the tie goes to
        row("mm_out_dtype", 16.9, context="norm"),
        row("router_small_m_ext", 9.4, context="norm", pdl=True),
    ]
    alone, layer = recommend(records)
    assert (alone.context, alone.in_layer, alone.winners, alone.savings) == (None, False, {1: "mm_out_dtype"}, {})
    assert alone.figure == "device time alone"
    assert layer.context == "norm" and layer.in_layer and layer.winners == {1: "router_small_m_ext+pdl"}
    assert layer.figure == "device time of the layer, after norm (producer then GEMM)"
    saving = layer.savings[1]
    assert saving.against == FALLBACK_BACKEND == "mm_out_dtype"
    assert saving.us == pytest.approx(16.9 - 9.4) and saving.share == pytest.approx(7.5 / 16.9)
    assert (saving.low_us, saving.high_us) == pytest.approx((16.8 - 9.5, 17.0 - 9.3))
    assert saving.per_forward is None and saving.forward_us is None


def test_a_saving_counts_the_gemms_calls_per_forward_pass_where_the_preset_gives_them():
    case = replace(CASE, per_forward=58)
    (rec,) = recommend([row("mm_out_dtype", 6.4, case=case), row("router_small_m_ext", 3.0, case=case)])
    saving = rec.savings[1]
    assert saving.per_forward == 58 and saving.forward_us == pytest.approx(3.4 * 58)


def test_no_saving_where_the_fallback_was_not_measured_or_is_the_choice():
    (rec,) = recommend([row("router_small_m_ext", 3.0), row("cublas_ext", 6.0)])
    assert rec.winners == {1: "router_small_m_ext"} and rec.savings == {}


def test_recommend_markdown_and_json_carry_the_view_and_the_saving():
    from gemmbench.output.recommend import recommendation_dicts, recommendation_markdown

    recs = recommend([row("mm_out_dtype", 16.9, context="norm"), row("router_small_m_ext", 9.4, context="norm")])
    markdown = recommendation_markdown(recs)
    assert "| DeepSeek-V3 router after norm | 256 | 7168 | M <= 1 | router_small_m_ext | 1 |" in markdown
    assert f"saves against {FALLBACK_BACKEND}" in markdown and "M 1: 7.5 µs (7.3 µs-7.7 µs, 44%)" in markdown
    (doc,) = recommendation_dicts(recs)
    assert doc["context"] == "norm" and doc["savings"][1]["us"] == pytest.approx(7.5)


def test_a_saving_whose_interval_reaches_zero_is_shown_unresolved_never_negative():
    from gemmbench.output.recommend import saving_text

    (rec,) = recommend([row("mm_out_dtype", 6.0, half_width=0.5), row("router_small_m_ext", 5.0, half_width=0.6)])
    saving = rec.savings[1]
    assert saving.low_us < 0 < saving.us
    assert saving_text(saving) == "1 µs (17%; within the two rows' intervals, not resolved)"


def views(*contexts):
    return [rec for context in contexts for rec in recommend([row("mm_out_dtype", 6.4, context=context)])]


def test_dispatch_follows_the_engines_producer_first_else_the_only_context_else_alone():
    engine = ENGINE_CONTEXTS[0]
    assert [r.context for r in dispatch_view(views(None, "norm", ENGINE_CONTEXTS[2], engine))] == [engine]
    assert [r.context for r in dispatch_view(views(None, "copy"))] == ["copy"]
    assert [r.context for r in dispatch_view(views(None))] == [None]
    assert [r.context for r in dispatch_view(views(None, "norm", "copy"), "none")] == [None]
    assert [r.context for r in dispatch_view(views(None, "norm", "copy"), "copy")] == ["copy"]


def test_dispatch_asks_which_layer_where_the_run_holds_several_and_no_engines():
    with pytest.raises(UsageError) as raised:
        dispatch_view(views(None, "norm", "copy"))
    assert raised.value.what == "this run holds layers after norm, copy and none of them is an engine's producer"
    assert raised.value.fix == "choose one with --context NAME (or --context none for the GEMMs alone)"
    with pytest.raises(UsageError, match="this run holds no layer after 'flashinfer_rmsnorm'") as raised:
        dispatch_view(views(None, "norm"), "flashinfer_rmsnorm")
    assert raised.value.fix == "choose one of: none, norm"  # the views the run holds


def test_recommend_python_dispatches_by_the_layer_named(tmp_path, fake_device):
    sweep = runner.invoke(
        app,
        ["sweep", "-b", "fake", "--device", "cpu", "--shape", "256x7168", "--m", "1,16", "--context", "norm,copy"]
        + ["--out-dir", str(tmp_path), "-q"],
    )
    assert sweep.exit_code == 0, sweep.output
    (path,) = tmp_path.glob("*.json")
    assert len(recommend(load_run(path).records)) == 3  # alone, after norm, after copy
    unsure = runner.invoke(app, ["recommend", "--python", str(path)])
    assert unsure.exit_code == 2 and "none of them is an engine's producer" in unsure.stderr
    for context, figure in (("copy", "device time of the layer, after copy"), ("none", "device time alone")):
        result = runner.invoke(app, ["recommend", "--python", "--context", context, str(path)])
        assert result.exit_code == 0, result.output
        assert f"Chosen by the {figure}" in " ".join(result.stdout.split())
        namespace: dict = {}
        exec(result.stdout, namespace)  # the module is Python that runs
        assert namespace["choose_backend"](256, 7168, 16) == "fake"
    table = runner.invoke(app, ["recommend", str(path)]).stdout
    assert "(N=256, K=7168, per layer after norm)" in table and "(N=256, K=7168, per layer after copy)" in table
    one_view = " ".join(runner.invoke(app, ["recommend", "--context", "copy", "--md", str(path)]).stdout.split())
    assert "after copy" in one_view and "after norm" not in one_view  # --context chooses the tables' view too


def test_compare_matches_each_row_with_the_same_layers_row():
    base = Run(Provenance(), [row("a", 6.0), row("a", 10.0, context="norm"), row("a", 11.0, context="copy")])
    new = Run(Provenance(), [row("a", 6.0), row("a", 12.0, context="norm")])
    comparison = compare_runs(base, new)
    assert [(r.base.context, r.timer, r.ratio) for r in comparison.rows] == [
        (None, DEVICE, pytest.approx(1.0)),
        ("norm", DEVICE, pytest.approx(1.2)),
    ]
    assert [r.context for r in comparison.only_base] == ["copy"] and comparison.only_new == []


def test_compare_matches_group_rows_by_layer_too(tmp_path, fake_device):
    def group_run(contexts: str):
        out = tmp_path / contexts
        args = ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--device", "cpu", "--m", "1", "-q"]
        result = runner.invoke(app, [*args, "--context", contexts, "--out-dir", str(out)])
        assert result.exit_code == 0, result.output
        return load_run(next(out.glob("*.json")))

    comparison = compare_groups(group_run("norm,copy"), group_run("copy"))
    assert [(r.base.context, r.new.context, r.ratio) for r in comparison.rows] == [
        (None, None, pytest.approx(1.0)),
        ("copy", "copy", pytest.approx(1.0)),
    ]
    assert [r.context for r in comparison.only_base] == ["norm"] and comparison.only_new == []


# Groups in their layers


def test_a_group_in_its_layers_has_per_layer_times_and_is_advised_per_layer(tmp_path, fake_device):
    result = runner.invoke(
        app,
        ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--device", "cpu", "--m", "1", "--context", "norm,copy"]
        + ["--out-dir", str(tmp_path), "--csv", str(tmp_path / "groups.csv"), "-q"],
    )
    assert result.exit_code == 0, result.output
    alone, *layers = list(csv.DictReader(io.StringIO((tmp_path / "groups.csv").read_text())))
    assert [r["context"] for r in (alone, *layers)] == ["", "norm", "copy"]
    assert alone["members"] and alone["overlap_efficiency"] and alone["critical_path"]
    (group,) = load_preset("deepseek-v4-pro").groups
    producer_device = producer_us(group.members[0].gemm.case(1))
    producer_latency, switch = producer_device + FAKE_LAUNCH_US, FAKE_KERNEL_SWITCH_US
    for layer in layers:
        assert layer["status"] == OK and layer["members"] == layer["overlap_efficiency"] == layer["critical_path"] == ""
        for way in ("serial", "parallel"):
            added = float(layer[f"{way}_device_median_us"]) - float(alone[f"{way}_device_median_us"])
            assert added == pytest.approx(producer_device + switch)
            added = float(layer[f"{way}_latency_median_us"]) - float(alone[f"{way}_latency_median_us"])
            assert added == pytest.approx(producer_latency + switch)
    (run_file,) = tmp_path.glob("*.json")
    advice = runner.invoke(app, ["recommend", str(run_file)]).stdout
    assert "attention_inputs (in the layer, after norm)" in advice
    assert "attention_inputs (in the layer, after copy)" in advice
    assert runner.invoke(app, ["show", str(tmp_path / "groups.csv")]).exit_code == 0  # the CSV reads back


def test_a_group_after_a_cuda_only_producer_on_the_cpu_is_a_skipped_layer_row(fake_device):
    result = runner.invoke(
        app,
        ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--device", "cpu", "--m", "1", "--context", "norm_pdl"]
        + ["--no-save", "--csv", "-", "-q"],
    )
    alone, layer = list(csv.DictReader(io.StringIO(result.stdout)))
    assert alone["status"] == OK and alone["context"] == ""
    assert layer["status"] == SKIPPED and layer["context"] == "gemmbench_norm_pdl_start"
    assert layer["reason"] == "context gemmbench_norm_pdl_start: a CUDA kernel: needs a CUDA device"


MIXED_GROUP = """model = "Mixed"
[[gemm]]
name = "a"
role = "attention"
n = 64
k = 128
in_dtype = "bf16"
out_dtype = "fp32"
[[group]]
name = "inputs"
members = [
  { gemm = "a", stream = "default" },
  { gemm = "b", n = 64, k = 128, in_dtype = "fp16", out_dtype = "fp16", stream = "aux0" },
]
"""


def test_a_group_whose_members_read_x_in_two_dtypes_is_skipped_in_a_layer(tmp_path, fake_device):
    config = tmp_path / "mixed.toml"
    config.write_text(MIXED_GROUP)
    result = runner.invoke(
        app,
        ["group", "--config", str(config), "-b", "fake", "--device", "cpu", "--m", "1", "--context", "norm"]
        + ["--no-save", "--csv", str(tmp_path / "rows.csv"), "-q"],
    )
    assert result.exit_code == 0, result.output
    alone, layer = list(csv.DictReader(io.StringIO((tmp_path / "rows.csv").read_text())))
    assert alone["status"] == OK and layer["context"] == "norm" and layer["status"] == SKIPPED
    assert "the members read x in bf16/fp16; one producer writes one" in layer["reason"]


# Run files of version 1, whose rows held times alone beside differences after a producer


def test_a_version_1_row_timed_with_a_producer_loads_as_a_row_alone(tmp_path):
    path = tmp_path / "v1.json"
    doc = {"schema": "gemmbench.run", "schema_version": 1, "provenance": {"context": "norm_pdl"}}
    fields = {"model": "DeepSeek-V3", "gemm": "router", "role": "router", "m": 1, "n": 256, "k": 7168}
    doc["records"] = [
        {**fields, "backend": "mm_out_dtype", "status": OK, "rel_err": 1e-6, "context": "norm_pdl"}
        | {"device_timer": "cuda_graph", "device_median_us": 6.4, "latency_timer": "cuda_events"}
        | {"latency_median_us": 26.4, "context_device_timer": "cuda_graph_minus_producer"}
        | {"context_device_median_us": -0.2, "producer_device_median_us": 3.1},
        {**fields, "backend": "router_small_m_ext", "status": SKIPPED, "reason": "no CUDA device"}
        | {"context": "norm_pdl"},
    ]
    path.write_text(json.dumps(doc))
    timed, skipped = load_run(path).records
    assert SCHEMA_VERSION == 2
    assert timed.context is None and not timed.in_layer and timed.device.median_us == 6.4
    assert skipped.context is None  # a v1 row with no figures stood for the GEMM alone as well
    assert not hasattr(timed, "context_device") and not hasattr(timed, "producer_device")
    assert [rec.context for rec in recommend([timed, skipped])] == [None]
