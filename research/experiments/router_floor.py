"""How far below router_small_m a kernel of its shape can go: floors for the DeepSeek-V3 router at M = 1
(N 256, K 7168), cold L2, CUDA-graph device time and eager latency.

- an empty Triton kernel of 256 programs, and torch's smallest kernel (a fill of the 1 KB output): what
  a graph node costs before any byte is read, and what launching from Python costs eagerly;
- a Triton kernel that only reads the weight, one program per row, at 4 and 8 warps: the "one program per
  expert" design with no arithmetic;
- router_small_m as tuned, and mm_out_dtype.

Usage: python research/experiments/router_floor.py OUT_DIR   (writes OUT_DIR/router_floor.md)
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.tuning import CaseTimer
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers as timing
from gemmbench.timing.inputs import input_copies, rotating

CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
TARGET = timing.Target(budget_s=0.1, min_time_s=0.1)


@functools.cache
def kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def empty(out):
        pass

    @triton.jit
    def read_weight(w, out, K, BLOCK_K: tl.constexpr):
        row = tl.program_id(0)
        k = tl.arange(0, BLOCK_K)
        tl.store(out + row, tl.sum(tl.load(w + row * K + k, mask=k < K, other=0.0).to(tl.float32)))

    return empty, read_weight


def timed(calls) -> tuple[float, float]:
    """(device µs, eager latency µs), cold L2 over the rotating `calls`."""
    call = rotating(calls)
    timing.warm_up(call, 0.05, torch.cuda.synchronize)
    latency = timing.time_events(call, TARGET)
    unroll = timing.fit_graph_unroll(call, latency.min_us, multiple_of=len(calls))
    return timing.time_graph(call, TARGET, unroll).median_us, latency.median_us


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for router_floor.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).out_dir
    device = torch.device("cuda")
    copies, _ = input_copies(CASE, device, seed=0, cold=True)
    REGISTRY["router_small_m"].tune(CASE, copies[0], CaseTimer(CASE, Bench(device, MeasureOptions())))  # as a sweep
    empty, read_weight = kernels()
    n, k = CASE.n, CASE.k
    block_k = 1 << (k - 1).bit_length()
    points = {
        "empty Triton kernel, 256 programs": [lambda c=c: empty[(n,)](c.out) for c in copies],
        "torch fill of the output (1 KB)": [lambda c=c: c.out.zero_() for c in copies],
        "Triton: read the weight only, a program per row, 4 warps": [
            lambda c=c: read_weight[(n,)](c.w, c.out, k, BLOCK_K=block_k, num_warps=4) for c in copies
        ],
        "Triton: read the weight only, a program per row, 8 warps": [
            lambda c=c: read_weight[(n,)](c.w, c.out, k, BLOCK_K=block_k, num_warps=8) for c in copies
        ],
        "router_small_m (tuned)": [REGISTRY["router_small_m"].prepare(CASE, c) for c in copies],
        "mm_out_dtype": [REGISTRY["mm_out_dtype"].prepare(CASE, c) for c in copies],
    }
    rows = []
    for name, calls in points.items():
        device_us, latency_us = timed(calls)
        rows.append([name, f"{device_us:.2f}", f"{latency_us:.1f}"])
    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, DeepSeek-V3 router M = 1, cold L2 (medians)"
    table = f"{title}\n\n" + markdown_table(["kernel", "device µs (CUDA graph)", "eager latency µs"], rows)
    (out_dir / "router_floor.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
