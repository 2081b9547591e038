"""Which step of gemmbench's engine makes its layer times read above layer_check.py's timer.

research/experiments/layer_gap.py (an H100, 2026-12-07) showed that who builds the layers does not matter
and who times them does: on the same layers, in one process, layer_check.py's timer read torch's norm then
mm_out_dtype at 19.14 us per layer and `Bench.time_units` at 19.92, gemmbench's norm (trigger at its
start) then mm_out_dtype 10.33 against 11.67 us, while the bare graph timer (timers.time_graphs, as
layer_replay_ab.py used it) agreed with the check. Between the bare timer and the engine lie the steps
the engine takes before it samples: a warm-up, eager windows (host-bound launches, the GPU mostly idle),
a reload of the device with matmuls (clocks.resettle_device), then a short sampling
(the default rule stops most graphs after 32 replays, about 20 ms here). This times the same layers
(layer_check.py's) after each of those steps in turn, and with a longer sampling, ROUNDS times in turn,
so that a step that moves the figure shows in its column every round. The first run (H100, 2026-12-07)
found the reload: 30 ms of matmuls raised the mm_out_dtype and PDL layers 5-10% for at least 200 ms.
The second run (H100, 2026-12-07) timed the layers after the point's own graphs replayed untimed for
30 ms in place of the reload ("the graph's settle"): there they read as the check's timer does, and the
engine, which settled so for that run, too. But three default sweeps that settled so landed whole points
at random in one of two states about 10% apart (docs/measurement.md), where after the reload every point
read alike: the engine reloads again, and layer_check.py reloads as it does before each point.

Usage: python research/experiments/engine_steps.py OUT_DIR   (on a GPU; writes OUT_DIR/engine_steps.md)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gemmbench.backends import ext
from gemmbench.backends.producers import PRODUCERS
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.layers import LayerWork, Unit
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.inputs import device_cold_copies, rotating
from gemmbench.timing.stopping import FixedTime, Target

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "checks" / "layer_check.py"
CASE = Case("DeepSeek-V3", "router", "router", 1, 256, 7168)
POINTS = [  # (context, backend, pdl)
    ("norm", "mm_out_dtype", False),
    ("norm", "router_small_m_ext", False),
    ("gemmbench_norm_pdl_start", "mm_out_dtype", False),
    ("gemmbench_norm_pdl_start", "router_small_m_ext", True),
]
ROUNDS = 3
IDLE_S = 0.05  # an idle GPU for this long, as between a sweep's points
RELOAD_S = 0.03  # how long the engine's matmul reload ran
RELOAD_SIZE = 4096  # the side of its square bf16 matmul
SETTLE_S = 0.03  # how long the graph's own replays ran in the reload's place
LONG_SAMPLING_S = 0.2  # a sampling ten times the default rule's typical length


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def load_check():
    spec = importlib.util.spec_from_file_location("layer_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def graph_time(call: Callable[[], object], layers: int, before: Callable[[object], object], rule) -> float:
    """Per-layer device time of a graph of one rotation, sampled by `rule` right after `before(graph)`."""
    graph = timers.capture_graph(call, layers)
    before(graph)
    return timers.time_graphs({0: (graph, layers)}, rule)[0].median_us


def steps(check, bench: Bench, call: Callable[[], object], layers: int, work: LayerWork) -> dict[str, float]:
    """The same layers timed after each of the engine's steps, in the order the engine takes them."""
    operand = torch.randn(RELOAD_SIZE, RELOAD_SIZE, device=bench.device, dtype=torch.bfloat16)

    def reload(_graph=None):  # what the engine ran after its eager windows until this experiment
        timers.warm_up(lambda: torch.mm(operand, operand), RELOAD_S, torch.cuda.synchronize)

    def eager_windows(_graph=None):
        bench.eager_latency({0: [call]})

    def eager_then_settle(graph):
        eager_windows()
        timers.warm_up(graph.replay, SETTLE_S, torch.cuda.synchronize)

    def check_timer():
        graph = check.graph_of([call] * layers, 2)
        return statistics.median(check.replay_us(graph) for _ in range(30)) / (2 * layers)

    return {
        "check's timer": check_timer(),
        "graph timer": graph_time(call, layers, lambda _graph: None, Target()),
        f"after {IDLE_S * 1e3:g} ms idle": graph_time(call, layers, lambda _graph: time.sleep(IDLE_S), Target()),
        "after the matmul reload": graph_time(call, layers, reload, Target()),
        "after eager windows and the reload": graph_time(call, layers, lambda g: (eager_windows(), reload()), Target()),
        f"after them, {LONG_SAMPLING_S * 1e3:g} ms sampled": graph_time(
            call, layers, lambda g: (eager_windows(), reload()), FixedTime(LONG_SAMPLING_S)
        ),
        "after eager windows and the graph's settle": graph_time(call, layers, eager_then_settle, Target()),
        "engine (time_units)": bench.time_units({0: [Unit(call, layers, work)]})[0][0].device.median_us,
    }


def main() -> None:
    out_dir = parse_args().out_dir
    check = load_check()
    ext.ensure_loaded()
    bench = Bench(torch.device("cuda"), MeasureOptions(placements=1))
    bench.warm_device()
    layers, _ = device_cold_copies(CASE.bytes_moved, bench.device)  # as many as a sweep rotates here
    calls, kept = {}, []
    for context, backend, pdl in POINTS:
        row = {"m": CASE.m, "n": CASE.n, "k": CASE.k, "context": context, "backend": backend, "pdl": pdl}
        generator = torch.Generator(device="cuda").manual_seed(0)
        tensors = [check.new_layer(row, generator) for _ in range(layers)]
        kept.append(tensors)
        layer_calls = [
            lambda t=t, c=context, b=backend, p=pdl: check.gemm(check.produce(t, c), t, b, p) for t in tensors
        ]
        calls[context, backend, pdl] = rotating(layer_calls), LayerWork(((CASE,),), PRODUCERS[context])
    cells: dict[tuple, dict[str, list[float]]] = {point: {} for point in POINTS}
    for _ in range(ROUNDS):
        for point, (call, work) in calls.items():
            for _ in range(layers):
                call()
            for name, value in steps(check, bench, call, layers, work).items():
                cells[point].setdefault(name, []).append(value)
    headers = ["layer", *next(iter(cells.values()))]
    rows = [
        [
            f"{c} -> {b}{'+pdl' if p else ''}",
            *("/".join(f"{v:.2f}" for v in values) for values in cells[c, b, p].values()),
        ]
        for c, b, p in POINTS
    ]
    table = markdown_table(headers, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{torch.cuda.get_device_name()}, us per layer, {layers} layers, M = {CASE.m}, {ROUNDS} rounds"
    text = f"{title}\n\n{table}\n"
    (out_dir / "engine_steps.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
