"""`router_small_m`: a specialised bf16 x bf16 -> fp32 GEMM for M <= 32 tokens, in Triton: the first tier
of a GateLinear-style router dispatch (docs/design.md, the problem; docs/tiers.md, the measurements).

Each program owns BLOCK_N output columns (experts), as TensorRT-LLM's dsv3RouterGemm owns one per block: it
reads their weight rows once, multiplies them with the same K slice of every token of the batch, keeps fp32
partial sums per (token, column, k lane) and reduces them once at the end. The walk along K is unrolled
(K is a compile-time constant), so that all of a program's loads can be in flight at once: at these sizes
the kernel is bound by how many bytes are in flight per SM, not by arithmetic. BLOCK_N > 1 reads each
token's activations once for several columns, which matters as M grows (all programs read all of x).
One kernel per call, no split-K reduce, no atomics (the same bits on every call), no allocation per call,
capturable in CUDA graphs.

BLOCK_N, BLOCK_K and the warps per program are tuned once per (GPU, N, K, M bucket) by cold-L2 CUDA-graph
device time and cached in the per-user cache; each row says which configuration ran.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import asdict, dataclass

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.cache import cache_root
from gemmbench.shapes import Case

# The largest M it runs: beyond, the weight is no longer the whole cost and cuBLAS's tiles win.
MAX_M = 32
# Columns a program owns, and elements of K it holds per token and step. At most MAX_PARTIALS fp32 partial
# sums per program (BLOCK_M x BLOCK_N x BLOCK_K), so that they stay in registers: 64 per thread at 8 warps.
BLOCK_NS = (1, 2, 4)
BLOCK_KS = (256, 512, 1024, 2048)
MAX_PARTIALS = 4096 * 4
WARPS = (4, 8)
# Device time per candidate while tuning: enough for a stable median of a ~2-10 us kernel.
TUNE_BUDGET_S = 0.02
CACHE_FILE = "router_small_m.json"
KERNEL_NAME = "gemmbench_router_small_m"  # what the profiler shows; decode.py knows it


@dataclass(frozen=True)
class Config:
    block_n: int
    block_k: int
    num_warps: int

    def __str__(self) -> str:
        return f"router_small_m BLOCK_N={self.block_n} BLOCK_K={self.block_k} warps={self.num_warps}"


def block_m(m: int) -> int:
    """Tokens a program holds: M rounded up to a power of two (the M bucket a tuning is for)."""
    return 1 << max(0, (m - 1).bit_length())


def candidates(m: int) -> list[Config]:
    return [Config(n, k, w) for n in BLOCK_NS for k in BLOCK_KS for w in WARPS if block_m(m) * n * k <= MAX_PARTIALS]


@functools.cache
def _kernel():
    """The Triton kernel, compiled on first use (importing triton is a second or more)."""
    import triton
    import triton.language as tl

    @triton.jit
    def gemmbench_router_small_m(
        x, w, out, M, N, K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr
    ):
        columns = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        tokens = tl.arange(0, BLOCK_M)
        lanes = tl.arange(0, BLOCK_K)
        partial = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
        for start in tl.static_range(0, K, BLOCK_K):
            k = start + lanes
            in_k = k < K
            weight = tl.load(
                w + columns[:, None] * K + k[None, :], mask=(columns[:, None] < N) & in_k[None, :], other=0.0
            )
            acts = tl.load(x + tokens[:, None] * K + k[None, :], mask=(tokens[:, None] < M) & in_k[None, :], other=0.0)
            partial += acts.to(tl.float32)[:, None, :] * weight.to(tl.float32)[None, :, :]
        sums = tl.sum(partial, axis=2)
        tl.store(
            out + tokens[:, None] * N + columns[None, :], sums, mask=(tokens[:, None] < M) & (columns[None, :] < N)
        )

    return gemmbench_router_small_m


def launch(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, config: Config) -> torch.Tensor:
    """out = x @ w.T with `config`; x [M, K] and w [N, K] contiguous bf16, out [M, N] fp32."""
    m, k = x.shape
    n = w.shape[0]
    grid = (-(-n // config.block_n),)  # programs: N / BLOCK_N, rounded up
    _kernel()[grid](
        x,
        w,
        out,
        m,
        n,
        K=k,
        BLOCK_M=block_m(m),
        BLOCK_N=config.block_n,
        BLOCK_K=config.block_k,
        num_warps=config.num_warps,
    )
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
            self._chosen[shape] = Config(**cached) if cached else _tune(case, inputs.x.device)
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


def _tune(case: Case, device: torch.device) -> Config:
    """The candidate with the lowest CUDA-graph device time with a cold L2 (rotating input copies, as a
    cold sweep times it): where the weight comes from DRAM, the bytes in flight decide, not the hot case's."""
    times = candidate_times(case, device)
    if not times:
        raise RuntimeError("no configuration of router_small_m runs on this GPU")
    return min(times, key=times.get)


def candidate_times(case: Case, device: torch.device) -> dict[Config, float]:
    """Median cold-L2 CUDA-graph device time (us) of every candidate this GPU runs, for `case`."""
    from gemmbench import timing
    from gemmbench.inputs import input_copies, rotating

    copies, _ = input_copies(case, device, seed=0, cold=True)
    target = timing.Target(budget_s=TUNE_BUDGET_S, min_time_s=TUNE_BUDGET_S)
    times: dict[Config, float] = {}
    for config in candidates(case.m):
        call = rotating([functools.partial(launch, c.x, c.w, c.out, config) for c in copies])
        try:
            call()
            unroll = timing.fit_graph_unroll(
                call, upper_bound_us=timing.GRAPH_TARGET_REPLAY_US, multiple_of=len(copies)
            )
            times[config] = timing.time_graph(call, target, unroll).median_us
        except RuntimeError:  # a configuration this GPU cannot run (registers, shared memory) is not chosen
            continue
    return times


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
