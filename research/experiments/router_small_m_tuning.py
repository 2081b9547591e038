"""router_small_m's tuning space on this GPU: every candidate configuration's cold-L2 CUDA-graph device time
for the five router shapes of docs/tiers.md at M = 1..32, beside `mm_out_dtype` timed the same way.

The table shows the best and the worst candidate per point (how much tuning is worth), the best on tensor
cores and on CUDA cores, and the best without a split along K (one program walks all of K, as
TensorRT-LLM's dsv3RouterGemm does); the JSON keeps every candidate's time.

Usage: python research/experiments/router_small_m_tuning.py OUT_DIR
       (writes OUT_DIR/router_small_m_tuning.md and .json)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.backends.router_small_m_kernel import CUDA_CORES, TENSOR_CORES, candidates
from gemmbench.backends.router_small_m_tuning import TUNE_BUDGET_S, candidate_times
from gemmbench.measure.bench import Bench, MeasureOptions
from gemmbench.measure.tuning import CaseTimer
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing.stopping import Target

SHAPES = {  # name: (N, K), as in docs/tiers.md
    "DeepSeek-V3 router": (256, 7168),
    "Kimi-K2 / V4-Pro router": (384, 7168),
    "GLM-5 router": (256, 6144),
    "V4-Flash router": (256, 4096),
    "V4 indexer weights_proj": (64, 7168),
}
MS = (1, 2, 4, 8, 16, 32)
TARGET = Target(budget_s=0.05, min_time_s=0.05)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for router_small_m_tuning.md and .json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).out_dir
    bench = Bench(torch.device("cuda"), MeasureOptions())
    rows, everything = [], {}
    for name, (n, k) in SHAPES.items():
        for m in MS:
            case = Case(name, "router", "router", m, n, k)
            timer = CaseTimer(case, bench)  # the timer a sweep's tuning uses: cold L2, CUDA-graph device time
            times = candidate_times(timer, candidates(m), TUNE_BUDGET_S)
            best = min(times, key=times.get)
            kinds = {
                "tensor": [t for c, t in times.items() if c.product == TENSOR_CORES],
                "cuda": [t for c, t in times.items() if c.product == CUDA_CORES],
                "unsplit": [t for c, t in times.items() if c.splits(k) == 1],
            }
            reference = timer.device_time_us(lambda inputs, c=case: REGISTRY["mm_out_dtype"].prepare(c, inputs), TARGET)
            rows.append(
                [
                    name,
                    m,
                    f"{reference:.2f}",
                    f"{times[best]:.2f}",
                    f"{reference / times[best]:.2f}x",
                    str(best).removeprefix("router_small_m "),
                    f"{max(times.values()):.2f}",
                    *(f"{min(t):.2f}" if t else "" for t in kinds.values()),
                ]
            )
            everything[f"{name} M={m}"] = {str(c): t for c, t in sorted(times.items(), key=lambda item: item[1])}
    headers = [
        "shape",
        "M",
        "mm_out_dtype µs",
        "best µs",
        "speedup",
        "best configuration",
        "worst µs",
        "best on tensor cores µs",
        "best on CUDA cores µs",
        "best unsplit µs",
    ]
    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cold L2, CUDA-graph device time (median)"
    table = f"{title}\n\n" + markdown_table(headers, rows)
    (out_dir / "router_small_m_tuning.md").write_text(table)
    (out_dir / "router_small_m_tuning.json").write_text(json.dumps(everything, indent=1))
    print(table)


if __name__ == "__main__":
    main()
