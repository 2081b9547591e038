"""GPU tests: run on the GPU machine with `pytest -m gpu` (scripts/checks/gpu_check.sh); skipped without CUDA."""

from dataclasses import replace

import pytest
import torch
from samples import measure_all

from gemmbench.analysis.decode import decode, gemm_kernel
from gemmbench.backends import REGISTRY, default_backends
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.records import ERROR, OK
from gemmbench.spec.cases import Case
from gemmbench.spec.presets import load_preset
from gemmbench.timing import timers as timing

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
FAST = MeasureOptions(
    warmup_s=0.005, target=timing.Target(budget_s=0.01, min_time_s=0.0), eager_windows=3, eager_window_s=0.002
)


def _router(m: int) -> Case:
    return load_preset("deepseek-v3").gemms[0].case(m)


@pytest.fixture(scope="module")
def router_records():
    records = list(measure_all([_router(1), _router(4096)], default_backends(), CUDA, FAST))
    return {(r.m, r.backend): r for r in records}


@pytest.mark.parametrize("m", [1, 4096])
def test_each_backend_has_its_expected_accuracy(router_records, m):
    mm, up, lin = (router_records[(m, b)] for b in ("mm_out_dtype", "upcast", "linear_cast"))
    assert all(r.status == OK for r in (mm, up, lin))
    assert mm.rel_err < 5e-5  # fp32 accumulation and output
    assert up.rel_err < 5e-6  # fp32 throughout
    assert 5e-4 < lin.rel_err < 5e-3  # bf16-rounded output


def test_rows_carry_both_timers_and_kernels(router_records):
    for record in (r for r in router_records.values() if r.status == OK):
        assert record.latency.timer == "cuda_events" and record.device.timer == "cuda_graph"
        assert record.latency.samples >= 5 and record.device.samples >= 5
        assert record.kernel_count == len(record.kernels) >= 1
        assert record.kernel_sum_us > 0


def test_mm_out_dtype_runs_an_nvjet_bf16_to_fp32_kernel(router_records):
    names = [k.name for k in router_records[(1, "mm_out_dtype")].kernels]
    info = decode(gemm_kernel(names))
    assert (info.family, info.a_dtype, info.out_dtype, info.compute_dtype) == ("nvjet", "bf16", "fp32", "fp32")


def test_linear_cast_writes_bf16_then_copies(router_records):
    families = [decode(k.name) for k in router_records[(1, "linear_cast")].kernels]
    gemm = next(i for i in families if i.is_gemm)
    assert gemm.out_dtype == "bf16"
    assert families[-1].family == "elementwise"


def test_upcast_copies_both_operands_then_runs_fp32(router_records):
    infos = [decode(k.name) for k in router_records[(4096, "upcast")].kernels]
    assert [i.family for i in infos[:2]] == ["elementwise", "elementwise"]
    gemm = next(i for i in infos if i.is_gemm)
    assert gemm.a_dtype in ("fp32", None) and gemm.compute_dtype in ("fp32", None)


def test_graph_size_grows_from_an_overstated_bound_until_a_replay_is_long():
    x = torch.zeros(1024, device=CUDA)
    call = lambda: x.add_(1)  # noqa: E731 - a ~2 us kernel
    call()
    torch.cuda.synchronize()
    unroll = timing.fit_graph_unroll(call, upper_bound_us=timing.GRAPH_TARGET_REPLAY_US, multiple_of=3)
    assert unroll % 3 == 0 and unroll > timing.graph_unroll(timing.GRAPH_TARGET_REPLAY_US, multiple_of=3)


def test_a_case_too_large_for_memory_is_an_error_row_and_the_sweep_goes_on():
    huge = Case("custom", "huge", "custom", 1 << 20, 1 << 20, 7168)  # a 4 TiB fp32 output
    records = list(measure_all([huge, _router(1)], [REGISTRY["mm_out_dtype"]], CUDA, FAST))
    assert records[0].status == ERROR and "out of memory" in records[0].reason
    assert records[1].status == OK


def test_kernels_only_pass_skips_timers():
    (record,) = measure_all([_router(16)], [REGISTRY["mm_out_dtype"]], CUDA, MeasureOptions(time_calls=False))
    assert record.status == OK and record.kernels and record.latency is None


def test_routing_accuracy_separates_fp32_from_bf16_outputs():
    from gemmbench.measure.routing import RoutingCheck

    case = _router(16)
    assert case.top_k == 8
    check = RoutingCheck.for_case(case, CUDA, seed=0)
    assert check.measure(REGISTRY["mm_out_dtype"]).flips < 0.005
    assert check.measure(REGISTRY["upcast"]).flips == 0.0
    assert check.measure(REGISTRY["linear_cast"]).flips > 0.01


