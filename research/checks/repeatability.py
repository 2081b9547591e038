"""Repeatability of two runs of the same sweep, and cold against hot L2 (docs/validation.md).

Usage: python research/checks/repeatability.py RUN_A RUN_B [--hot RUN_HOT]
Prints, for device time and for eager latency, the median, 95th percentile and maximum of |B/A - 1|
over the points both timed, over all of them and over those flagged in neither run (noisy or
throttled), and the points that differ most. Given a hot run, every point whose inputs fit in L2 where
the cold device time (RUN_A) is below the hot. Any two runs compare: two default sweeps, or a sweep
with the kernel pass against one without (--no-kernels).
"""

from __future__ import annotations

import argparse
import statistics

from gemmbench.records import OK, Provenance
from gemmbench.records.runfile import load_run

# Points listed under each timer's summary: the largest differences.
WORST_SHOWN = 5


def timed_rows(path) -> tuple[Provenance, dict]:
    run = load_run(path)
    return run.provenance, {(r.case, r.label): r for r in run.records if r.status == OK}  # PDL off and on apart


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def flagged(record) -> bool:
    return bool(record.noisy or record.throttled)


def spread_line(label: str, deviations: list[float]) -> str:
    if not deviations:
        return f"{label}: no points"
    return (
        f"{label} ({len(deviations)} points): median {statistics.median(deviations):.2%}, "
        f"95th percentile {percentile(deviations, 0.95):.2%}, max {max(deviations):.2%}"
    )


def report_timer(timer: str, first: dict, second: dict) -> None:
    def median_of(record):
        summary = getattr(record, timer)
        return summary.median_us if summary else None

    shared = sorted(
        (key for key in set(first) & set(second) if median_of(first[key]) and median_of(second[key])),
        key=lambda key: (key[0].shape_key, key[0].m, key[1]),
    )
    deviation = {key: abs(median_of(second[key]) / median_of(first[key]) - 1) for key in shared}
    steady = [key for key in shared if not flagged(first[key]) and not flagged(second[key])]
    print(spread_line(f"{timer} |B/A - 1|, all", list(deviation.values())))
    print(spread_line(f"{timer} |B/A - 1|, flagged in neither run", [deviation[key] for key in steady]))
    for key in sorted(shared, key=deviation.get, reverse=True)[:WORST_SHOWN]:
        case, backend = key
        flags = "flagged" if flagged(first[key]) or flagged(second[key]) else "unflagged"
        print(
            f"  {deviation[key]:.2%}  {case.gemm} M={case.m} {backend}: {median_of(first[key]):.3g} -> "
            f"{median_of(second[key]):.3g} us ({flags})"
        )


def report_hot(provenance: Provenance, first: dict, hot: dict) -> None:
    l2_bytes = (provenance.l2_cache_mb or 0) * 1e6
    fitting = [
        key for key in first if key in hot and first[key].device and hot[key].device and key[0].bytes_moved <= l2_bytes
    ]
    below = [key for key in fitting if first[key].device_median_us < hot[key].device_median_us]
    print(f"points whose inputs fit in L2 ({l2_bytes / 1e6:.0f} MB): {len(fitting)}; cold below hot at {len(below)}")
    for case, backend in below:
        cold_us, hot_us = first[(case, backend)].device_median_us, hot[(case, backend)].device_median_us
        print(f"  M={case.m} {backend}: cold {cold_us:.3g} < hot {hot_us:.3g} us ({cold_us / hot_us - 1:.1%})")
    ratios = [first[key].device_median_us / hot[key].device_median_us for key in fitting]
    if ratios:
        print(
            f"cold/hot device time where inputs fit in L2: median {statistics.median(ratios):.2f}x, "
            f"min {min(ratios):.2f}x, max {max(ratios):.2f}x"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", help="a run file")
    parser.add_argument("run_b", help="a second run of the same sweep")
    parser.add_argument("--hot", help="a hot-L2 run of the same sweep")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    provenance, first = timed_rows(args.run_a)
    _, second = timed_rows(args.run_b)
    for timer in ("device", "latency"):
        report_timer(timer, first, second)
    for label, run in (("A", first), ("B", second)):
        noisy, throttled = sum(bool(r.noisy) for r in run.values()), sum(bool(r.throttled) for r in run.values())
        print(f"run {label}: {len(run)} timed rows, {noisy} flagged noisy, {throttled} throttled")
    if args.hot:
        report_hot(provenance, first, timed_rows(args.hot)[1])


if __name__ == "__main__":
    main()
