"""What a GPU at its power cap does to one point's samples (docs/validation.md): a large router GEMM
timed for a few seconds right after the device warm-up, window by window.

For each window: the median device time per call (CUDA-graph replays, cold L2 as in a sweep), the SM
clock and power NVML reads at its end, and the throttle reasons. Shows whether the time moves within
the span one timer samples (50-200 ms), which the confidence interval of a median cannot see.

Usage: python research/experiments/power_drift.py OUT_DIR   (writes OUT_DIR/power_drift.md)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.output.format import markdown_table
from gemmbench.spec.presets import load_preset
from gemmbench.timing import timers as timing
from gemmbench.timing.clocks import ClockWatch, slowdown_names, warm_device
from gemmbench.timing.inputs import input_copies, rotating

M = 16384
WINDOW_S = 0.1
WINDOWS = 20
IDLE_S = 3.0  # between the two phases: the GPU cools and leaves its power cap


def windows(call, unroll: int, clocks: ClockWatch, phase: str) -> tuple[list[list], list[float]]:
    window = timing.Target(ci_rel=0.0, budget_s=WINDOW_S, min_time_s=WINDOW_S)
    rows, medians = [], []
    started = time.perf_counter()
    for _ in range(WINDOWS):
        samples = timing.time_graph(call, window, unroll)
        reading = clocks.read()
        medians.append(samples.median_us)
        rows.append(
            [
                phase,
                f"{time.perf_counter() - started:.2f}",
                f"{samples.median_us:.1f}",
                f"{samples.iqr_us:.1f}",
                samples.count,
                reading.sm_mhz if reading else "–",
                f"{reading.clocks.power_w:.0f}" if reading else "–",
                ",".join(slowdown_names(reading.reasons)) if reading else "–",
            ]
        )
    return rows, medians


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for power_drift.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out_dir = parse_args(argv).out_dir
    device = torch.device("cuda")
    clocks = ClockWatch(device)
    warm_device(device, clocks)
    case = load_preset("deepseek-v3").gemms[0].case(M)
    copies, _ = input_copies(case, device, seed=0, cold=True)
    call = rotating([REGISTRY["mm_out_dtype"].prepare(case, inputs) for inputs in copies])
    timing.warm_up(call, 0.02, torch.cuda.synchronize)
    unroll = timing.fit_graph_unroll(call, 100.0, multiple_of=len(copies))
    hot_rows, hot_medians = windows(call, unroll, clocks, "right after the device warm-up")
    time.sleep(IDLE_S)
    idle_rows, idle_medians = windows(call, unroll, clocks, f"after {IDLE_S:g} s idle")
    headers = ["phase", "s into phase", "median µs/call", "IQR µs", "samples", "SM MHz at end", "power W", "slowdown"]
    summary = "".join(
        f"- {phase}: window medians {min(m):.1f}-{max(m):.1f} µs, median of windows {statistics.median(m):.1f} µs\n"
        for phase, m in (("right after the device warm-up", hot_medians), (f"after {IDLE_S:g} s idle", idle_medians))
    )
    table = (
        f"{torch.cuda.get_device_name()}, DeepSeek-V3 router M={M}, mm_out_dtype, cold L2 ({len(copies)} copies), "
        f"{unroll} calls per graph, {WINDOW_S * 1e3:g} ms windows\n\n{summary}\n"
        + markdown_table(headers, hot_rows + idle_rows)
    )
    (out_dir / "power_drift.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