def test_rows_carry_routing_and_floor_with_a_roofline():
    from gemmbench.measure import roofline

    roof = roofline.measure(CUDA)
    assert 1000 < roof.bandwidth_gbps < 10000 and 100 < roof.bf16_tflops < 2000
    options = MeasureOptions(warmup_s=0.005, target=timing.Target(budget_s=0.01, min_time_s=0.0), roofline=roof)
    (record,) = measure_all([_router(1)], [REGISTRY["mm_out_dtype"]], CUDA, options)
    assert record.topk_mismatch is not None and 0 < record.pct_of_floor < 100
    assert record.floor_us == roof.floor_us(record.case)


ROUTERS = [
    (256, 7168),
    (384, 7168),
    (256, 6144),
    (256, 4096),
    (64, 7168),
]  # V3, Kimi-K2/V4-Pro, GLM-5, V4-Flash, indexer


def _exact_deterministic_and_capturable(call, inputs) -> None:
    from gemmbench.timing.inputs import reference, relative_error

    inputs.out.fill_(float("nan"))
    first = call().clone()
    assert relative_error(first, reference(inputs)) <= 1e-5
    assert torch.equal(first, call())  # the same bits on every call
    graph = timing.capture_graph(call, 2)
    inputs.out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(first, inputs.out)


@pytest.mark.parametrize("m", [1, 3, 32])
@pytest.mark.parametrize("n, k", [(256, 7168), (100, 1000)])  # DeepSeek-V3, and one that no tile divides
def test_every_router_small_m_configuration_is_exact_deterministic_and_capturable(n, k, m):
    """Every candidate, since the tuner may pick any; they compile once per M bucket, whatever N and K, all
    at once as the tuner compiles them (none fails on this GPU)."""
    from gemmbench.backends.router_small_m_kernel import candidates, compile_all, prepared
    from gemmbench.timing.inputs import make_inputs

    case = Case("router", f"{n}x{k}", "router", m, n, k)
    inputs = make_inputs(case, CUDA, seed=0)
    assert compile_all(inputs, candidates(m)) == {}
    for config in candidates(m):
        _exact_deterministic_and_capturable(prepared(inputs, config), inputs)


@pytest.mark.parametrize("n, k", ROUTERS)
def test_router_small_m_runs_each_routers_chosen_configuration_and_says_where_it_came_from(n, k):
    """Whatever chose it (a tuning file on a GPU that has one, else a tuning now with the session's timer):
    exact and capturable."""
    import json

    from gemmbench.backends import router_small_m_tuning as tuning
    from gemmbench.backends.router_small_m import RouterSmallM
    from gemmbench.measure.tuning import CaseTimer
    from gemmbench.timing.inputs import make_inputs

    case = Case("router", f"{n}x{k}", "router", 16, n, k)
    backend = RouterSmallM()
    inputs = make_inputs(case, CUDA, seed=0)
    backend.tune(case, inputs, CaseTimer(case, Bench(CUDA, FAST)))
    _exact_deterministic_and_capturable(backend.prepare(case, inputs), inputs)
    configuration = backend.configuration(case)
    assert configuration.startswith("router_small_m ")
    shipped = {json.loads(path.read_text())["gpu"]: path.name for path in tuning.SHIPPED_TUNINGS.glob("*.json")}
    gpu = torch.cuda.get_device_name(CUDA)
    if gpu in shipped:  # a shipped file has every router at M = 16
        assert configuration.endswith(f"({tuning.FROM_FILE} {shipped[gpu]})")
    else:
        assert configuration.endswith((f"({tuning.CACHED})", f"({tuning.TUNED_NOW})"))


def test_router_small_m_compiles_ahead_what_its_cases_run_and_they_run_exactly(monkeypatch):
    from gemmbench.backends import router_small_m
    from gemmbench.backends.router_small_m import RouterSmallM
    from gemmbench.timing.inputs import make_inputs

    results = []
    real = router_small_m.compile_jobs
    monkeypatch.setattr(router_small_m, "compile_jobs", lambda jobs: results.append((len(jobs), real(jobs))))
    cases = [Case("router", "256x7168", "router", m, 256, 7168) for m in (1, 3, 16)]
    backend = RouterSmallM()
    backend.compile_ahead(cases, CUDA)
    if router_small_m.tuning.lookup(cases[0], CUDA) is not None:  # a GPU with a tuning file or a cached tuning
        assert results and results[0][0] >= 2 and results[0][1] == {}  # every job compiled
    for case in cases:
        inputs = make_inputs(case, CUDA, seed=0)
        _exact_deterministic_and_capturable(backend.prepare(case, inputs), inputs)


