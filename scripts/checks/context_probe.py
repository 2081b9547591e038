"""Where an in-context figure comes from (docs/context.md): one chain (F.rms_norm then a GEMM, the layers of
a cold sweep) timed several ways, and its kernels' durations and gaps from the profiler.

- the producer alone hot (over the chain's layers, whose inputs stay in L2) and cold (over enough layers
  of its own that its reads miss L2, as they do in the chain, where the GEMM weights evict them);
- timer: gemmbench's graph timer (graphs of one rotation of the layers, one replay between a pair of
  events, the chain timed to its target, then the producer alone): the median and the mean of its samples;
- alternating: the same graphs, their event batches alternating between chain and producer;
- batched: the same graphs, five replays between one pair of events, alternating (the independent
  check's timer);
- kernels: one replay of each graph under the profiler: per layer, the norm's and the GEMM's kernel
  durations and the idle gaps between kernels;
- triggers: the GEMM after gemmbench's norm (norm_pdl) signalling its dependents never, at its start or
  after its stores, with the GEMM launched with PDL and without (cuBLAS: as torch launches it), so that
  whether a kernel overlaps its producer is measured, not assumed.

Usage: python scripts/checks/context_probe.py OUT_DIR   (on a GPU machine; prints a table, writes JSON)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from gemmbench.backends import ext
from gemmbench.backends.producers import PRODUCERS, TRIGGER_AFTER_STORES, TRIGGER_AT_START, TRIGGER_NEVER, PdlNorm
from gemmbench.backends.registry import REGISTRY
from gemmbench.measure.context import Chain, ProducerLayers, producer_layers
from gemmbench.spec.cases import Case
from gemmbench.timing import profile, timers
from gemmbench.timing.clocks import ClockWatch
from gemmbench.timing.inputs import input_copies

SHAPE = (256, 7168)  # the DeepSeek-V3 router: N, K
M_VALUES = (1, 16)
BACKENDS = ("mm_out_dtype", "router_small_m_ext")
PRODUCER = "norm"
ROUNDS = 30  # alternating batches
ROUND_BUDGET_S = 0.5
BATCH_REPLAYS = 5  # replays between one pair of events, batched timer
BATCHED_REPLAY_US = 1000.0
LONGER_ROTATIONS = 8  # the timer at this many rotations per graph too


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def graph(call, unroll: int) -> torch.cuda.CUDAGraph:
    return timers.capture_graph(call, unroll)


def alternating(graphs: dict[str, tuple[torch.cuda.CUDAGraph, int]], replays: int) -> dict[str, float]:
    """Median per call over up to ROUNDS rounds, each timing every graph in turn: `replays` replays between
    one pair of events (a sample is their mean), or with replays=1, a batch as gemmbench's timer takes it
    (a pair of events around each replay); at most about ROUND_BUDGET_S per graph."""
    replay_us = max(timers.mean_time_us(g.replay, 1) for g, _ in graphs.values())
    launches = max(timers.MIN_GRAPH_BATCH, min(timers.EVENTS_BATCH, int(timers.GRAPH_BATCH_US / replay_us)))
    rounds = max(3, min(ROUNDS, int(ROUND_BUDGET_S * 1e6 / (replay_us * max(replays, launches)))))
    samples: dict[str, list[float]] = {name: [] for name in graphs}
    for _ in range(rounds):
        for name, (g, calls) in graphs.items():
            if replays == 1:
                samples[name] += timers._event_batch(g.replay, calls_per_launch=calls, launches=launches)
            else:
                samples[name].append(timers.mean_time_us(g.replay, replays) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def kernels_per_layer(g: torch.cuda.CUDAGraph, layers: int) -> dict[str, float]:
    """One replay under the profiler: mean duration of the kernels at each position in a layer, and the
    mean idle time before each position (from the previous kernel's end)."""
    intervals = sorted(profile.kernel_intervals(g.replay, torch.device("cuda")), key=lambda k: k[1])
    per_layer = len(intervals) // layers
    result: dict[str, float] = {"kernels_per_layer": per_layer}
    for position in range(per_layer):
        ks = intervals[position::per_layer]
        result[f"kernel{position}_us"] = statistics.mean(end - start for _, start, end in ks)
        gaps = [intervals[i][1] - intervals[i - 1][2] for i in range(position, len(intervals), per_layer) if i > 0]
        result[f"gap_before{position}_us"] = statistics.mean(gaps)
    result["span_per_layer_us"] = (intervals[-1][2] - intervals[0][1]) / layers
    return result


def spread(samples: timers.Samples) -> dict[str, float]:
    values = sorted(samples.values_us)
    return {
        "median": samples.median_us,
        "mean": statistics.mean(values),
        "p10": values[len(values) // 10],
        "p90": values[len(values) * 9 // 10],
        "count": len(values),
    }


def probe(backend_name: str, m: int, watch: ClockWatch) -> dict:
    device = torch.device("cuda")
    case = Case("DeepSeek-V3", "router", "router", m, *SHAPE)
    backend = REGISTRY[backend_name]
    copies, _ = input_copies(case, device, seed=0, cold=True)
    layers = len(copies)
    row: dict = {"backend": backend_name, "m": m, "layers": layers}
    for alone in ("hot", "cold"):
        # hot: the producer alone over the chain's layers, whose inputs stay in L2 (gemmbench before);
        # cold: over enough layers of its own to keep L2 cold (gemmbench now, measure/context.py).
        own = layers if alone == "hot" else producer_layers(case, device, cold=True)
        producers = ProducerLayers(case, PRODUCERS[PRODUCER], [c.x for c in copies], own, seed=0)
        chain = Chain(producers, copies, lambda inputs: backend.prepare(case, inputs))
        sizes = {"chain": layers, "producer": chain.producers.layers}
        calls = {"chain": chain.step, "producer": chain.producers.alone}
        for call in calls.values():
            timers.warm_up(call, 0.05, torch.cuda.synchronize)
        row[f"producer_layers_{alone}"] = chain.producers.layers
        # gemmbench's graph timer, as Chain.time runs it (chain, then the producer alone).
        start = watch.read()
        timed = {name: timers.time_graph(calls[name], timers.Target(), sizes[name]) for name in calls}
        end = watch.read()
        row[f"timer_{alone}"] = {name: spread(samples) for name, samples in timed.items()}
        if start and end:
            row[f"timer_{alone}_sm_mhz"] = (start.sm_mhz, end.sm_mhz)
        # The same graphs, BATCH_REPLAYS replays between one pair of events, chain and producer alternating.
        graphs = {name: (graph(calls[name], sizes[name]), sizes[name]) for name in calls}
        row[f"batched_{alone}"] = alternating(graphs, replays=BATCH_REPLAYS)
        row[f"alternating_{alone}"] = alternating(graphs, replays=1)
        if alone == "hot":
            row["kernels_chain"] = kernels_per_layer(graphs["chain"][0], layers)
            row["kernels_producer"] = kernels_per_layer(graphs["producer"][0], layers)
        del chain, graphs
    del copies
    torch.cuda.empty_cache()
    return row


TRIGGERS = {"never": TRIGGER_NEVER, "at start": TRIGGER_AT_START, "after stores": TRIGGER_AFTER_STORES}


def triggers(backend_name: str, m: int) -> dict:
    """The GEMM's in-context device time after norm_pdl at each trigger position, PDL off and (where the
    backend can) on."""
    device = torch.device("cuda")
    case = Case("DeepSeek-V3", "router", "router", m, *SHAPE)
    backend = REGISTRY[backend_name]
    copies, _ = input_copies(case, device, seed=0, cold=True)
    row: dict = {"backend": backend_name, "m": m}
    for pdl in (False, True) if backend.launches_with_pdl else (None,):

        def prepare(inputs, pdl=pdl):
            return backend.prepare(case, inputs) if pdl is None else backend.prepare(case, inputs, pdl=pdl)

        for where, trigger in TRIGGERS.items():
            layers = producer_layers(case, device, cold=True)
            producers = ProducerLayers(case, PdlNorm(trigger), [c.x for c in copies], layers, seed=0)
            chain = Chain(producers, copies, prepare)
            for call in (chain.step, chain.producers.alone):
                timers.warm_up(call, 0.02, torch.cuda.synchronize)
            chain_us = timers.time_graph(chain.step, timers.Target(), len(copies)).median_us
            producer_us = timers.time_graph(chain.producers.alone, timers.Target(), len(copies)).median_us
            row[f"{'pdl' if pdl else 'no pdl'}, trigger {where}"] = (producer_us, chain_us - producer_us)
    del copies
    torch.cuda.empty_cache()
    return row


def main() -> None:
    args = parse_args()
    ext.load()
    watch = ClockWatch(torch.device("cuda"))
    rows = [probe(b, m, watch) for m in M_VALUES for b in BACKENDS]
    trigger_rows = [triggers(b, m) for m in M_VALUES for b in BACKENDS]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "context_probe.json").write_text(json.dumps({"ways": rows, "triggers": trigger_rows}, indent=1))
    print("| M | backend | producer alone | way | chain | producer | difference |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        for alone in ("hot", "cold"):
            timed = row[f"timer_{alone}"]
            ways = {
                "timer, median": (timed["chain"]["median"], timed["producer"]["median"]),
                "timer, mean": (timed["chain"]["mean"], timed["producer"]["mean"]),
                "alternating, median": tuple(row[f"alternating_{alone}"].values()),
                f"{BATCH_REPLAYS} replays per event pair": tuple(row[f"batched_{alone}"].values()),
            }
            for way, (chain_us, producer_us) in ways.items():
                print(
                    f"| {row['m']} | {row['backend']} | {alone}, {row[f'producer_layers_{alone}']} layers | {way} "
                    f"| {chain_us:.2f} | {producer_us:.2f} | {chain_us - producer_us:.2f} |"
                )
    for row in rows:
        print(row["m"], row["backend"], "chain kernels:", {k: round(v, 2) for k, v in row["kernels_chain"].items()})
        print(
            row["m"], row["backend"], "producer kernels:", {k: round(v, 2) for k, v in row["kernels_producer"].items()}
        )
    print("| M | backend | launch, norm_pdl trigger | norm_pdl alone | GEMM after it |")
    print("|---|---|---|---|---|")
    for row in trigger_rows:
        for key, value in row.items():
            if isinstance(value, tuple):
                print(f"| {row['m']} | {row['backend']} | {key} | {value[0]:.2f} | {value[1]:.2f} |")


if __name__ == "__main__":
    main()
