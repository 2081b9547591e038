"""Whether where a layer's buffers land moves its time: the same layers, allocated in three orders, one timer.

layer_check.py read mm_out_dtype's layers about 1.1 us below gemmbench and PDL launches 0.4-0.8 us below
(an H100), and layer_replay_ab.py showed that the way the graph is timed does not explain it. What remains
is the layers themselves: gemmbench allocates each cold copy's x, w and out (make_inputs), then every
layer's hidden state and norm weight; layer_check.py allocates each layer's h, w, g, x and out together.
This builds DeepSeek-V3's router layers (29, M = 1) both ways, and gemmbench's way again after a spacer
of 1-64 MiB, and times each with layer_check.py's graph and events; no other difference. A last column
times layer_check.py's layers of every point in rounds, one batch of each graph in turn, with gemmbench's
timer (timers.time_graphs), as gemmbench samples the units of a point.

Usage: python research/experiments/layer_placement_ab.py OUT_DIR   (on a GPU; writes OUT_DIR/layer_placement_ab.md)
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch

from gemmbench.backends import ext
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import make_inputs

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "checks" / "layer_check.py"
LAYERS = 29  # gemmbench's l2_copies for DeepSeek-V3's router at M = 1 on an H100
POINTS = [  # (context, backend, pdl)
    ("norm", "mm_out_dtype", False),
    ("norm", "router_small_m_ext", False),
    ("gemmbench_norm_pdl_start", "router_small_m_ext", True),
    ("gemmbench_norm_pdl_start", "router_small_m_mma", True),
]
SPACERS = 3  # placements after a random spacer
MIB = 1 << 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def gemmbench_order(case: Case, check) -> list[SimpleNamespace]:
    """Every copy's x, w, out (as gemmbench's input_copies), then every layer's h and g (producer_calls)."""
    copies = [make_inputs(case, torch.device("cuda"), seed) for seed in range(LAYERS)]
    generator = torch.Generator(device="cuda").manual_seed(1)
    layers = []
    for c in copies:
        h = torch.randn(case.m, case.k, device="cuda", dtype=torch.bfloat16, generator=generator)
        g = (1 + check.WEIGHT_SPREAD * torch.randn(case.k, device="cuda", generator=generator)).to(torch.bfloat16)
        layers.append(SimpleNamespace(h=h, g=g, w=c.w, r=None, x=c.x, out=c.out))
    return layers


def chain_graph(check, layers, context: str, backend: str, pdl: bool) -> torch.cuda.CUDAGraph:
    calls = [lambda t=t: check.gemm(check.produce(t, context), t, backend, pdl) for t in layers]
    for call in calls:
        call()
    return check.graph_of(calls, 2)


def timed(check, layers, context: str, backend: str, pdl: bool) -> float:
    graph = chain_graph(check, layers, context, backend, pdl)
    return statistics.median(check.replay_us(graph) for _ in range(30)) / (2 * len(layers))


def in_rounds(check) -> dict:
    """Every point's layers (layer_check.py's order), all graphs sampled in turn by gemmbench's timer."""
    graphs, kept = {}, []
    for context, backend, pdl in POINTS:
        row = {"m": 1, "n": 256, "k": 7168, "context": context, "backend": backend, "pdl": pdl}
        generator = torch.Generator(device="cuda").manual_seed(0)
        layers = [check.new_layer(row, generator) for _ in range(LAYERS)]
        kept.append(layers)  # a graph holds no reference to its tensors: freed ones would be overwritten
        graphs[(context, backend, pdl)] = chain_graph(check, layers, context, backend, pdl), 2 * LAYERS
    return {key: samples.median_us for key, samples in timers.time_graphs(graphs, timers.Target()).items()}


def main() -> None:
    out_dir = parse_args().out_dir
    spec = importlib.util.spec_from_file_location("layer_check", CHECK)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    ext.ensure_loaded()
    case = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
    rows = []
    for context, backend, pdl in POINTS:
        row = {"m": 1, "n": 256, "k": 7168, "context": context, "backend": backend, "pdl": pdl}
        generator = torch.Generator(device="cuda").manual_seed(0)
        cells = [f"{context} -> {backend}{'+pdl' if pdl else ''}"]
        cells.append(timed(check, [check.new_layer(row, generator) for _ in range(LAYERS)], context, backend, pdl))
        torch.cuda.empty_cache()
        cells.append(timed(check, gemmbench_order(case, check), context, backend, pdl))
        torch.cuda.empty_cache()
        spaced = []
        for _ in range(SPACERS):
            spacer = torch.empty(random.randint(1, 64) * MIB, dtype=torch.uint8, device="cuda")
            spaced.append(timed(check, gemmbench_order(case, check), context, backend, pdl))
            del spacer
            torch.cuda.empty_cache()
        rows.append([*cells, *spaced])
    rounds = in_rounds(check)
    for row, point in zip(rows, POINTS, strict=True):
        row.append(rounds[point])
    rows = [[r[0], *(f"{v:.2f}" for v in r[1:])] for r in rows]
    spacers = [f"after spacer {i + 1}" for i in range(SPACERS)]
    headers = ["layer", "per layer (layer_check)", "gemmbench's order", *spacers, "per layer, in rounds"]
    table = markdown_table(headers, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "layer_placement_ab.md").write_text(f"{torch.cuda.get_device_name()}, us per layer\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