def test_router_small_m_rows_say_which_configuration_ran_and_its_kernel():
    from gemmbench.backends import router_small_m_tuning as tuning

    rows = measure_all([_router(1)], [REGISTRY["router_small_m"]], CUDA, FAST)
    assert [row.label for row in rows] == ["router_small_m", "router_small_m+pdl"]  # measured both ways
    for record in rows:
        assert record.status == OK and record.backend_config.startswith("router_small_m ")
        assert not record.backend_config.endswith(f"({tuning.UNTUNED})")  # the sweep tuned it before the check
        assert [decode(k.name).family for k in record.kernels] == ["gemmbench"]
    beyond = measure_all([_router(64)], [REGISTRY["router_small_m"]], CUDA, FAST)
    assert all(row.status == "skipped" and "M <= 32" in row.reason for row in beyond)


@pytest.mark.parametrize("m", [1, 16])
def test_router_small_m_with_pdl_gives_the_same_bits_eagerly_and_in_a_graph(m):
    """A CUDA-core configuration and a split tensor-core one (its workspace and counters), PDL off and on."""
    from gemmbench.backends.router_small_m_kernel import CUDA_CORES, TENSOR_CORES, Config, prepared
    from gemmbench.timing.inputs import make_inputs

    case = Case("router", "256x7168", "router", m, 256, 7168)
    inputs = make_inputs(case, CUDA, seed=0)
    for config in (Config(CUDA_CORES, 1, 1024, 2048), Config(TENSOR_CORES, 16, 128, 512)):
        without = prepared(inputs, config)().clone()
        _exact_deterministic_and_capturable(prepared(inputs, config, pdl=True), inputs)
        assert torch.equal(without, inputs.out), config


@pytest.mark.parametrize("m", [1, 16])
def test_router_small_m_with_pdl_reads_x_only_after_its_producer(m):
    """Launched with PDL right after gemmbench's RMSNorm, which lets dependents launch at its start, onto
    an x that is NaN until the norm writes it (as tests/test_ext_gpu.py does for the CUDA kernels)."""
    from gemmbench.backends import ext
    from gemmbench.backends.router_small_m_kernel import CUDA_CORES, TENSOR_CORES, Config, prepared
    from gemmbench.timing.inputs import make_inputs

    ext.load()
    case = Case("router", "256x7168", "router", m, 256, 7168)
    inputs = make_inputs(case, CUDA, seed=0)
    h = torch.randn(m, 7168, device=CUDA, dtype=torch.bfloat16)
    norm_weight = torch.randn(7168, device=CUDA, dtype=torch.bfloat16)
    torch.ops.gemmbench.rms_norm_out(h, norm_weight, 1e-6, inputs.x, 0)
    for config in (Config(CUDA_CORES, 1, 1024, 2048), Config(TENSOR_CORES, 16, 128, 512)):
        expected = prepared(inputs, config)().clone()
        call = prepared(inputs, config, pdl=True)
        for attempt in range(50):
            inputs.x.fill_(float("nan"))
            torch.ops.gemmbench.rms_norm_out(h, norm_weight, 1e-6, inputs.x, 1)
            assert torch.equal(call(), expected), (config, attempt)


def test_a_group_runs_serially_and_on_its_streams():
    from gemmbench.measure.groups import measure_groups, profile_groups

    (group,) = load_preset("deepseek-v4-pro").groups
    backends = [REGISTRY["mm_out_dtype"]]
    bench = Bench(CUDA, FAST)
    records = list(measure_groups([group], (1,), backends, bench))
    (record,) = profile_groups(records, [group], backends, bench)
    assert record.status == OK, record.reason
    assert record.rel_err < 5e-5 and len(record.members) == 4 and all(m.device_us > 0 for m in record.members)
    assert record.serial_device.median_us > 0 and record.parallel_device.median_us > 0 and record.speedup > 0
    assert record.streams_with_kernels == 4  # the default stream and three auxiliary ones ran kernels
    # what the profiler saw overlap in a replay: measured (a lower bound: at M = 1 it may see none)
    assert record.overlap_us is not None and record.overlap_us >= 0
    # timed like a sweep's point: the clock watch around it, the cold copies counted the same way
    assert bench.clocks.unavailable or (record.clocks.sm_clock_mhz > 0 and record.clocks.throttled is not None)
    assert record.l2_mode == "cold" and record.l2_copies >= 2 and record.serial_latency.timer == "cuda_events"
    assert record.placements == 1  # FAST's


