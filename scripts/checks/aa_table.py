"""What docs/measurement.md reports of an A/A set: default sweeps of the same code on the same machine, each
in its own process. Every pair's `compare` verdicts (no row should read faster or slower), whether the
DeepSeek-V3 router's mm_out_dtype figure at M = 1 of every run lies inside every run's interval, and the
rows flagged throttled or noisy with the SM clocks and NVML reasons seen.

Usage: python scripts/checks/aa_table.py RUN_1 RUN_2 [RUN_3 ...]   (prints Markdown)
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter

from gemmbench.analysis.compare import compare_runs
from gemmbench.output.format import markdown_table
from gemmbench.records import OK
from gemmbench.records.runfile import load_run

PROBE = ("mm_out_dtype", 256, 7168, 1)  # backend, N, K, M: the figure the A/A goal names


def probe(run):
    backend, n, k, m = PROBE
    for record in run.records:
        if (record.backend, record.n, record.k, record.m, record.context) == (backend, n, k, m, None):
            return record
    raise SystemExit(f"no {backend} row at {m}x{n}x{k} in the run")


def every_inside(runs) -> str:
    """How many rows timed in every run have every run's device-time median inside every run's interval."""
    by_run = [
        {(r.case, r.label, r.context): r.device for r in run.records if r.status == OK and r.device} for run in runs
    ]
    shared = set.intersection(*(set(rows) for rows in by_run))
    inside = sum(
        all(
            d.ci_low_us <= other[key].median_us <= d.ci_high_us
            for d in (rows[key] for rows in by_run)
            for other in by_run
        )
        for key in shared
    )
    return f"{inside} of {len(shared)} rows"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    runs = [load_run(path) for path in args.runs]
    print("### compare, every pair\n")
    pairs = []
    for (i, base), (j, new) in itertools.combinations(enumerate(runs, 1), 2):
        counts = compare_runs(base, new).counts()
        pairs.append([f"{i} -> {j}", *(counts[v] for v in ("faster", "slower", "same", "noisy"))])
    print(markdown_table(["pair", "faster", "slower", "same", "noisy"], pairs))
    print(f"\n### {PROBE[0]}, DeepSeek-V3 router, M = {PROBE[3]}: device time (us)\n")
    records = [probe(run) for run in runs]
    rows = []
    for i, record in enumerate(records, 1):
        d = record.device
        inside = sum(d.ci_low_us <= other.device.median_us <= d.ci_high_us for other in records)
        rows.append([i, f"{d.median_us:.3f}", f"{d.ci_low_us:.3f}-{d.ci_high_us:.3f}", f"{inside} of {len(records)}"])
    print(markdown_table(["run", "median", "95% interval", "medians inside"], rows))
    print(f"\n{every_inside(runs)} timed in every run: every run's device median inside every run's interval.")
    print("\n### flags\n")
    flags = []
    for i, run in enumerate(runs, 1):
        timed = [r for r in run.records if r.status == OK]
        clocks = [r.clocks.sm_clock_mhz for r in timed if r.clocks and r.clocks.sm_clock_mhz]
        reasons = Counter(
            x for r in timed if r.clocks and r.clocks.throttle_reasons for x in r.clocks.throttle_reasons.split(",")
        )
        flags.append(
            [
                i,
                len(timed),
                sum(bool(r.throttled) for r in timed),
                sum(bool(r.noisy) for r in timed),
                f"{min(clocks)}-{max(clocks)}" if clocks else "",
                ", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "none",
            ]
        )
    print(markdown_table(["run", "timed", "throttled", "noisy", "SM MHz (lowest read)", "NVML reasons (rows)"], flags))


if __name__ == "__main__":
    main()
