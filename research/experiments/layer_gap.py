"""Where gemmbench's layer times and layer_check.py's part: who built the layers, or who timed them.

layer_check.py reads torch's norm then mm_out_dtype about 1.1 us per layer below gemmbench on an H100
(DeepSeek-V3's router, 29 cold layers), and PDL launches 0.4-0.8 us below, while the other layers agree
within 1-2%. layer_replay_ab.py and layer_placement_ab.py ruled out how the graph is replayed, where the
buffers land and sampling in rounds. This crosses the two remaining halves in one process: the layers
as layer_check.py builds them and as gemmbench's measure/points.py builds them (`_CaseRun.layers`, one
placement), each timed by layer_check.py's graph and events and by gemmbench's engine
(`Bench.time_units`: warm-up, eager windows, graphs in rounds), each point alone (one placement), then
every unit of the table in its PLACEMENTS placements in one call of the engine, as a sweep times a point.

Usage: python research/experiments/layer_gap.py OUT_DIR   (on a GPU; writes OUT_DIR/layer_gap.md)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from pathlib import Path

import torch

from gemmbench.backends import ext
from gemmbench.backends.producers import PRODUCERS
from gemmbench.backends.registry import select_backends
from gemmbench.measure.bench import Bench, MeasureOptions, Variant
from gemmbench.measure.layers import LayerWork, Unit
from gemmbench.measure.points import _CaseRun
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import GemmInputs, placed_copies, rotating

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "checks" / "layer_check.py"
CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
POINTS = [  # (context, backend, pdl)
    ("norm", "mm_out_dtype", None),
    ("norm", "router_small_m_ext", False),
    ("gemmbench_norm_pdl_start", "mm_out_dtype", None),
    ("gemmbench_norm_pdl_start", "router_small_m_ext", True),
]
CHECK_PASSES, CHECK_BATCHES = 2, 30
PLACEMENTS = 6  # a sweep's default (timing/defaults.py)


def load_check():
    spec = importlib.util.spec_from_file_location("layer_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_layers(check, point, layers: int):
    """layer_check.py's layers of `point`: their tensors (kept alive) and one call per layer."""
    context, backend, pdl = point
    row = {"m": CASE.m, "n": CASE.n, "k": CASE.k, "context": context, "backend": backend, "pdl": pdl}
    generator = torch.Generator(device="cuda").manual_seed(0)
    tensors = [check.new_layer(row, generator) for _ in range(layers)]
    calls = [lambda t=t: check.gemm(check.produce(t, context), t, backend, bool(pdl)) for t in tensors]
    return tensors, calls


def gemmbench_key(point):
    context, backend, pdl = point
    return Variant(select_backends([backend])[0], pdl), PRODUCERS[context]


def check_timer(check, call, layers: int) -> float:
    """layer_check.py's timer: a graph of CHECK_PASSES passes, five replays between two events."""
    for _ in range(layers):
        call()
    graph = check.graph_of([call] * layers, CHECK_PASSES)
    return statistics.median(check.replay_us(graph) for _ in range(CHECK_BATCHES)) / (CHECK_PASSES * layers)


def engine(bench: Bench, units: dict) -> dict:
    """gemmbench's engine over `units` (each a list of placements), device medians by key."""
    timed, failures = bench.time_units(units)
    if failures:
        raise RuntimeError(f"engine failures: {failures}")
    return {key: t.device.median_us for key, t in timed.items()}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def main() -> None:
    out_dir = parse_args().out_dir
    check = load_check()
    ext.ensure_loaded()
    device = torch.device("cuda")
    bench = Bench(device, MeasureOptions(placements=1))
    bench.warm_device()
    placements = placed_copies(CASE, device, 0, True, PLACEMENTS)
    first = placements.first[0]
    run = _CaseRun(CASE, bench, placements, GemmInputs(first.x.clone(), first.w.clone(), first.out))
    layers = run.copies
    kept, units = [], {}
    cells = {}
    for point in POINTS:
        work = LayerWork(((CASE,),), PRODUCERS[point[0]])
        checks = []
        for _ in range(PLACEMENTS):
            tensors, calls = check_layers(check, point, layers)
            kept.append(tensors)
            checks.append(Unit(rotating(calls), layers, work))
        ours = run.units(gemmbench_key(point), run.layers(gemmbench_key(point))[0])
        units["check", point], units["gemmbench", point] = checks, ours
        cells[point] = {
            "check-built, check timer": check_timer(check, checks[0].call, layers),
            "gemmbench-built, check timer": check_timer(check, ours[0].call, layers),
            "check-built, engine alone": engine(bench, {0: checks[:1]})[0],
            "gemmbench-built, engine alone": engine(bench, {0: ours[:1]})[0],
        }
    together = engine(bench, units)
    for (builder, point), median in together.items():
        cells[point][f"{builder}-built, engine, all units x {PLACEMENTS}"] = median
    headers = ["layer", *next(iter(cells.values()))]
    rows = [[f"{c} -> {b}{'+pdl' if p else ''}", *(f"{v:.2f}" for v in cells[c, b, p].values())] for c, b, p in POINTS]
    table = markdown_table(headers, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = f"{torch.cuda.get_device_name()}, us per layer, {layers} layers, M = {CASE.m}\n\n{table}\n"
    (out_dir / "layer_gap.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
