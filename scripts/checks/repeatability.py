"""Repeatability of two runs of the same sweep, and cold against hot L2 (docs/measurement.md).

Usage: python scripts/checks/repeatability.py RUN_A RUN_B [--hot RUN_HOT]
Prints, for device time, the median and 95th percentile of |B/A - 1| over the points both ran, and,
given a hot run, every point whose inputs fit in L2 where the cold device time (RUN_A) is below the hot.
"""

from __future__ import annotations

import argparse
import statistics

from gemmbench.records import OK
from gemmbench.runfile import load_run


def device_medians(path) -> tuple[dict, dict]:
    run = load_run(path)
    return run.provenance, {(r.case, r.backend): r for r in run.records if r.status == OK and r.device_median_us}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", help="a run file")
    parser.add_argument("run_b", help="a second run of the same sweep")
    parser.add_argument("--hot", help="a hot-L2 run of the same sweep")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    provenance, first = device_medians(args.run_a)
    _, second = device_medians(args.run_b)
    shared = sorted(set(first) & set(second), key=lambda key: (key[0].m, key[1]))
    deviations = [abs(second[key].device_median_us / first[key].device_median_us - 1) for key in shared]
    print(f"points in both runs: {len(shared)}")
    print(
        f"device time |B/A - 1|: median {statistics.median(deviations):.2%}, "
        f"95th percentile {percentile(deviations, 0.95):.2%}, max {max(deviations):.2%}"
    )
    worst = sorted(zip(deviations, shared, strict=True), key=lambda pair: -pair[0])[:5]
    for deviation, (case, backend) in worst:
        print(
            f"  {deviation:.2%}  M={case.m} {backend}: {first[(case, backend)].device_median_us:.3g} -> "
            f"{second[(case, backend)].device_median_us:.3g} us"
        )
    noisy = [sum(bool(r.noisy) for r in run.values()) for run in (first, second)]
    throttled = [sum(bool(r.throttled) for r in run.values()) for run in (first, second)]
    print(f"rows flagged noisy: {noisy[0]} and {noisy[1]}; throttled: {throttled[0]} and {throttled[1]}")
    if args.hot:
        _, hot = device_medians(args.hot)
        l2_bytes = provenance.get("l2_cache_mb", 0) * 1e6
        fitting = [key for key in shared if key in hot and key[0].bytes_moved <= l2_bytes]
        below = [
            (key, first[key].device_median_us, hot[key].device_median_us)
            for key in fitting
            if first[key].device_median_us < hot[key].device_median_us
        ]
        print(
            f"points whose inputs fit in L2 ({l2_bytes / 1e6:.0f} MB): {len(fitting)}; cold below hot at {len(below)}"
        )
        for (case, backend), cold_us, hot_us in below:
            print(f"  M={case.m} {backend}: cold {cold_us:.3g} < hot {hot_us:.3g} us ({cold_us / hot_us - 1:.1%})")
        ratios = [first[key].device_median_us / hot[key].device_median_us for key in fitting]
        if ratios:
            print(
                f"cold/hot device time where inputs fit in L2: median {statistics.median(ratios):.2f}x, "
                f"min {min(ratios):.2f}x, max {max(ratios):.2f}x"
            )


if __name__ == "__main__":
    main()
