"""An independent check of gemmbench's in-context figures (`sweep --context norm`, docs/context.md).

The same chain, written again without gemmbench's timers: one CUDA graph of L layers, each layer its own
hidden state, norm weight, GEMM weight and output, F.rms_norm then the GEMM on what it returned; and one
graph of the norms alone. Replays are timed with a pair of CUDA events around a batch, alternating the
two graphs, and the GEMM's in-context time is the difference of the medians per layer. gemmbench's
figures of the same points are measured first, in the same process, with the same number of layers.

Usage: python scripts/checks/context_check.py OUT_DIR   (on a GPU machine; prints a table, writes JSON)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

# Replays per timed batch, batches per graph, and layers repeated per graph so that a replay takes about
# a millisecond: enough that event resolution and launch costs are small beside it.
BATCH_REPLAYS = 5
BATCHES = 30
TARGET_REPLAY_US = 1000.0
SHAPE = (256, 7168)  # the DeepSeek-V3 router: N, K
M_VALUES = (1, 16)
BACKENDS = ("mm_out_dtype", "router_small_m_ext")
EPS = 1e-6
AGREEMENT = 0.05  # the bar: within 5%


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def gemm(backend: str):
    if backend == "mm_out_dtype":
        return lambda x, w, out: torch.mm(x, w.t(), out_dtype=torch.float32, out=out)
    return lambda x, w, out: torch.ops.gemmbench.router_small_m_out(x, w, out, False)


def capture(layers, with_gemm: bool, call, repeats: int) -> torch.cuda.CUDAGraph:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(repeats):
            for h, gain, w, out in layers:
                x = F.rms_norm(h, (h.shape[1],), gain, EPS)
                if with_gemm:
                    call(x, w, out)
    graph.replay()
    torch.cuda.synchronize()
    return graph


def per_layer_us(graph: torch.cuda.CUDAGraph, calls_per_replay: int) -> list[float]:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(BATCH_REPLAYS):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) * 1e3 / BATCH_REPLAYS / calls_per_replay]


def independent_us(backend: str, m: int, layers_count: int) -> tuple[float, float]:
    """The GEMM's time after F.rms_norm, by this script's timer, and by gemmbench's graph timer on this
    script's chain (which of the two differs from gemmbench's figure tells the timer from the chain)."""
    n, k = SHAPE
    g = torch.Generator(device="cuda").manual_seed(123)
    layers = [
        (
            torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=g),
            (1 + 0.1 * torch.randn(k, device="cuda", generator=g)).to(torch.bfloat16),
            torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=g),
            torch.empty(m, n, device="cuda"),
        )
        for _ in range(layers_count)
    ]
    call = gemm(backend)
    probe = capture(layers, True, call, 1)
    one_pass_us = per_layer_us(probe, 1)[0] * layers_count
    repeats = max(1, round(TARGET_REPLAY_US / one_pass_us))
    chain, norms = capture(layers, True, call, repeats), capture(layers, False, call, repeats)
    calls = repeats * layers_count
    chain_us, norm_us = [], []
    for _ in range(BATCHES):  # alternating, so both see the same clocks
        chain_us += per_layer_us(chain, calls)
        norm_us += per_layer_us(norms, calls)
    from gemmbench.timing import timers

    def step(index: int, with_gemm: bool):
        h, gain, w, out = layers[index]
        x = F.rms_norm(h, (h.shape[1],), gain, EPS)
        if with_gemm:
            call(x, w, out)

    by_gemmbench_timer = []
    for with_gemm in (True, False):
        state = {"next": 0}

        def rotate(with_gemm=with_gemm, state=state):
            step(state["next"], with_gemm)
            state["next"] = (state["next"] + 1) % layers_count

        rotate()
        unroll = timers.fit_graph_unroll(rotate, timers.GRAPH_TARGET_REPLAY_US, multiple_of=layers_count)
        by_gemmbench_timer.append(timers.time_graph(rotate, timers.Target(), unroll).median_us)
    return statistics.median(chain_us) - statistics.median(norm_us), by_gemmbench_timer[0] - by_gemmbench_timer[1]


def main() -> None:
    args = parse_args()
    import gemmbench
    from gemmbench.backends import ext

    ext.load()
    run = gemmbench.sweep(
        shapes=[f"{SHAPE[0]}x{SHAPE[1]}"], m=list(M_VALUES), backends=list(BACKENDS), context="norm", kernels=False
    )
    rows = []
    for record in run.records:
        if record.status != "ok" or record.pdl:
            continue
        mine, with_gemmbench_timer = independent_us(record.backend, record.m, record.l2_copies)
        theirs = record.context_device.median_us
        rows.append(
            {
                "m": record.m,
                "backend": record.backend,
                "layers": record.l2_copies,
                "gemmbench_alone_us": record.device.median_us,
                "gemmbench_in_context_us": theirs,
                "independent_in_context_us": mine,
                "independent_chain_gemmbench_timer_us": with_gemmbench_timer,
                "ratio": theirs / mine,
            }
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "context_check.json").write_text(json.dumps(rows, indent=1))
    columns = ("M", "backend", "layers", "alone", "gemmbench after norm", "independent after norm", "ratio")
    print("| " + " | ".join(columns) + " | same chain, gemmbench's timer |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['m']} | {row['backend']} | {row['layers']} | {row['gemmbench_alone_us']:.2f} | "
            f"{row['gemmbench_in_context_us']:.2f} | {row['independent_in_context_us']:.2f} | {row['ratio']:.3f} | "
            f"{row['independent_chain_gemmbench_timer_us']:.2f} |"
        )
    worst = max(abs(row["ratio"] - 1) for row in rows)
    print(
        f"context check: worst disagreement {worst:.1%} (bar {AGREEMENT:.0%}): {'ok' if worst <= AGREEMENT else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
