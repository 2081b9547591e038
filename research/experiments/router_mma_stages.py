"""Where router_small_m_mma's time goes, with PDL and without: its kernel beside kernels of the same grid that stop
after a stage (router_mma_stages.cu: empty, loads, multiply without the cluster reduction), each in
clusters or as plain CTAs, and the whole GEMM reduced through global memory instead of a cluster; with
PDL and without; DeepSeek-V3's router and the V4 indexer at M = 1 and 8,
cold L2, CUDA-graph device time (medians, the sweep's timer). The stage kernels' outputs are not the
product (timing only); the product kernel's and the global reduction's are checked against float64.

Usage: python research/experiments/router_mma_stages.py OUT_DIR   (writes OUT_DIR/router_mma_stages.md)
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import input_copies, reference, relative_error, rotating

# name: (N, K, the product's default splits there)
SHAPES = {"DeepSeek-V3": (256, 7168, 8), "V4 indexer": (64, 7168, 16)}
TOKEN_COUNTS = (1, 8)
# label: (stage, in clusters); stage -1 is the product kernel (router_mma_stages.cu)
VARIANTS = {
    "full (product)": (-1, True),
    "global reduction, plain CTAs": (3, False),
    "multiply, clusters": (2, True),
    "multiply, plain CTAs": (2, False),
    "loads, clusters": (1, True),
    "loads, plain CTAs": (1, False),
    "empty, clusters": (0, True),
    "empty, plain CTAs": (0, False),
}
# The stages that compute the whole GEMM (the product, and the global reduction), whose outputs are
# checked; ROWS_PER_TILE and TILE_VALUES (16 rows x 8 tokens) size the global reduction's workspace.
EXACT_STAGES = (-1, 3)
ROWS_PER_TILE, TILE_VALUES = 16, 16 * 8
# A whole GEMM's output must be this close to float64 for its row to be timed.
WRONG_REL_ERR = 1e-6


def build():
    from torch.utils.cpp_extension import load

    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    return load(
        name="router_mma_stages",
        sources=[str(Path(__file__).with_name("router_mma_stages.cu"))],
        build_directory=tempfile.mkdtemp(),
        extra_cuda_cflags=["-O3"],
        verbose=False,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for router_mma_stages.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).out_dir
    started = time.perf_counter()
    module = build()
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    device = torch.device("cuda")
    bench = Bench(device, MeasureOptions())
    bench.warm_device()

    def timed(calls) -> float:
        call = rotating(calls)
        bench.warm_up(call)
        upper_bound_us = timers.mean_time_us(call, 4 * len(calls))
        unroll = timers.fit_graph_unroll(call, upper_bound_us, multiple_of=len(calls))
        return timers.time_graph(call, bench.options.target, unroll).median_us

    rows = []
    for label, (n, k, splits) in SHAPES.items():
        tiles = -(-n // ROWS_PER_TILE)
        partials = torch.empty(tiles * splits * TILE_VALUES, device=device)
        arrived = torch.zeros(tiles, device=device, dtype=torch.int32)
        for m in TOKEN_COUNTS:
            case = Case(label, "router", "router", m, n, k)
            copies, _ = input_copies(case, device, seed=0, cold=True)
            figures = {}
            for name, (stage, cluster) in VARIANTS.items():
                if stage in EXACT_STAGES:  # a whole GEMM: timed only where its output is right
                    first = copies[0]
                    first.out.fill_(float("nan"))
                    module.run(stage, cluster, splits, False, first.x, first.w, first.out, partials, arrived)
                    err = relative_error(first.out, reference(first))
                    if not err <= WRONG_REL_ERR:
                        figures[name] = figures[f"{name} +pdl"] = f"wrong ({err:.1e})"
                        continue
                for pdl in (False, True):
                    calls = [
                        functools.partial(module.run, stage, cluster, splits, pdl, c.x, c.w, c.out, partials, arrived)
                        for c in copies
                    ]
                    calls[0]()
                    figures[f"{name}{' +pdl' if pdl else ''}"] = f"{timed(calls):.2f}"
            figures["mm_out_dtype"] = f"{timed([REGISTRY['mm_out_dtype'].prepare(case, c) for c in copies]):.2f}"
            rows.append([label, m, splits, *figures.values()])
            print(label, m, figures, flush=True)
            del copies
    columns = ["router", "M", "splits", *figures]
    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cold L2, CUDA-graph device time µs (medians)"
    table = f"{title}\n\n" + markdown_table(columns, rows)
    (out_dir / "router_mma_stages.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
