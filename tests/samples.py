"""Records shared by the tests of the record model and the run file."""

from gemmbench.records import ERROR, OK, SKIPPED, KernelRun, Record
from gemmbench.shapes import Case

CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)


def sample_records():
    return [
        Record.for_case(
            CASE,
            "mm_out_dtype",
            OK,
            rel_err=1.4e-6,
            latency_timer="cuda_events",
            latency_median_us=27.5,
            latency_iqr_us=1.0,
            latency_min_us=26.0,
            latency_samples=100,
            device_timer="cuda_graph",
            device_median_us=5.6,
            device_iqr_us=0.1,
            device_min_us=5.5,
            device_samples=50,
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
            sm_clock_mhz=1755,
            throttle_reasons="sw_power_cap",
            throttled=True,
        ),
        Record.for_case(CASE, "upcast", SKIPPED, "no CUDA device"),
        Record.for_case(CASE, "linear_cast", ERROR, "out of memory", rel_err=float("nan")),
    ]
