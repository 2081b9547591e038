"""The GEMM in its layer (`--context`), on the CPU: the difference arithmetic, the columns, the fake
backend's simulated figures, skipped and error rows, PDL variants, and the answers that read them."""

import csv
import io

import pytest
import torch
from samples import timed
from typer.testing import CliRunner

from gemmbench.analysis.compare import CONTEXT, compare_runs, mismatches
from gemmbench.analysis.recommend import recommend
from gemmbench.backends import Backend
from gemmbench.backends.fake import FAKE_KERNEL_SWITCH_US, Fake
from gemmbench.backends.producers import PRODUCERS, Producer
from gemmbench.cli import app
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.context import difference
from gemmbench.measure.points import measure_cases
from gemmbench.records import ERROR, OK, SKIPPED, Run, TimerSummary
from gemmbench.timing import timers
from gemmbench.timing.timers import Samples

CPU = torch.device("cpu")
FAST = MeasureOptions(warmup_s=0.0, target=timers.Target(budget_s=0.001, min_time_s=0.0), eager_windows=2)
runner = CliRunner()


def test_an_in_context_time_is_the_chain_minus_the_producer_with_the_widest_interval():
    chain = Samples.from_windows("cuda_graph", [[10.0, 10.2], [10.4, 10.6]])  # window medians 10.1, 10.5
    producer = Samples.from_windows("cuda_graph", [[3.0, 3.2], [3.1, 3.3]])  # 3.1, 3.2
    result = difference(chain, producer, "cuda_graph")
    assert result.median_us == pytest.approx(10.3 - 3.15)
    assert (result.ci_low_us, result.ci_high_us) == pytest.approx((10.1 - 3.2, 10.5 - 3.1))
    assert result.timer == "cuda_graph_minus_producer" and result.samples == 4


def sweep_rows(*args):
    result = runner.invoke(app, ["sweep", "--device", "cpu", "--no-save", "--csv", "-", "-q", *args])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_the_fake_backend_simulates_its_layer_and_every_row_names_the_context():
    (row,) = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", "norm")
    assert row["context"] == "norm" and row["status"] == OK
    assert float(row["context_device_median_us"]) == pytest.approx(
        float(row["device_median_us"]) + FAKE_KERNEL_SWITCH_US
    )
    assert float(row["context_latency_median_us"]) == pytest.approx(
        float(row["latency_median_us"]) + FAKE_KERNEL_SWITCH_US
    )
    assert float(row["producer_device_median_us"]) > 0 and row["producer_device_timer"] == "simulated"


def test_on_the_cpu_the_layer_is_timed_with_the_host_clock():
    (row,) = sweep_rows("-b", "upcast", "--shape", "4x8x16", "--context", "copy", "--budget-ms", "1")
    assert row["status"] == OK and float(row["rel_err"]) < 1e-6
    assert row["context_latency_timer"] == "host_clock_minus_producer" and row["context_device_median_us"] == ""
    low, high = float(row["context_latency_ci_low_us"]), float(row["context_latency_ci_high_us"])
    assert low <= float(row["context_latency_median_us"]) <= high


def test_a_cuda_only_producer_on_the_cpu_is_a_skipped_row_with_the_reason():
    (row,) = sweep_rows("-b", "fake", "--shape", "4x8x16", "--context", "norm_pdl")
    assert row["status"] == SKIPPED and row["reason"] == "context norm_pdl: a CUDA kernel: needs a CUDA device"


