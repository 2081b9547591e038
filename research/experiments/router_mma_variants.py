"""The tensor-core first-tier kernel's configurations (ext/router_small_m_mma.cu: warps per CTA, splits of
K per cluster) against the CUDA-core kernel (router_small_m_out) and mm_out_dtype, each launched with and
without PDL, on the five router GEMMs of docs/tiers.md at M = 1..16; cold L2, CUDA-graph device time
(medians, gemmbench's timers); every configuration's output checked against float64 first.

Usage: python research/experiments/router_mma_variants.py OUT_DIR [--m 1,2,4] [--quick]
Writes OUT_DIR/router_mma_variants.json (every figure) and .md (the table); prints the table last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY, ext
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers as timing
from gemmbench.timing.inputs import input_copies, reference, relative_error, rotating

SHAPES = {
    "DeepSeek-V3": (256, 7168),
    "Kimi-K2": (384, 7168),
    "GLM-5": (256, 6144),
    "V4-Flash": (256, 4096),
    "V4 indexer": (64, 7168),
}
# (warps per CTA, splits of K); splits 0: the kernel's own choice.
CONFIGS = [(8, 0), (4, 8), (4, 16), (8, 4), (8, 8), (8, 16), (16, 4), (16, 8)]
QUICK_CONFIGS = [(8, 0), (8, 8), (16, 8)]
TARGET = timing.Target()  # the sweep's device-time target
WARMUP_S = 0.02
# A configuration whose output strays further from float64 than this is reported wrong, not timed.
WRONG_REL_ERR = 1e-6


def timed(calls) -> float:
    call = rotating(calls)
    timing.warm_up(call, WARMUP_S, torch.cuda.synchronize)
    per_call_us = timing.mean_time_us(call, len(calls) * 4)
    unroll = timing.fit_graph_unroll(call, per_call_us, multiple_of=len(calls))
    return timing.time_graph(call, TARGET, unroll).median_us


def kernels(configs):
    """name -> (launch(inputs, pdl), takes PDL)."""
    table = {}
    for warps, splits in configs:
        name = f"mma_w{warps}_s{splits or 'auto'}"
        table[name] = lambda c, pdl, w=warps, s=splits: torch.ops.gemmbench.router_small_m_mma_out(
            c.x, c.w, c.out, pdl, w, s
        )
    table["cuda_cores"] = lambda c, pdl: torch.ops.gemmbench.router_small_m_out(c.x, c.w, c.out, pdl)
    return table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--m", default=",".join(str(m) for m in range(1, 17)), help="token counts")
    parser.add_argument("--quick", action="store_true", help="three configurations only")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    problem = ext.ensure_loaded()
    if problem:
        raise SystemExit(problem)
    print(f"extension ready in {time.perf_counter() - started:.0f} s", flush=True)
    device = torch.device("cuda")
    table = kernels(QUICK_CONFIGS if args.quick else CONFIGS)
    figures = []
    for label, (n, k) in SHAPES.items():
        for m in (int(v) for v in args.m.split(",")):
            case = Case(label, "router", "router", m, n, k)
            copies, _ = input_copies(case, device, seed=0, cold=True)
            ref = reference(copies[0])
            point = {"router": label, "n": n, "k": k, "m": m}
            for name, launch in table.items():
                for pdl in (False, True):
                    copies[0].out.fill_(float("nan"))
                    launch(copies[0], pdl)
                    first = copies[0].out.clone()
                    launch(copies[0], pdl)
                    err = relative_error(first, ref)
                    if not err <= WRONG_REL_ERR or not torch.equal(first, copies[0].out):
                        point[f"{name}{'+pdl' if pdl else ''}"] = f"wrong {err:.1e}"
                        continue
                    calls = [lambda c=c, launch=launch, pdl=pdl: launch(c, pdl) for c in copies]
                    point[f"{name}{'+pdl' if pdl else ''}"] = round(timed(calls), 3)
            point["mm_out_dtype"] = round(timed([REGISTRY["mm_out_dtype"].prepare(case, c) for c in copies]), 3)
            figures.append(point)
            print(json.dumps(point), flush=True)
            del copies
    (args.out_dir / "router_mma_variants.json").write_text(json.dumps(figures, indent=1))
    columns = [c for c in figures[0] if c not in ("router", "n", "k")]
    rows = [[p["router"], *[p.get(c, "") for c in columns]] for p in figures]
    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cold L2, CUDA-graph device time µs (medians)"
    text = f"{title}\n\n" + markdown_table(["router", *columns], rows)
    (args.out_dir / "router_mma_variants.md").write_text(text)
    # The short summary: per point the fastest configuration each way, against the CUDA-core kernel.
    summary = []
    for p in figures:
        for pdl in (False, True):
            suffix = "+pdl" if pdl else ""
            mma = {
                c: v for c, v in p.items() if c.startswith("mma") and c.endswith("+pdl") == pdl and isinstance(v, float)
            }
            if mma:
                best = min(mma, key=mma.get)
                summary.append(
                    [
                        p["router"],
                        p["m"],
                        suffix or "off",
                        best,
                        mma[best],
                        p.get(f"cuda_cores{suffix}"),
                        p["mm_out_dtype"],
                    ]
                )
    print(markdown_table(["router", "M", "PDL", "best mma", "µs", "cuda_cores µs", "mm_out_dtype µs"], summary))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
