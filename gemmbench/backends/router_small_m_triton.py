"""router_small_m's Triton kernel, in a module of its own so that triton is imported only where the kernel
is first used (router_small_m_kernel.py imports this module then): importing triton takes a second or more,
and machines without it (CI, a CPU) never do.

One program per (block of N columns, split of K): every token's row of x against the block's weight rows,
summed over the split in registers (`tl.dot` on tensor cores, or multiply-adds on CUDA cores); with several
splits, each program stores its partial sums and the last of a column block to arrive adds them, in split
order, and resets the block's arrival counter for the next call.
"""

import triton
import triton.language as tl


@triton.jit
def gemmbench_router_small_m(  # the name the profiler shows; analysis/kernel_info.py knows it
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
        weight = tl.load(w + columns[:, None] * K + k[None, :], mask=(columns[:, None] < N) & in_k[None, :], other=0.0)
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
