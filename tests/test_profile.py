from gemmbench.records import KernelRun
from gemmbench.timing.profile import CALL_PREFIX, ProfiledEvent, group_by_call


def host(name, start, end, corr):
    return ProfiledEvent(name, False, start, end, corr)


def kernel(name, start, end, corr):
    return ProfiledEvent(name, True, start, end, corr)


def test_kernels_go_to_the_call_that_launched_them_in_launch_order():
    # Two calls, as the profiler reports them on an H200: a split-K GEMM then its reduce. The device
    # side also carries a copy of each call's annotation, which is not a kernel.
    events = [
        host(f"{CALL_PREFIX}0", 0, 100, 1),
        host("cuLaunchKernelEx", 10, 20, 18),
        kernel("nvjet_gemm", 30, 34, 18),
        kernel(f"{CALL_PREFIX}0", 30, 40, 1),
        host("cudaLaunchKernelExC", 21, 25, 20),
        kernel("splitKreduce", 38, 40, 20),
        host("aten::mm", 5, 90, 5),
        host(f"{CALL_PREFIX}1", 200, 300, 7),
        host("cuLaunchKernelEx", 210, 220, 45),
        host("cudaLaunchKernelExC", 221, 225, 47),
        kernel("splitKreduce", 238, 240.5, 47),
        kernel("nvjet_gemm", 230, 234, 45),
    ]
    calls = group_by_call(events, 2)
    assert calls == [
        [KernelRun("nvjet_gemm", 4), KernelRun("splitKreduce", 2)],
        [KernelRun("nvjet_gemm", 4), KernelRun("splitKreduce", 2.5)],
    ]


def test_kernels_outside_any_profiled_call_are_ignored():
    events = [host(f"{CALL_PREFIX}0", 0, 10, 1), host("cudaLaunchKernel", 50, 60, 9), kernel("stray", 70, 71, 9)]
    assert group_by_call(events, 1) == [[]]


def test_each_of_many_calls_gets_its_own_kernels_whatever_order_the_events_come_in():
    calls = 50
    events = []
    for index in reversed(range(calls)):  # ranges listed last first; launches between ranges are strays
        start = 100.0 * index
        events += [
            host(f"{CALL_PREFIX}{index}", start, start + 50, 10_000 + index),
            host("cudaLaunchKernel", start + 50, start + 51, index),  # on the range's end: still inside
            kernel(f"k{index}", start + 60, start + 61, index),
            host("cudaLaunchKernel", start + 70, start + 71, 5_000 + index),
            kernel("stray", start + 80, start + 81, 5_000 + index),
        ]
    assert group_by_call(events, calls) == [[KernelRun(f"k{index}", 1)] for index in range(calls)]
