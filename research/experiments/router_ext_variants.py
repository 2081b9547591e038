"""Where router_small_m_ext's time goes, and what a CTA-per-expert CUDA kernel can reach: the variants in
router_ext_variants.cu (baseline, registers, staged, staged_all; an empty kernel and a weight-only read as floors)
against router_small_m and mm_out_dtype, cold L2, CUDA-graph device time (medians), on the DeepSeek-V3,
Kimi-K2 and V4-Flash routers at M = 1, 2, 4, 8, 16. Every variant's output is checked against float64.

Usage: python research/experiments/router_ext_variants.py OUT_DIR   (writes OUT_DIR/router_ext_variants.md)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.tuning import CaseTimer
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers as timing
from gemmbench.timing.inputs import input_copies, reference, relative_error, rotating

SHAPES = {"DeepSeek-V3": (256, 7168), "Kimi-K2": (384, 7168), "V4-Flash": (256, 4096)}
TOKEN_COUNTS = (1, 2, 4, 8, 16)
TARGET = timing.Target(budget_s=0.1, min_time_s=0.1)
# The largest dynamic shared memory a CTA may ask for on sm90 (227 KB).
MAX_SHARED_BYTES = 227 * 1024
REGISTERS = {"registers_t256_u4": 8, "registers_t512_u2": 8, "registers_t1024_u1": 4}  # name: largest M
STAGED = {  # name: (threads, unroll, experts per CTA)
    "staged_t128_u8_e2": (128, 8, 2),
    "staged_t256_u4_e1": (256, 4, 1),
    "staged_t256_u4_e2": (256, 4, 2),
    "staged_t128_u4_e2": (128, 4, 2),
    "staged_t128_u2_e2": (128, 2, 2),
}
STAGED_ALL = {"staged_all_t256_u4_e1": (256, 4)}  # name: (threads, unroll)
# A variant whose output strays further from float64 than this is reported wrong, not timed.
WRONG_REL_ERR = 1e-5


def build():
    from torch.utils.cpp_extension import load

    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    source = Path(__file__).with_name("router_ext_variants.cu")
    return load(
        name="router_ext_variants",
        sources=[str(source)],
        build_directory=tempfile.mkdtemp(),
        extra_cuda_cflags=["-O3", "-Xptxas=-v"],
        verbose=False,
    )


def variants(m: int) -> list[str]:
    names = ["baseline"] + [name for name, largest_m in REGISTERS.items() if m <= largest_m]
    names += [name for name, (threads, unroll, _) in STAGED.items() if 16 * m * unroll * threads <= MAX_SHARED_BYTES]
    names += [
        name for name, (threads, unroll) in STAGED_ALL.items() if 16 * (m + 1) * unroll * threads <= MAX_SHARED_BYTES
    ]
    return names


def timed(calls) -> float:
    call = rotating(calls)
    timing.warm_up(call, 0.05, torch.cuda.synchronize)
    latency = timing.time_events(call, TARGET)
    unroll = timing.fit_graph_unroll(call, latency.min_us, multiple_of=len(calls))
    return timing.time_graph(call, TARGET, unroll).median_us


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for router_ext_variants.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).out_dir
    started = time.perf_counter()
    module = build()
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    device = torch.device("cuda")
    bench = Bench(device, MeasureOptions())
    rows = []
    for label, (n, k) in SHAPES.items():
        for m in TOKEN_COUNTS:
            case = Case(label, "router", "router", m, n, k)
            copies, _ = input_copies(case, device, seed=0, cold=True)
            ref = reference(copies[0])
            points: dict[str, list] = {}
            if m == 1:
                points["floor: empty kernel, N CTAs"] = [
                    lambda c=c: module.run("empty", c.x, c.w, c.out) for c in copies
                ]
                points["floor: read the weight only"] = [
                    lambda c=c: module.run("read_weight", c.x, c.w, c.out) for c in copies
                ]
            for name in variants(m):
                calls = [lambda c=c, name=name: module.run(name, c.x, c.w, c.out) for c in copies]
                copies[0].out.fill_(float("nan"))  # an output left unwritten is then wrong, not stale
                calls[0]()
                err = relative_error(copies[0].out, ref)
                if not err <= WRONG_REL_ERR:
                    rows.append([label, m, name, "wrong", f"{err:.1e}"])
                    continue
                points[name] = calls
            REGISTRY["router_small_m"].tune(case, copies[0], CaseTimer(case, bench))  # as a sweep does first
            for name in ("router_small_m", "mm_out_dtype"):
                points[name] = [REGISTRY[name].prepare(case, c) for c in copies]
            for name, calls in points.items():
                device_us = timed(calls)
                rows.append([label, m, name, f"{device_us:.2f}", ""])
                print(label, m, name, f"{device_us:.2f}", flush=True)
    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cold L2, CUDA-graph device time (medians)"
    table = f"{title}\n\n" + markdown_table(["router", "M", "kernel", "device µs", "wrong: rel_err"], rows)
    (out_dir / "router_ext_variants.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
