"""Is a placement's time set by where each copy lands, or by something the whole set shares?

In three default sweeps on an H100 (docs/runs/h100_aa_*.json) cublaslt_ext at DeepSeek-V3's router,
M = 1024, read 15.22, 15.14 and 14.40 us with the same kernel: the second run's six placements spanned
both figures, the first's and the third's all sat at one of them, and `compare` called the pair
faster/slower. If each copy of a placement fell in a fast or a slow state on its own, a placement (the
mean over its rotating copies) would rarely sit wholly at one end; so either the state is shared by the
set, or the copies of one set, allocated back to back, land alike. This times PLACEMENTS sets of a
point's rotating copies made both ways: back to back, as timing/inputs.py makes them now, and each copy
after a small spacer of its own (random, up to SPACER_MAX_BYTES), and prints the spread of the
placements' medians for each. If the copy spacers shrink the spread, a placement's copies should each
land on their own.

Usage: python research/experiments/placement_modes.py OUT_DIR   (on a GPU; writes OUT_DIR/placement_modes.md)
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

import torch

from gemmbench.backends import ext
from gemmbench.backends.registry import select_backends
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing import timers
from gemmbench.timing.clocks import ClockWatch, warm_device
from gemmbench.timing.inputs import SPACER_ALIGN, device_cold_copies, make_inputs, rotating, spacers
from gemmbench.timing.stopping import Target

POINTS = [("cublaslt_ext", 1024), ("mm_out_dtype", 1024), ("mm_out_dtype", 1)]
PLACEMENTS = 12
SPACER_MAX_BYTES = 4 << 20  # per copy: past a 2 MiB page, small beside a copy of a large M


def copies(case: Case, count: int, rng: random.Random, own_spacers: bool) -> tuple[list, list]:
    """`count` rotating copies of the case's inputs, back to back or each after a spacer; and the spacers."""
    made, kept = [], []
    for seed in range(count):
        if own_spacers:
            size = rng.randrange(SPACER_ALIGN, SPACER_MAX_BYTES, SPACER_ALIGN)
            kept.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
        made.append(make_inputs(case, torch.device("cuda"), seed))
    return made, kept


def placement_medians(backend_name: str, case: Case, own_spacers: bool) -> list[float]:
    backend = select_backends([backend_name])[0]
    rng = random.Random(1)
    count, _ = device_cold_copies(case.bytes_moved, torch.device("cuda"))
    graphs, kept = {}, []
    for index in range(PLACEMENTS):
        kept.append(spacers(torch.device("cuda"), rng))  # as between placements now
        inputs, spaced = copies(case, count, rng, own_spacers)
        kept.append((inputs, spaced))
        call = rotating([backend.prepare(case, i) for i in inputs])
        for _ in range(count):
            call()
        unroll = timers.fit_graph_unroll(call, 1000.0, multiple_of=count)
        graphs[index] = timers.capture_graph(call, unroll), unroll
    samples = timers.time_graphs(graphs, Target())
    return [samples[i].median_us for i in range(PLACEMENTS)]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def main() -> None:
    out_dir = parse_args().out_dir
    ext.ensure_loaded()
    warm_device(torch.device("cuda"), ClockWatch(torch.device("cuda")))  # clocks ramp from idle, as the engine does
    rows = []
    for backend, m in POINTS:
        case = Case("DeepSeek-V3", "router", "router", m, 256, 7168)
        for own in (False, True):
            medians = placement_medians(backend, case, own)
            torch.cuda.empty_cache()  # every block of this row's placements is free now: the next starts afresh
            low, high, middle = min(medians), max(medians), statistics.median(medians)
            rows.append(
                [
                    f"{backend} M={m}",
                    "each copy after its own spacer" if own else "copies back to back (now)",
                    f"{middle:.2f}",
                    f"{low:.2f}-{high:.2f}",
                    f"{(high - low) / middle:.1%}",
                    " ".join(f"{v:.2f}" for v in medians),
                ]
            )
    headers = ["point", "copies", "median of medians", "range", "range / median", "placement medians (us)"]
    table = markdown_table(headers, rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = f"{torch.cuda.get_device_name()}, {PLACEMENTS} placements per row\n\n{table}\n"
    (out_dir / "placement_modes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
