import pytest
import torch

from gemmbench import timing
from gemmbench.backends import REGISTRY, Backend
from gemmbench.backends.fake import FAKE_LAUNCH_US
from gemmbench.measure import SweepOptions, run_points
from gemmbench.records import ERROR, OK, SKIPPED
from gemmbench.shapes import Case

CPU = torch.device("cpu")
FAST = SweepOptions(warmup_s=0.0, target=timing.Target(budget_s=0.001, min_time_s=0.0))


class LazyBackend(Backend):
    """Writes nothing: the poisoned output must expose it."""

    name = "lazy"

    def prepare(self, case, inputs):
        return lambda: inputs.out


class BrokenBackend(Backend):
    name = "broken"

    def prepare(self, case, inputs):
        def call():
            raise RuntimeError("cuBLAS said no\nsecond line")

        return call


class HalfWrongBackend(Backend):
    name = "half_wrong"

    def prepare(self, case, inputs):
        return lambda: torch.mm(inputs.x.float(), inputs.w.float().t(), out=inputs.out).mul_(0.5)


def test_cpu_sweep_gives_a_row_per_case_and_backend(small_case):
    backends = [REGISTRY[n] for n in ("mm_out_dtype", "upcast", "linear_cast", "fake")]
    records = list(run_points([small_case, Case("custom", "8x16", "custom", 2, 8, 16)], backends, CPU, FAST))
    assert [(r.m, r.backend) for r in records] == [(m, b.name) for m in (4, 2) for b in backends]
    by_backend = {r.backend: r for r in records if r.m == 4}
    assert by_backend["mm_out_dtype"].status == SKIPPED and "aten::mm.dtype" in by_backend["mm_out_dtype"].reason
    upcast = by_backend["upcast"]
    assert upcast.status == OK and upcast.latency_timer == "host_clock" and upcast.device_median_us is None
    assert upcast.rel_err < 1e-6 and upcast.tflops > 0 and upcast.gbps > 0 and upcast.kernels is None
    assert 1e-4 < by_backend["linear_cast"].rel_err < 1e-2


def test_fake_backend_times_are_deterministic(small_case):
    (record,) = run_points([small_case], [REGISTRY["fake"]], CPU, FAST)
    assert record.latency_median_us == pytest.approx(record.device_median_us + FAKE_LAUNCH_US)
    assert record.tflops == pytest.approx(small_case.flops / record.device_median_us / 1e6)


@pytest.mark.parametrize(
    "backend, reason",
    [
        (LazyBackend(), "wrong result: rel_err nan"),
        (HalfWrongBackend(), "wrong result: rel_err 0.5"),
        (BrokenBackend(), "RuntimeError: cuBLAS said no"),
    ],
)
def test_failures_are_error_rows_not_exceptions(small_case, backend, reason):
    (record,) = run_points([small_case], [backend], CPU, FAST)
    assert record.status == ERROR and record.reason.startswith(reason) and "\n" not in record.reason
    assert record.latency_median_us is None


def test_unsupported_dtypes_are_skipped():
    case = Case("custom", "x", "custom", 2, 8, 16, in_dtype="fp16")
    (record,) = run_points([case], [REGISTRY["upcast"]], CPU, FAST)
    assert record.status == SKIPPED and "only bf16" in record.reason


def test_check_only_sweep_skips_timers(small_case):
    (record,) = run_points([small_case], [REGISTRY["upcast"]], CPU, SweepOptions(time_calls=False))
    assert record.status == OK and record.rel_err is not None and record.latency_median_us is None


def test_an_unavailable_profiler_warns_once_and_rows_keep_going(monkeypatch):
    from gemmbench import measure, profile

    calls, warnings = [], []

    def refuse(call, device):
        calls.append(1)
        raise profile.ProfilerUnavailable("CUPTI refused")

    monkeypatch.setattr(profile, "capture_kernels", refuse)
    capture = measure._KernelCapture(True, warnings.append)
    cuda = torch.device("cuda")
    assert capture(lambda: None, cuda) is None and capture(lambda: None, cuda) is None
    assert len(calls) == 1 and len(warnings) == 1 and "CUPTI refused" in warnings[0]


def test_cpu_rows_carry_no_l2_mode_and_their_ci(small_case):
    (record,) = run_points([small_case], [REGISTRY["upcast"]], CPU, FAST)
    assert record.l2_mode is None and record.l2_copies is None
    assert record.latency_ci_low_us <= record.latency_median_us <= record.latency_ci_high_us
    assert record.noisy in (True, False) and record.throttled is None
