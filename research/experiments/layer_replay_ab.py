"""Why gemmbench's layer times and layer_check.py's disagreed by a constant per layer: how the graph is timed.

layer_check.py (an H100, DeepSeek-V3's router, 29 cold layers) read torch's norm then mm_out_dtype 1.1 us per
layer below gemmbench, and every PDL launch about 0.45 us below, where the other layers agreed within
0.1-0.2 us. Its graph held several passes over the layers (a replay of about 1 ms) timed five replays
between two events; gemmbench's held one pass (29 layers) timed replay by replay. This builds the same
layers once (layer_check.py's code) and times them both ways and crosswise, so that the method, not the
layers, is what differs between the columns.

Usage: python research/experiments/layer_replay_ab.py OUT_DIR   (on a GPU; writes OUT_DIR/layer_replay_ab.md)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from pathlib import Path

import torch

from gemmbench.backends import ext
from gemmbench.output.format import markdown_table
from gemmbench.timing import timers
from gemmbench.timing.timers import Target

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "checks" / "layer_check.py"
LAYERS = 29  # gemmbench's l2_copies for DeepSeek-V3's router at M = 1 on an H100
POINTS = [  # (context, backend, pdl)
    ("norm", "mm_out_dtype", False),
    ("norm", "router_small_m_ext", False),
    ("norm", "router_small_m_ext", True),
    ("gemmbench_norm_pdl_start", "router_small_m_ext", True),
    ("gemmbench_norm_pdl_start", "mm_out_dtype", False),
]
PASSES = (1, 2, 4)


def load_check():
    spec = importlib.util.spec_from_file_location("layer_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def main() -> None:
    out_dir = parse_args().out_dir
    check = load_check()
    ext.ensure_loaded()
    rows = []
    for context, backend, pdl in POINTS:
        row = {"m": 1, "n": 256, "k": 7168, "context": context, "backend": backend, "pdl": pdl}
        generator = torch.Generator(device="cuda").manual_seed(0)
        layers = [check.new_layer(row, generator) for _ in range(LAYERS)]
        calls = [lambda t=t, c=context, b=backend, p=pdl: check.gemm(check.produce(t, c), t, b, p) for t in layers]
        for call in calls:
            call()
        torch.cuda.synchronize()
        line = [f"{context} -> {backend}{'+pdl' if pdl else ''}"]
        for passes in PASSES:
            graph = check.graph_of(calls, passes)
            together = statistics.median(check.replay_us(graph) for _ in range(30)) / (passes * LAYERS)
            one_by_one = timers.time_graphs({0: (graph, passes * LAYERS)}, Target())[0].median_us
            line += [f"{together:.2f}", f"{one_by_one:.2f}"]
            del graph
        rows.append(line)
        del layers, calls
        torch.cuda.empty_cache()
    headers = ["layer"]
    for passes in PASSES:
        headers += [f"{passes} pass, 5 replays/event pair", f"{passes} pass, event pair per replay"]
    table = markdown_table(headers, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "layer_replay_ab.md").write_text(f"{torch.cuda.get_device_name()}, us per layer\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