def test_a_groups_backend_is_tuned_for_each_light_member_before_the_check_and_a_failed_tuning_is_its_row():
    from gemmbench.backends.mm_out_dtype import MmOutDtype
    from gemmbench.measure.groups import measure_groups

    class TunedMm(MmOutDtype):
        """mm_out_dtype, with a tuning that times it once with the session's timer."""

        name = "tuned_mm"

        def __init__(self, fails=False):
            self.fails, self.timed_us = fails, {}

        def tune(self, case, inputs, timer):
            if self.fails:
                raise RuntimeError("no configuration runs here")
            prepare = super().prepare
            self.timed_us[case.n] = timer.device_time_us(lambda copy: prepare(case, copy), timing.FixedTime(0.001))

        def prepare(self, case, inputs):
            assert case.n in self.timed_us, "prepared before its tuning"
            return super().prepare(case, inputs)

    (group,) = load_preset("deepseek-v4-pro").groups
    backend = TunedMm()
    (row,) = measure_groups([group], (1,), [backend], Bench(CUDA, FAST))
    assert row.status == OK, row.reason
    light = {member.gemm.n for member in group.members if member.light}
    assert set(backend.timed_us) == light and all(us > 0 for us in backend.timed_us.values())
    (failed,) = measure_groups([group], (1,), [TunedMm(fails=True)], Bench(CUDA, FAST))
    assert failed.status == ERROR and failed.reason == "tuning: RuntimeError: no configuration runs here"


def test_a_point_is_timed_on_several_placements_of_its_inputs_and_its_interval_spans_them():
    options = replace(FAST, placements=3, keep_samples=True)
    (record,) = measure_all([_router(1)], [REGISTRY["mm_out_dtype"]], CUDA, options)
    assert record.status == OK and record.placements == 3
    medians = record.device_placement_medians_us
    assert len(medians) == 3 and record.device.median_us == sorted(medians)[1]
    widened = (min(medians) * (1 - timing.RERUN_MARGIN_REL), max(medians) * (1 + timing.RERUN_MARGIN_REL))
    assert (record.device.ci_low_us, record.device.ci_high_us) == pytest.approx(widened)
    from gemmbench.measure.groups import measure_groups

    (group,) = load_preset("deepseek-v4-pro").groups
    (row,) = measure_groups([group], (1,), [REGISTRY["mm_out_dtype"]], Bench(CUDA, options))
    assert row.status == OK and row.placements == 3, row.reason


# A producer returning a new x (torch's norm), and one writing x that lets dependents launch at its start.
@pytest.mark.parametrize("context", ["norm", "gemmbench_norm_pdl_start"])
def test_a_group_in_its_layer_is_timed_both_ways_per_layer(context):
    from gemmbench.backends.producers import PRODUCERS
    from gemmbench.measure.groups import measure_groups

    (group,) = load_preset("deepseek-v4-pro").groups
    producers = (PRODUCERS[context],)
    alone, layer = measure_groups([group], (1,), [REGISTRY["mm_out_dtype"]], Bench(CUDA, FAST), producers=producers)
    assert alone.status == OK and layer.status == OK, (alone.reason, layer.reason)
    assert alone.context is None and len(alone.members) == 4 and alone.overlap_efficiency > 0
    assert layer.context == context and layer.in_layer and layer.rel_err < 5e-5
    assert not layer.members and layer.overlap_efficiency is None  # the members' times are the group's alone
    assert layer.clocks == alone.clocks and layer.l2_copies == alone.l2_copies  # timed in the same rounds
    for way in ("serial", "parallel"):
        figure, without = getattr(layer, f"{way}_device"), getattr(alone, f"{way}_device")
        assert figure.timer == "cuda_graph" and 0 < figure.ci_low_us <= figure.median_us <= figure.ci_high_us
        assert figure.median_us > without.median_us  # per layer: the producer's kernel runs in it too
        assert getattr(layer, f"{way}_latency").median_us > 0


def test_tune_writes_a_tuning_file_that_a_new_process_picks_up(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from gemmbench.backends import router_small_m_tuning as tuning
    from gemmbench.backends.router_small_m import RouterSmallM
    from gemmbench.backends.router_small_m_kernel import candidates
    from gemmbench.cli import app
    from gemmbench.timing.inputs import make_inputs

    monkeypatch.setenv("GEMMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "tunings.json"
    result = CliRunner().invoke(app, ["tune", "--shape", "64x7168", "--m", "1", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(out.read_text())["configs"].values()
    assert tuning._config_of(entry) in candidates(1) and entry["margin"] >= 1.0 and entry["time_us"] > 0
    monkeypatch.setattr(tuning, "tuning_files", lambda: [out])
    (tmp_path / "cache" / tuning.CACHE_FILE).unlink()  # what tune cached: the file alone must do
    case = Case("router", "64x7168", "router", 1, 64, 7168)
    backend = RouterSmallM()
    assert backend.tuning_note(case, CUDA) is None
    backend.prepare(case, make_inputs(case, CUDA, seed=0))
    assert backend.configuration(case).endswith("(tuning file tunings.json)")
