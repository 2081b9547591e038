"""router_small_m's Triton kernel: a bf16 x bf16 -> fp32 GEMM for M <= 32 tokens, its configurations, and
a prepared call of one (the backend, tuning and dispatch are in router_small_m.py and
router_small_m_tuning.py).

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
`prepare`), and it is capturable in CUDA graphs (the last program of a column block resets its counter;
the counters are zeroed when a shape's workspace is made, once per process, so a launch aborted halfway
would leave them set for that shape until the process ends).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from gemmbench.backends.base import GemmCall, GemmInputs

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
CUDA_CORES, TENSOR_CORES = "fma", "dot"
# Configurations compiled at once where many are (tuning): Triton's compiler spends much of its time in
# LLVM and ptxas, outside Python's lock; more threads than cores would only queue.
COMPILE_THREADS = max(1, min(16, os.cpu_count() or 1))


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
    """The Triton kernel (router_small_m_triton.py), imported on first use: importing triton takes a second or
    more."""
    from gemmbench.backends.router_small_m_triton import gemmbench_router_small_m

    return gemmbench_router_small_m


@dataclass(frozen=True)
class Workspace:
    """What a prepared call needs besides its operands: allocated once per shape, configuration and device
    (never per call), and shared by the calls of that shape. Calls of one stream run one after another, or,
    launched with PDL, overlap only up to their wait for the call before, which comes before any store or
    atomic; each leaves the counters at zero, so sharing is safe; and a call prepared while a CUDA graph is being
    captured (after a producer that returns a new x: measure/layers.py) then launches nothing, where
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


def _arguments(
    x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, config: Config, workspace: Workspace, pdl: bool
) -> tuple[tuple[int, int], tuple, dict]:
    """The grid, arguments and keyword arguments of one launch."""
    (m, k), n = x.shape, w.shape[0]
    on_tensor_cores = config.product == TENSOR_CORES
    grid = (-(-n // config.block_n), config.splits(k))
    options = {
        "BLOCK_M": max(DOT_MIN, block_m(m)) if on_tensor_cores else block_m(m),
        "BLOCK_N": config.block_n,
        "BLOCK_K": config.block_k,
        "K_SPLIT": config.k_split,
        "ON_TENSOR_CORES": on_tensor_cores,
        "PDL": pdl,
        "num_warps": config.num_warps,
        **({"launch_pdl": True} if pdl else {}),  # the launcher option, only where used (not in the interpreter)
    }
    return grid, (x, w, out, workspace.partials, workspace.arrivals, m, n, k), options


def launch(
    x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, config: Config, workspace: Workspace, pdl: bool = False
) -> torch.Tensor:
    """out = x @ w.T with `config`; x [M, K] and w [N, K] contiguous bf16, out [M, N] fp32; `pdl`: launched
    with programmatic dependent launch (Triton's launch_pdl), waiting for the producer before loading x."""
    grid, args, options = _arguments(x, w, out, config, workspace, pdl)
    _kernel()[grid](*args, **options)
    return out


def compile_all(inputs: GemmInputs, configs: list[Config], pdl: bool = False) -> dict[Config, Exception]:
    """Compile the kernel for each of `configs` on `inputs` (what their first launch would compile), at
    once (`compile_jobs`). A configuration that fails to compile is returned with its exception, for the
    caller to drop; the others are then in Triton's cache."""
    failures = compile_jobs([(inputs, config, pdl) for config in configs])
    return {configs[index]: exc for index, exc in failures.items()}


def compile_jobs(jobs: list[tuple[GemmInputs, Config, bool]]) -> dict[int, Exception]:
    """Compile the kernel for each (inputs, configuration, PDL) of `jobs`, at once, in threads: Triton
    compiles outside the interpreter's lock for much of the work (LLVM's passes, ptxas in a subprocess).
    Each compiled kernel's launcher is built and the kernel loaded too (`_load`). Launches nothing. Returns
    the exception of each job (by index) that failed to compile."""
    kernel = _kernel()

    def compile_one(inputs: GemmInputs, config: Config, pdl: bool) -> None:
        with torch.cuda.device(inputs.x.device):  # each thread starts on GPU 0; compile for the inputs' GPU
            workspace = Workspace.for_call(inputs.x, inputs.w, config)
            grid, args, options = _arguments(inputs.x, inputs.w, inputs.out, config, workspace, pdl)
            _load(kernel.warmup(*args, grid=grid, **options))

    failures: dict[int, Exception] = {}
    with ThreadPoolExecutor(max_workers=min(len(jobs), COMPILE_THREADS) or 1) as pool:
        for index, future in enumerate([pool.submit(compile_one, *job) for job in jobs]):
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - a configuration this GPU cannot build is dropped
                failures[index] = exc
    return failures


def _load(compiled) -> None:
    """What a compiled kernel's first launch does besides launching, done now: Triton builds its launcher (a
    C module its host compiler builds once per kernel signature, then cached) and loads the kernel on the
    GPU when the `run` of the CompiledKernel `warmup` returned is first read. A failure here is left to that
    first launch, which reports it; the compilation itself succeeded."""
    try:
        _ = (compiled.result() if hasattr(compiled, "result") else compiled).run  # reading it is the work
    except Exception:  # noqa: BLE001 - see the docstring
        return


def specialization(m: int, config: Config) -> tuple:
    """What Triton compiles the kernel for at M with `config` (PDL aside): the tile height (`_arguments`) and
    M's integer specialisation (Triton compiles an int argument apart where it is 1 or a multiple of 16).
    Two M values with the same key run the same compiled kernel."""
    height = max(DOT_MIN, block_m(m)) if config.product == TENSOR_CORES else block_m(m)
    return config, height, m == 1, m % 16 == 0


def prepared(inputs: GemmInputs, config: Config, pdl: bool = False) -> GemmCall:
    """A call of `config` on `inputs`, with its workspace."""
    workspace = Workspace.for_call(inputs.x, inputs.w, config)
    return functools.partial(launch, inputs.x, inputs.w, inputs.out, config, workspace, pdl)