def test_an_unknown_context_is_one_error_line_naming_the_known_ones():
    result = runner.invoke(app, ["sweep", "-b", "fake", "--device", "cpu", "--context", "rmsnorm", "--no-save"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: unknown context 'rmsnorm' — choose one of: none, copy, norm, norm_pdl"


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


@pytest.mark.parametrize("producer", [Exploding], indirect=True)
def test_a_producer_that_raises_is_an_error_row(producer, small_case):
    (record,) = measure_cases([small_case], [Fake()], Bench(CPU, FAST), producer=producer)
    assert record.status == OK  # the fake's figures in context are simulated: its producer never runs
    (record,) = measure_cases([small_case], [UpcastLike()], Bench(CPU, FAST), producer=producer)
    assert record.status == ERROR and record.reason == "RuntimeError: the plugin's norm failed"


@pytest.mark.parametrize("producer", [Halving], indirect=True)
def test_a_producer_that_returns_a_new_tensor_feeds_the_gemm_prepared_on_it(producer, small_case):
    (record,) = measure_cases([small_case], [UpcastLike()], Bench(CPU, FAST), producer=producer)
    assert record.status == OK and record.context == "halving" and record.context_latency is not None


class UpcastLike(Backend):
    name = "upcast_like"
    code = "torch.mm(x.float(), w.float().T)"

    def prepare(self, case, inputs):
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: torch.mm(x.float(), w.float().t(), out=out)


class PdlCapable(UpcastLike):
    name = "pdl_capable"
    launches_with_pdl = True

    def prepare(self, case, inputs, pdl=False):
        return super().prepare(case, inputs)


def test_a_backend_that_can_launch_with_pdl_is_measured_both_ways(small_case):
    off, on = measure_cases([small_case], [PdlCapable()], Bench(CPU, FAST))
    assert (off.pdl, off.status, off.label) == (False, OK, "pdl_capable")
    assert (on.pdl, on.status, on.label) == (True, SKIPPED, "pdl_capable+pdl")
    assert on.reason == "programmatic dependent launch needs a CUDA device"


def in_context(backend, alone_us, in_layer_us, pdl=None):
    return timed(
        backend, alone_us, 1e-6, pdl=pdl, context="norm", context_device=TimerSummary("cuda_graph", in_layer_us)
    )


def test_recommend_chooses_by_the_time_in_the_layer_and_says_so():
    records = [in_context("mm_out_dtype", 6.4, 16.9), in_context("router_small_m_ext", 3.0, 9.4, pdl=True)]
    (rec,) = recommend(records)
    assert rec.winners == {1: "router_small_m_ext+pdl"} and rec.in_layer and "after norm" in rec.figure
    alone = [timed("mm_out_dtype", 6.4, 1e-6), timed("router_small_m_ext", 6.5, 1e-6)]
    assert recommend(alone)[0].winners == {1: "mm_out_dtype"} and not recommend(alone)[0].in_layer


def test_compare_reads_the_time_in_the_layer_and_names_a_context_mismatch():
    base, new = (
        Run({"context": "norm"}, [in_context("a", 6.0, 10.0)]),
        Run({"context": "norm"}, [in_context("a", 6.0, 12.0)]),
    )
    (row,) = compare_runs(base, new).rows
    assert row.timer == CONTEXT and row.ratio == pytest.approx(1.2)
    assert mismatches(base, Run({}, [timed("a", 6.0, 1e-6)])) == ["context: norm vs none"]


def test_a_group_in_its_layer_carries_both_ways_after_the_producer_and_is_advised_by_them(tmp_path):
    result = runner.invoke(
        app,
        ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--device", "cpu", "--m", "1", "--context", "norm"]
        + ["--out-dir", str(tmp_path), "--csv", str(tmp_path / "groups.csv"), "-q"],
    )
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader((tmp_path / "groups.csv").open()))
    assert row["context"] == "norm" and row["producer_device_timer"] == "simulated"
    for way in ("serial", "parallel"):
        alone, in_layer = float(row[f"{way}_device_median_us"]), float(row[f"{way}_context_device_median_us"])
        assert in_layer == pytest.approx(alone + FAKE_KERNEL_SWITCH_US)
    (run_file,) = tmp_path.glob("*.json")
    advice = runner.invoke(app, ["recommend", str(run_file)]).stdout
    assert "(in the layer, after norm)" in advice
    assert runner.invoke(app, ["show", str(tmp_path / "groups.csv")]).exit_code == 0  # the CSV reads back


def test_a_group_after_a_cuda_only_producer_on_the_cpu_is_a_skipped_row():
    result = runner.invoke(
        app,
        ["group", "-p", "deepseek-v4-pro", "-b", "fake", "--device", "cpu", "--m", "1", "--context", "norm_pdl"]
        + ["--no-save", "--csv", "-", "-q"],
    )
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["status"] == SKIPPED and row["reason"] == "context norm_pdl: a CUDA kernel: needs a CUDA device"


class OtherUpcast(UpcastLike):
    name = "other_upcast"


@pytest.mark.parametrize("producer", [Halving], indirect=True)
def test_the_producer_alone_is_timed_once_per_case_for_all_its_backends(producer, small_case):
    first, second = measure_cases([small_case], [UpcastLike(), OtherUpcast()], Bench(CPU, FAST), producer=producer)
    assert first.status == second.status == OK
    assert first.producer_latency == second.producer_latency  # the same samples, not a second timing


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
  { gemm = "b", n = 64, k = 128, in_dtype = "fp16", out_dtype = "fp32", stream = "aux0" },
]
"""


def test_a_group_whose_members_read_x_in_two_dtypes_is_skipped_in_a_context(tmp_path):
    config = tmp_path / "mixed.toml"
    config.write_text(MIXED_GROUP)
    result = runner.invoke(
        app,
        ["group", "--config", str(config), "-b", "fake", "--device", "cpu", "--m", "1", "--context", "norm"]
        + ["--no-save", "--csv", str(tmp_path / "rows.csv"), "-q"],
    )
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert row["status"] == SKIPPED and "the members read x in bf16/fp16; one producer writes one" in row["reason"]
