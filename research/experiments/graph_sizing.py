"""Why graph size matters at small M: device time per call against calls per CUDA-graph replay (hot L2).

For the small-M points where a hot sweep once read well above cold (docs/validation.md): the eager
latency's minimum, the graph size gemmbench used to derive from it (GRAPH_TARGET_REPLAY_US / latency,
at most 32), the host time of one graph.replay(), the device time per call at several fixed graph
sizes, and at the size timing.fit_graph_unroll now picks. A replay whose device work is shorter than
the host's cost of launching the next leaves the GPU idle, and the idle time is counted.

Usage: python research/experiments/graph_sizing.py OUT_DIR   (writes OUT_DIR/graph_sizing.md)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.points import load_backends
from gemmbench.output.format import markdown_table
from gemmbench.spec.presets import load_preset
from gemmbench.timing import timers as timing
from gemmbench.timing.inputs import make_inputs

POINTS = [("mm_out_dtype", 1), ("linear_cast", 1), ("cublas_ext", 16), ("cublaslt_tuned_ext", 16), ("cublaslt_ext", 32)]
FIXED_UNROLLS = (4, 8, 16, 32, 64)
OLD_MAX_UNROLL = 32  # the cap before graph sizes were fitted to device time
HOST_REPLAYS = 200  # replays launched without synchronising, to time the host side of one
TARGET = timing.Target()


def host_us_per_replay(graph: torch.cuda.CUDAGraph) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(HOST_REPLAYS):
        graph.replay()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed * 1e6 / HOST_REPLAYS


def point_row(backend_name: str, m: int, device: torch.device) -> list:
    case = load_preset("deepseek-v3").gemms[0].case(m)
    backend = REGISTRY[backend_name]
    load_backends([backend], device)
    reason = backend.unavailable_reason(case, device)
    if reason:
        return [f"{backend_name} M={m}", f"skipped: {reason}"]
    call = backend.prepare(case, make_inputs(case, device, seed=0))
    timing.warm_up(call, 0.05, torch.cuda.synchronize)
    latency = timing.time_events(call, TARGET)
    old_unroll = min(OLD_MAX_UNROLL, timing.graph_unroll(latency.min_us))
    fitted = timing.fit_graph_unroll(call, latency.min_us)
    host_us = host_us_per_replay(timing.capture_graph(call, 1))
    per_unroll = {u: timing.time_graph(call, TARGET, u).median_us for u in sorted({*FIXED_UNROLLS, old_unroll, fitted})}
    return [
        f"{backend_name} M={m}",
        f"{latency.min_us:.1f}",
        old_unroll,
        f"{host_us:.1f}",
        *(f"{per_unroll[u]:.2f}" for u in FIXED_UNROLLS),
        f"{per_unroll[old_unroll]:.2f}",
        f"{fitted} → {per_unroll[fitted]:.2f}",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for graph_sizing.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).out_dir
    device = torch.device("cuda")
    rows = [point_row(name, m, device) for name, m in POINTS]
    headers = [
        "point (hot)",
        "eager latency min µs",
        "old graph size",
        "host µs per replay (1 call)",
        *(f"device µs/call, {u} per graph" for u in FIXED_UNROLLS),
        "device µs/call, old size",
        "fitted size → µs/call",
    ]
    table = f"{torch.cuda.get_device_name()}, torch {torch.__version__}\n\n" + markdown_table(headers, rows)
    (out_dir / "graph_sizing.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
