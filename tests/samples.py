"""Records shared by the tests of the record model and the run file, and a helper that measures points."""

from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.points import measure_cases, profile_records
from gemmbench.records import ERROR, OK, SKIPPED, ClockSummary, KernelRun, Record, TimerSummary
from gemmbench.spec.cases import Case

CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)


def sample_records():
    return [
        Record.for_case(
            CASE,
            "mm_out_dtype",
            OK,
            rel_err=1.4e-6,
            latency=TimerSummary("cuda_events", 27.5, iqr_us=1.0, min_us=26.0, samples=100),
            device=TimerSummary("cuda_graph", 5.6, iqr_us=0.1, min_us=5.5, samples=50),
            tflops=0.65,
            gbps=660.0,
            kernels=(
                KernelRun("nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT", 4.2),
                KernelRun("void cublasLt::splitKreduce_kernel<32, 16, int, float>(x, y)", 1.7),
            ),
            kernel_count=2,
            kernel_sum_us=5.9,
            noisy=False,
            l2_mode="cold",
            l2_copies=29,
            clocks=ClockSummary(sm_clock_mhz=1755, throttle_reasons="sw_power_cap", throttled=True),
        ),
        Record.for_case(CASE, "upcast", SKIPPED, "no CUDA device"),
        Record.for_case(CASE, "linear_cast", ERROR, "out of memory", rel_err=float("nan")),
    ]


def timed(backend: str, device_us: float, rel_err: float, case: Case = CASE, **results) -> Record:
    """An ok row with a device time and an eager latency 20 µs above it."""
    return Record.for_case(
        case,
        backend,
        OK,
        rel_err=rel_err,
        latency=TimerSummary("cuda_events", device_us + 20),
        device=TimerSummary("cuda_graph", device_us),
        **results,
    )


def measure_all(cases, backends, device, options=None, bench_type=Bench):
    """Every point measured on a `bench_type` bench, then profiled where `options.capture_kernels` (as a
    session does, without a run file or provenance)."""
    options = options or MeasureOptions()
    bench = bench_type(device, options)
    records = list(measure_cases(cases, backends, bench))
    return profile_records(records, backends, bench) if options.capture_kernels else records
