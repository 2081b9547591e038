"""Validate gemmbench's timers against independent ones, on one GPU, in one run (docs/validation.md).

For each point: gemmbench's eager latency, device time hot and cold, and kernel sum; triton's
do_bench and do_bench_cudagraph; torch.utils.benchmark.Timer; and ncu's gpu__time_duration.sum
(--clock-control none) without and with --cache-control all. All on mm_out_dtype, the subject.

Usage: python research/checks/validate_timers.py OUT_DIR   (writes OUT_DIR/validation.md and .json)
       python research/checks/validate_timers.py --ncu-target   (the process ncu profiles; internal)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from gemmbench.backends import REGISTRY
from gemmbench.measure.session import plan_sweep, run_session
from gemmbench.output.format import markdown_table
from gemmbench.spec.cases import Case
from gemmbench.timing.clocks import ClockWatch, warm_device
from gemmbench.timing.inputs import COLD, HOT, make_inputs

ROUTER_M = (1, 16, 128, 1024, 4096)
POINTS = (
    [Case("router", "N=256", "router", m, 256, 7168) for m in ROUTER_M]
    + [Case("router", "N=384", "router", m, 384, 7168) for m in ROUTER_M]
    + [Case("attention", "N=2048", "attention", m, 2048, 7168) for m in (16, 4096)]
    + [Case("square", "8192^3", "custom", 8192, 8192, 8192)]
)
NCU_CALLS = 3  # calls profiled per point under ncu; the per-call kernel sums' median is reported
NCU_WARM_CALLS = 5
MARKER = "spin_kernel"  # torch.cuda._sleep's kernel, launched before each point's calls under ncu
MARKER_CYCLES = 1000
BACKEND = REGISTRY["mm_out_dtype"]


def gemmbench_times(case: Case, device: torch.device) -> dict:
    values = {}
    for mode in (HOT, COLD):
        plan = plan_sweep(shapes=[f"{case.m}x{case.n}x{case.k}"], backends=[BACKEND.name], hot=mode == HOT)
        (record,) = run_session(plan).run.records
        assert record.status == "ok", record.reason
        values[f"device_{mode}"] = record.device.median_us
        if mode == HOT:
            values["latency"] = record.latency.median_us
            values["kernel_sum"] = record.kernel_sum_us
            values["kernel_count"] = record.kernel_count
        else:
            values["cold_copies"] = record.l2_copies
    return values


def other_timers(case: Case, device: torch.device) -> dict:
    import torch.utils.benchmark as tbench
    import triton.testing

    call = BACKEND.prepare(case, make_inputs(case, device, seed=0))
    for _ in range(10):
        call()
    torch.cuda.synchronize()
    measured = tbench.Timer(stmt="call()", globals={"call": call}).blocked_autorange(min_run_time=0.5)
    return {
        "do_bench": triton.testing.do_bench(call, return_mode="median") * 1e3,
        "do_bench_cudagraph": triton.testing.do_bench_cudagraph(call, return_mode="median") * 1e3,
        "torch_benchmark": measured.median * 1e6,
    }


def ncu_times(cache_control: str) -> list[float | None]:
    """Per point, the median over NCU_CALLS calls of the summed gpu__time_duration of one call's kernels."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "ncu.csv"
        command = [
            "ncu",
            "--metrics",
            "gpu__time_duration.sum",
            "--clock-control",
            "none",
            "--cache-control",
            cache_control,
            "--profile-from-start",
            "off",
            "--csv",
            "--print-units",
            "base",
            "--log-file",
            str(log),
            sys.executable,
            __file__,
            "--ncu-target",
        ]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=600)
        rows = [r for r in csv.DictReader(_csv_lines(log)) if r.get("Metric Name") == "gpu__time_duration.sum"]
    # Each point's kernels follow one marker kernel (torch.cuda._sleep's spin_kernel).
    points: list[list[float]] = []
    for row in rows:
        if MARKER in row["Kernel Name"]:
            points.append([])
        elif points:
            points[-1].append(float(row["Metric Value"].replace(",", "")) / 1e3)  # base unit: ns
    results = []
    for durations in points:
        per_call = len(durations) // NCU_CALLS
        sums = [sum(durations[i * per_call : (i + 1) * per_call]) for i in range(NCU_CALLS)]
        results.append(statistics.median(sums) if per_call and per_call * NCU_CALLS == len(durations) else None)
    return results


def _csv_lines(log: Path) -> list[str]:
    """ncu's log holds '==PROF==' notices before the CSV; keep from the header on."""
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    return lines[start:]


def ncu_target() -> None:
    """Runs under ncu: every point's calls between cudaProfilerStart and Stop, warm-up outside."""
    device = torch.device("cuda")
    for case in POINTS:
        call = BACKEND.prepare(case, make_inputs(case, device, seed=0))
        for _ in range(NCU_WARM_CALLS):
            call()
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStart()
        torch.cuda._sleep(MARKER_CYCLES)
        torch.cuda.synchronize()
        for _ in range(NCU_CALLS):
            call()
            torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStop()


COLUMNS = [
    ("latency", "gemmbench latency (eager)"),
    ("device_hot", "gemmbench device hot"),
    ("device_cold", "gemmbench device cold"),
    ("kernel_sum", "gemmbench kernel sum"),
    ("do_bench", "triton do_bench"),
    ("do_bench_cudagraph", "triton do_bench_cudagraph"),
    ("torch_benchmark", "torch.utils.benchmark"),
    ("ncu_hot", "ncu"),
    ("ncu_cold", "ncu --cache-control all"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, help="folder for validation.md and validation.json")
    parser.add_argument("--ncu-target", action="store_true", help="be the process ncu profiles (internal)")
    args = parser.parse_args(argv)
    if not args.ncu_target and args.out_dir is None:
        parser.error("give OUT_DIR")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.ncu_target:
        ncu_target()
        return
    out_dir = args.out_dir
    device = torch.device("cuda")
    warm_device(device, ClockWatch(device))
    results = []
    for case in POINTS:
        values = {"point": f"{case.model} {case.gemm} M={case.m}", "m": case.m, "n": case.n, "k": case.k}
        values.update(gemmbench_times(case, device))
        values.update(other_timers(case, device))
        results.append(values)
        print(values, flush=True)
    for cache_control, key in (("none", "ncu_hot"), ("all", "ncu_cold")):
        try:
            for values, time_us in zip(results, ncu_times(cache_control), strict=False):
                values[key] = time_us
        except (subprocess.SubprocessError, OSError, StopIteration) as exc:
            print(f"ncu --cache-control {cache_control} failed: {exc}", flush=True)
    rows = [[r["point"], *(_us(r.get(key)) for key, _ in COLUMNS)] for r in results]
    table = markdown_table(["point (µs per call)", *(label for _, label in COLUMNS)], rows)
    header = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}\n\n"
    (out_dir / "validation.md").write_text(header + table)
    (out_dir / "validation.json").write_text(json.dumps(results, indent=1))
    print(header + table)


def _us(value) -> str:
    return "–" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    main()
