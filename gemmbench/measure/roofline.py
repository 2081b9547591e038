"""The floor: how fast a GEMM could be on this device, from its measured memory bandwidth and bf16
matrix throughput. A large copy and a large matmul, measured once per GPU and cached (docs/design.md,
what was measured: the router weight's 3.7 MB at ~3 TB/s is ~1.2 us, where cuBLAS takes ~5.5 us)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone

import torch

from gemmbench.cache import read_json_cache, write_json_cache
from gemmbench.records.provenance import Roofline
from gemmbench.timing import timers
from gemmbench.timing.clocks import ClockWatch, warm_device

# 1 GiB copied: far beyond any L2, so the copy runs at device-memory speed.
COPY_BYTES = 1 << 30
# 8192^3 bf16: ~1.5 ms on an H100/H200, long enough for the matrix units' sustained rate.
MATMUL_SIZE = 8192
WARM_REPEATS = 3
TIMED_REPEATS = 10
CACHE_FILE = "roofline.json"


def _time_ms(fn) -> float:
    for _ in range(WARM_REPEATS):
        fn()
    return timers.mean_time_us(fn, TIMED_REPEATS) / 1e3


def _copy_gbps(device: torch.device) -> float:
    source = torch.randn(COPY_BYTES // 4, device=device)
    target = torch.empty_like(source)
    copy_ms = _time_ms(lambda: target.copy_(source))
    return 2 * COPY_BYTES / (copy_ms * 1e-3) / 1e9  # bytes read plus bytes written


def _matmul_tflops(device: torch.device) -> float:
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    matmul_ms = _time_ms(lambda: torch.mm(a, b))
    return 2 * MATMUL_SIZE**3 / (matmul_ms * 1e-3) / 1e12


def measure(device: torch.device) -> Roofline:
    """Measure now, on a warmed device (clocks ramp from idle) and random data (never zeros: docs/design.md,
    measurement rules); the buffers are freed on return."""
    warm_device(device, ClockWatch(device))
    roofline = Roofline(
        bandwidth_gbps=_copy_gbps(device),
        bf16_tflops=_matmul_tflops(device),
        measured=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    torch.cuda.empty_cache()
    return roofline


def cache_key(device: torch.device) -> str:
    """One measurement per GPU model, driver stack and torch: what the two figures depend on."""
    return f"{torch.cuda.get_device_name(device)}|torch {torch.__version__}|CUDA {torch.version.cuda}"


def for_device(device: torch.device, remeasure: bool = False, warn=lambda message: None) -> Roofline | None:
    """The cached figures for this GPU, measured first if there are none; None on the CPU. A cache file that
    cannot be read is reported through `warn` and rebuilt."""
    if device.type != "cuda":
        return None
    cached, problem = read_json_cache(CACHE_FILE)
    if problem:
        warn(problem)
    key = cache_key(device)
    if key in cached and not remeasure:
        try:
            return Roofline(**cached[key])
        except TypeError:
            pass  # an older layout: measure again
    roofline = measure(device)
    cached[key] = asdict(roofline)
    write_json_cache(CACHE_FILE, cached)
    return roofline
