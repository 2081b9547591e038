"""`router_small_m`: a specialised bf16 x bf16 -> fp32 GEMM for M <= 32 tokens, in Triton: the first tier
of a GateLinear-style router dispatch (docs/design.md, the problem).

One program per output column (expert), as TensorRT-LLM's dsv3RouterGemm does: it streams its weight row
once in BLOCK_K-wide vector loads, multiplies it with the same K slice of every token of the batch, keeps
fp32 partial sums per (token, k lane), and reduces them once at the end. One kernel per call, no split-K
reduce, no atomics (the same bits on every call), no allocation per call, capturable in CUDA graphs.

The block size along K and the warps per program are tuned once per (GPU, N, K, M bucket) by CUDA-graph
device time and cached in the per-user cache; each row says which configuration ran.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.cache import cache_root
from gemmbench.shapes import Case

if TYPE_CHECKING:
    from collections.abc import Callable

# The largest M it runs: beyond, the weight is no longer the whole cost and cuBLAS's tiles win.
MAX_M = 32
# Elements of K a program holds per token and step; at most this many fp32 partial sums per program
# (BLOCK_M x BLOCK_K), so that they stay in registers (32 per thread at 4 warps).
BLOCK_KS = (256, 512, 1024, 2048)
MAX_PARTIALS = 4096 * 4
WARPS = (2, 4, 8)
# Device time per candidate while tuning: enough for a stable median of a ~3-10 us kernel.
TUNE_BUDGET_S = 0.02
CACHE_FILE = "router_small_m.json"
KERNEL_NAME = "gemmbench_router_small_m"  # what the profiler shows; decode.py knows it


@dataclass(frozen=True)
class Config:
    block_k: int
    num_warps: int

    def __str__(self) -> str:
        return f"router_small_m BLOCK_K={self.block_k} warps={self.num_warps}"


def block_m(m: int) -> int:
    """Tokens a program holds: M rounded up to a power of two (the M bucket a tuning is for)."""
    return 1 << max(0, (m - 1).bit_length())


def candidates(m: int) -> list[Config]:
    return [Config(k, w) for k in BLOCK_KS for w in WARPS if block_m(m) * k <= MAX_PARTIALS]


@functools.cache
def _kernel():
    """The Triton kernel, compiled on first use (importing triton is a second or more)."""
    import triton
    import triton.language as tl

    @triton.jit
    def gemmbench_router_small_m(x, w, out, M, N, K, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
        column = tl.program_id(0)
        tokens = tl.arange(0, BLOCK_M)
        lanes = tl.arange(0, BLOCK_K)
        partial = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for start in range(0, K, BLOCK_K):
            k = start + lanes
            in_k = k < K
            weight = tl.load(w + column * K + k, mask=in_k, other=0.0)
            acts = tl.load(x + tokens[:, None] * K + k[None, :], mask=(tokens[:, None] < M) & in_k[None, :], other=0.0)
            partial += acts.to(tl.float32) * weight.to(tl.float32)[None, :]
        tl.store(out + tokens * N + column, tl.sum(partial, axis=1), mask=tokens < M)

    return gemmbench_router_small_m


def launch(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, config: Config) -> torch.Tensor:
    """out = x @ w.T with `config`; x [M, K] and w [N, K] contiguous bf16, out [M, N] fp32."""
    m, k = x.shape
    n = w.shape[0]
    _kernel()[(n,)](x, w, out, m, n, k, BLOCK_M=block_m(m), BLOCK_K=config.block_k, num_warps=config.num_warps)
    return out


class RouterSmallM(Backend):
    name = "router_small_m"
    code = "gemmbench's Triton kernel for M <= 32: one program per expert, the weight read once, fp32 sums"
    # Run only when asked for (--backend router_small_m) until its H200 measurements are in: its first use
    # on a GPU also tunes it, which a default sweep should not pay for unannounced.
    in_default_set = False

    def __init__(self) -> None:
        self._chosen: dict[tuple[int, int, int], Config] = {}  # (N, K, M bucket) -> the tuned configuration

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        reason = super().unavailable_reason(case, device)
        if reason:
            return reason
        if device.type != "cuda":
            return "no CUDA device (a Triton kernel)"
        if importlib.util.find_spec("triton") is None:  # a query: Triton is imported only to run
            return "Triton is not installed (it ships with CUDA builds of torch)"
        if case.m > MAX_M:
            return f"runs M <= {MAX_M} only (the torch.mm tier takes larger M)"
        return None

    def configuration(self, case: Case) -> str | None:
        chosen = self._chosen.get(_shape(case))
        return None if chosen is None else str(chosen)

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        config = self._config(case, inputs)
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: launch(x, w, out, config)

    def _config(self, case: Case, inputs: GemmInputs) -> Config:
        """The configuration for this shape and M bucket: chosen before in this process, cached for this GPU,
        or tuned now (a fraction of a second per candidate, once per GPU)."""
        shape = _shape(case)
        if shape not in self._chosen:
            key = _cache_key(case, inputs.x.device)
            cached = _read_cache().get(key)
            self._chosen[shape] = Config(**cached) if cached else _tune(inputs, candidates(case.m))
            if not cached:
                _write_cache(key, self._chosen[shape])
        return self._chosen[shape]


def _shape(case: Case) -> tuple[int, int, int]:
    return case.n, case.k, block_m(case.m)


def _cache_key(case: Case, device: torch.device) -> str:
    """What a tuning depends on: the GPU model, torch, Triton, and the shape and M bucket."""
    import triton

    gpu = torch.cuda.get_device_name(device)
    return f"{gpu}|torch {torch.__version__}|triton {triton.__version__}|N={case.n}|K={case.k}|M<={block_m(case.m)}"


def _tune(inputs: GemmInputs, configs: list[Config]) -> Config:
    """The candidate with the lowest CUDA-graph device time on these inputs."""
    from gemmbench import timing

    target = timing.Target(budget_s=TUNE_BUDGET_S, min_time_s=TUNE_BUDGET_S)
    times: dict[Config, float] = {}
    for config in configs:
        call: Callable = functools.partial(launch, inputs.x, inputs.w, inputs.out, config)
        try:
            call()
            unroll = timing.fit_graph_unroll(call, upper_bound_us=timing.GRAPH_TARGET_REPLAY_US)
            times[config] = timing.time_graph(call, target, unroll).median_us
        except RuntimeError:  # a configuration this GPU cannot run (registers, shared memory) is not chosen
            continue
    if not times:
        raise RuntimeError("no configuration of router_small_m runs on this GPU")
    return min(times, key=times.get)


def _read_cache() -> dict:
    try:
        return json.loads((cache_root() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, config: Config) -> None:
    cached = _read_cache()
    cached[key] = asdict(config)
    try:
        (cache_root()).mkdir(parents=True, exist_ok=True)
        (cache_root() / CACHE_FILE).write_text(json.dumps(cached, indent=1))
    except OSError:
        pass  # an unwritable cache costs a tuning next time, nothing else
