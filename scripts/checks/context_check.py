"""An independent check of gemmbench's in-context figures (`sweep --context norm`, docs/context.md).

The same chain, written again without gemmbench's timers: one CUDA graph of L layers, each layer its own
hidden state, norm weight, GEMM weight and output, F.rms_norm then the GEMM on what it returned; and one
graph of norms alone over hidden states of their own, enough to span twice the L2 (the chain's norms read
theirs from DRAM too). Both graphs are about a millisecond long, timed with a pair of CUDA events around
five replays, alternating, and the GEMM's in-context time is the difference of the medians per call. gemmbench's
figures of the same points are measured first, in the same process, with the same number of layers.

Usage: python scripts/checks/context_check.py OUT_DIR   (on a GPU machine; prints a table, writes JSON)
"""

from __future__ import annotations

import argparse
import json
import math
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


def capture(calls, repeats: int) -> torch.cuda.CUDAGraph:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(repeats):
            for call in calls:
                call()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def per_call_us(graph: torch.cuda.CUDAGraph, calls_per_replay: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(BATCH_REPLAYS):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / BATCH_REPLAYS / calls_per_replay


def sized(calls) -> tuple[torch.cuda.CUDAGraph, int]:
    """A graph of as many passes over `calls` as take about TARGET_REPLAY_US, and its call count."""
    one_pass_us = per_call_us(capture(calls, 1), 1)
    repeats = max(1, round(TARGET_REPLAY_US / one_pass_us))
    return capture(calls, repeats), repeats * len(calls)


def independent_us(backend: str, m: int, layers_count: int) -> float:
    """The GEMM's time after F.rms_norm by this script's own timer: the chain's graph minus a graph of
    norms over enough hidden states of their own that they are read from DRAM, as the chain's are (its
    GEMM weights evict them)."""
    n, k = SHAPE
    g = torch.Generator(device="cuda").manual_seed(123)

    def hidden_and_gain():
        return (
            torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=g),
            (1 + 0.1 * torch.randn(k, device="cuda", generator=g)).to(torch.bfloat16),
        )

    gemm_call = gemm(backend)

    def layer(h, gain, w, out):
        return lambda: gemm_call(F.rms_norm(h, (k,), gain, EPS), w, out)

    chain_calls = [
        layer(
            *hidden_and_gain(),
            torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=g),
            torch.empty(m, n, device="cuda"),
        )
        for _ in range(layers_count)
    ]
    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
    norm_count = max(layers_count, math.ceil(2 * l2_bytes / ((2 * m * k + k) * 2)))  # h, x and the gain, bf16
    norm_calls = [
        (lambda h, gain: lambda: F.rms_norm(h, (k,), gain, EPS))(*hidden_and_gain()) for _ in range(norm_count)
    ]
    for call in chain_calls + norm_calls:
        call()
    (chain, chain_per_replay), (norms, norms_per_replay) = sized(chain_calls), sized(norm_calls)
    chain_us, norm_us = [], []
    for _ in range(BATCHES):  # alternating, so both see the same clocks
        chain_us.append(per_call_us(chain, chain_per_replay))
        norm_us.append(per_call_us(norms, norms_per_replay))
    return statistics.median(chain_us) - statistics.median(norm_us)


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
        mine = independent_us(record.backend, record.m, record.l2_copies)
        theirs = record.context_device.median_us
        rows.append(
            {
                "m": record.m,
                "backend": record.backend,
                "layers": record.l2_copies,
                "gemmbench_alone_us": record.device.median_us,
                "gemmbench_in_context_us": theirs,
                "independent_in_context_us": mine,
                "ratio": theirs / mine,
            }
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "context_check.json").write_text(json.dumps(rows, indent=1))
    columns = ("M", "backend", "layers", "alone", "gemmbench after norm", "independent after norm", "ratio")
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['m']} | {row['backend']} | {row['layers']} | {row['gemmbench_alone_us']:.2f} | "
            f"{row['gemmbench_in_context_us']:.2f} | {row['independent_in_context_us']:.2f} | {row['ratio']:.3f} |"
        )
    worst = max(abs(row["ratio"] - 1) for row in rows)
    print(
        f"context check: worst disagreement {worst:.1%} (bar {AGREEMENT:.0%}): {'ok' if worst <= AGREEMENT else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
