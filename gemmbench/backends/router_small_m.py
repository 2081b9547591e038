"""`router_small_m`: a specialised bf16 x bf16 -> fp32 GEMM for M <= 32 tokens, in Triton: the first tier
of a GateLinear-style router dispatch (docs/design.md, the problem; docs/tiers.md, the measurements).

At these sizes the GEMM is a read of the weight, and its time is decided by how many bytes are in flight
per SM, not by arithmetic. One kernel, two ways of tiling it, tuned per shape:

- For a few tokens, a program per expert row (BLOCK_N rows) that walks all of K, as TensorRT-LLM's
  dsv3RouterGemm does: the walk is unrolled (K_SPLIT is a compile-time constant), so that all of a
  program's loads can be issued at once, and the products run on CUDA cores with fp32 partial sums per
  (token, column, k lane), reduced once at the end. The fastest at M <= 4 on an H200.
- From about 8 tokens, tensor-core tiles (`tl.dot`, M padded to 16 rows) of BLOCK_N columns x K_SPLIT
  elements of K, and the splits of a column block summed in the same kernel: each program stores its fp32
  partial in a workspace and counts itself in with one atomic; the last to arrive adds the partials in
  split order and writes the output.

With programmatic dependent launch (`pdl=True`, Triton's `launch_pdl`) a program lets its dependents launch
as it starts, issues its first weight tile, and waits for its producer before its first load of x; every
store comes after that wait, so a call that overlaps the one before never touches its workspace early.

The atomic only picks who adds, never the order, so every call gives the same bits; there is one kernel
per call (cuBLAS runs nvjet and a split-K reduce), no allocation per call (the workspace comes with
`prepare`), and it is capturable in CUDA graphs (the last program resets its counter; a launch that is
aborted halfway would leave it set, and `prepare` starts each call's counters at zero). The tiling is
tuned once per (GPU, N, K, M bucket) by cold-L2 CUDA-graph device time and cached in the per-user cache;
each row says which configuration ran.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import asdict, dataclass

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.cache import cache_root, read_json_cache, write_json_cache
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import input_copies, rotating

# The largest M it runs: at 32 it already loses to cuBLAS on three of five router GEMMs on an H200 (docs/tiers.md).
MAX_M = 32
# The kernel's offsets into the weight are 32-bit: N x K must stay below this.
MAX_WEIGHT_ELEMENTS = 2**31
# tl.dot's smallest tile side: M is padded to it on tensor cores.
DOT_MIN = 16
# At most this many fp32 partial sums per program on CUDA cores (BLOCK_M x BLOCK_N x BLOCK_K), so that they
# stay in registers: 128 per thread at 4 warps.
MAX_PARTIALS = 4096 * 4
# Warps per program: tuning 4 against 8 on an H200 (an earlier version of this kernel) picked 4 at 20 points
# and 8 at 10 of 30; one value halves the candidates, and so the first use's tuning time.
WARPS = 4
# Device time per candidate while tuning: enough for a stable median of a ~2-10 us kernel.
TUNE_BUDGET_S = 0.02
CACHE_FILE = "router_small_m.json"
CUDA_CORES, TENSOR_CORES = "fma", "dot"


@dataclass(frozen=True)
class Config:
    """One way to run it: the product inside a tile, the tile (BLOCK_N columns x K_SPLIT of K, walked
    BLOCK_K at a time) and the warps per program."""

    product: str  # CUDA_CORES or TENSOR_CORES
    block_n: int
    block_k: int
    k_split: int
    num_warps: int = WARPS

    def __str__(self) -> str:
        return (
            f"router_small_m {self.product} BLOCK_N={self.block_n} BLOCK_K={self.block_k} "
            f"K_SPLIT={self.k_split} warps={self.num_warps}"
        )

    def splits(self, k: int) -> int:
        return -(-k // self.k_split)


def block_m(m: int) -> int:
    """Tokens a program holds: M rounded up to a power of two (the M bucket a tuning is for)."""
    return 1 << max(0, (m - 1).bit_length())


def candidates(m: int) -> list[Config]:
    """The configurations tuned for M: tensor-core tiles for every M, CUDA-core ones where the partial sums
    fit in registers. K_SPLIT 8192 is a whole router row in one program (no split) for K <= 8192."""
    dot = [
        Config(TENSOR_CORES, n, k, split)
        for n in (16, 32)
        for k in (128, 256)
        for split in (256, 512, 1024)
        if split >= k
    ]
    fma = [
        Config(CUDA_CORES, n, k, split)
        for n in (1, 2)
        for k in (512, 1024, 2048)
        for split in (1024, 2048, 8192)
        if split >= k and block_m(m) * n * k <= MAX_PARTIALS
    ]
    return dot + fma


@functools.cache
def _kernel():
    """The Triton kernel, compiled on first use (importing triton is a second or more)."""
    import triton
    import triton.language as tl

    @triton.jit
    def gemmbench_router_small_m(  # the name the profiler shows; decode.py knows it
        x,
        w,
        out,
        workspace,  # [splits, M, N] fp32 partial sums
        arrivals,  # [column blocks] int32, zero between calls
        M,
        N,
        K,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        K_SPLIT: tl.constexpr,
        ON_TENSOR_CORES: tl.constexpr,
        PDL: tl.constexpr,  # launched with programmatic dependent launch: wait for the producer before x
    ):
        if PDL:  # a dependent may launch now and load its own weights while this program runs
            tl.extra.cuda.gdc_launch_dependents()
        column_block = tl.program_id(0)
        split = tl.program_id(1)
        splits = tl.num_programs(1)
        columns = column_block * BLOCK_N + tl.arange(0, BLOCK_N)
        tokens = tl.arange(0, BLOCK_M)
        lanes = tl.arange(0, BLOCK_K)
        if ON_TENSOR_CORES:
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        else:
            partial = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
        for start in tl.static_range(0, K_SPLIT, BLOCK_K):  # unrolled: all of a tile's loads in flight
            k = split * K_SPLIT + start + lanes
            in_k = k < K
            weight = tl.load(
                w + columns[:, None] * K + k[None, :], mask=(columns[:, None] < N) & in_k[None, :], other=0.0
            )
            if PDL:
                if start == 0:  # the first weight tile is in flight; x is the producer's: wait for it
                    tl.extra.cuda.gdc_wait()
            acts = tl.load(x + tokens[:, None] * K + k[None, :], mask=(tokens[:, None] < M) & in_k[None, :], other=0.0)
            if ON_TENSOR_CORES:
                acc = tl.dot(acts, tl.trans(weight), acc)
            else:
                partial += acts.to(tl.float32)[:, None, :] * weight.to(tl.float32)[None, :, :]
        if not ON_TENSOR_CORES:
            acc = tl.sum(partial, axis=2)
        at = tokens[:, None] * N + columns[None, :]
        valid = (tokens[:, None] < M) & (columns[None, :] < N)
        if splits == 1:
            tl.store(out + at, acc, mask=valid)
        else:
            tl.store(workspace + split * M * N + at, acc, mask=valid)
            tl.debug_barrier()  # every thread's partial is stored before the program counts itself in
            arrived = tl.atomic_add(arrivals + column_block, 1, sem="acq_rel")
            if arrived == splits - 1:  # the last program of this column block adds the partials, in split order
                total = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
                for s in range(0, splits):
                    total += tl.load(workspace + s * M * N + at, mask=valid, other=0.0, cache_modifier=".cg")
                tl.store(out + at, total, mask=valid)
                tl.atomic_xchg(arrivals + column_block, 0)  # ready for the next call

    return gemmbench_router_small_m


@dataclass(frozen=True)
class Workspace:
    """What a prepared call needs besides its operands: allocated once per shape, configuration and device
    (never per call), and shared by the calls of that shape. Calls of one stream run one after another and
    each leaves the counters at zero, so sharing is safe; and a call prepared while a CUDA graph is being
    captured (after a producer that returns a new x: measure/context.py) then launches nothing, where
    zeroing new counters would put a memset into the graph."""

    partials: torch.Tensor
    arrivals: torch.Tensor

    @classmethod
    def for_call(cls, x: torch.Tensor, w: torch.Tensor, config: Config) -> Workspace:
        (m, k), n = x.shape, w.shape[0]
        return _workspace(m, n, k, config, x.device)


@functools.cache
def _workspace(m: int, n: int, k: int, config: Config, device: torch.device) -> Workspace:
    splits = config.splits(k)
    partials = torch.empty((splits, m, n) if splits > 1 else (1,), dtype=torch.float32, device=device)
    arrivals = torch.zeros(-(-n // config.block_n), dtype=torch.int32, device=device)
    return Workspace(partials, arrivals)


def launch(
    x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, config: Config, workspace: Workspace, pdl: bool = False
) -> torch.Tensor:
    """out = x @ w.T with `config`; x [M, K] and w [N, K] contiguous bf16, out [M, N] fp32; `pdl`: launched
    with programmatic dependent launch (Triton's launch_pdl), waiting for the producer before loading x."""
    (m, k), n = x.shape, w.shape[0]
    on_tensor_cores = config.product == TENSOR_CORES
    grid = (-(-n // config.block_n), config.splits(k))
    _kernel()[grid](
        x,
        w,
        out,
        workspace.partials,
        workspace.arrivals,
        m,
        n,
        k,
        BLOCK_M=max(DOT_MIN, block_m(m)) if on_tensor_cores else block_m(m),
        BLOCK_N=config.block_n,
        BLOCK_K=config.block_k,
        K_SPLIT=config.k_split,
        ON_TENSOR_CORES=on_tensor_cores,
        PDL=pdl,
        num_warps=config.num_warps,
        **({"launch_pdl": True} if pdl else {}),  # the launcher option, only where used (not in the interpreter)
    )
    return out


def prepared(inputs: GemmInputs, config: Config, pdl: bool = False) -> GemmCall:
    """A call of `config` on `inputs`, with its workspace."""
    workspace = Workspace.for_call(inputs.x, inputs.w, config)
    return functools.partial(launch, inputs.x, inputs.w, inputs.out, config, workspace, pdl)


class RouterSmallM(Backend):
    name = "router_small_m"
    code = "gemmbench's Triton kernel for M <= 32: weight tiles read once, split-K summed in the same kernel"
    launches_with_pdl = True

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
        if case.n * case.k >= MAX_WEIGHT_ELEMENTS:
            return f"the weight's N x K = {case.n * case.k} elements is beyond its 32-bit offsets"
        return None

    def tuning_note(self, case: Case, device: torch.device) -> str | None:
        if _shape(case) in self._chosen or _cached_config(_cache_key(case, device)):
            return None
        problem = read_json_cache(CACHE_FILE)[1]
        return (
            (f"{problem}; " if problem else "")
            + f"tuning router_small_m for N={case.n}, K={case.k}, M <= {block_m(case.m)} on this GPU "
            f"({len(candidates(case.m))} configurations; once, then cached in {cache_root() / CACHE_FILE})…"
        )

    def configuration(self, case: Case) -> str | None:
        chosen = self._chosen.get(_shape(case))
        return None if chosen is None else str(chosen)

    def prepare(self, case: Case, inputs: GemmInputs, pdl: bool = False) -> GemmCall:
        return prepared(inputs, self._config(case, inputs), pdl)

    def _config(self, case: Case, inputs: GemmInputs) -> Config:
        """The configuration for this shape and M bucket: chosen before in this process, cached for this GPU,
        or tuned now (a fraction of a second per candidate, once per GPU)."""
        shape = _shape(case)
        if shape not in self._chosen:
            key = _cache_key(case, inputs.x.device)
            cached = _cached_config(key)
            self._chosen[shape] = cached or _tune(case, inputs.x.device)
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
    copies, _ = input_copies(case, device, seed=0, cold=True)
    target = timers.Target(budget_s=TUNE_BUDGET_S, min_time_s=TUNE_BUDGET_S)
    times: dict[Config, float] = {}
    for config in candidates(case.m):
        call = rotating([prepared(c, config) for c in copies])
        try:
            call()
            unroll = timers.fit_graph_unroll(
                call, upper_bound_us=timers.GRAPH_TARGET_REPLAY_US, multiple_of=len(copies)
            )
            times[config] = timers.time_graph(call, target, unroll).median_us
        except RuntimeError:  # a configuration this GPU cannot run (registers, shared memory) is not chosen
            continue
    return times


def _cached_config(key: str) -> Config | None:
    """The configuration cached for `key`, or None (also for one written by an older gemmbench, and where the
    cache file is torn: `tuning_note` says so)."""
    try:
        return Config(**read_json_cache(CACHE_FILE)[0][key])
    except (KeyError, TypeError):
        return None


def _write_cache(key: str, config: Config) -> None:
    cached = read_json_cache(CACHE_FILE)[0]
    cached[key] = asdict(config)
    write_json_cache(CACHE_FILE, cached)
