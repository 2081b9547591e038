"""The first tier against the kernel the engines ship: a run of scripts/checks/first_tier_check.sh's
first-tier sweep (the five routers, M = 1..16, the three first-tier kernels with and without PDL, and
mm_out_dtype) beside the public dsv3RouterGemm kernel's figures, measured on an H200 (cold L2, CUDA-graph
device time, the same timer and inputs, on another start of the machine), as the Markdown table of
docs/tiers.md (a ratio short of the goal in italics) and the count of points where the goal (at least
GOAL_RATIO faster) is met. Needs no GPU.

Usage: python scripts/checks/first_tier_goal.py RUN.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gemmbench
from gemmbench.output.format import markdown_table

# (name, N, K): the five routers of the goal.
ROUTERS = [
    ("DeepSeek-V3", 256, 7168),
    ("Kimi-K2 / V4-Pro", 384, 7168),
    ("GLM-5", 256, 6144),
    ("V4-Flash", 256, 4096),
    ("V4 indexer", 64, 7168),
]
TOKEN_COUNTS = (1, 2, 4, 8, 16)
# The public kernel's device time in µs at TOKEN_COUNTS, (PDL off, PDL on), per router: the source of
# docs/tiers.md's "public" columns.
PUBLIC_US = {
    "DeepSeek-V3": ((3.06, 2.75), (3.21, 2.88), (3.77, 3.38), (4.89, 4.56), (7.36, 6.90)),
    "Kimi-K2 / V4-Pro": ((3.48, 3.20), (3.71, 3.43), (4.13, 3.82), (5.45, 5.16), (8.02, 7.61)),
    "GLM-5": ((2.87, 2.56), (3.02, 2.70), (3.49, 3.18), (4.52, 4.10), (6.68, 5.96)),
    "V4-Flash": ((2.54, 2.24), (2.66, 2.34), (2.94, 2.58), (3.74, 3.27), (5.19, 4.70)),
    "V4 indexer": ((2.27, 2.02), (2.54, 2.29), (3.07, 2.80), (4.38, 4.04), (6.70, 6.27)),
}
# The goal: gemmbench's fastest first-tier kernel at least 10% faster than the public kernel.
GOAL_RATIO = 1.10
FIRST_TIER = {"router_small_m_ext": "_ext", "router_small_m_mma": "_mma", "router_small_m": "triton"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the first-tier sweep's run file")
    return parser.parse_args(argv)


def cell(times: dict, key: tuple) -> str:
    return f"{times[key]:.2f}" if key in times else "–"


def goal_table(frame) -> tuple[str, dict[bool, int]]:
    """The table, and per PDL setting how many points meet the goal."""
    # A row that did not measure (skipped, failed) has no time and cannot be the fastest.
    measured = frame[(frame["status"] == "ok") & frame["device_median_us"].notna()]
    times = measured.set_index(["n", "k", "m", "backend", "pdl"])["device_median_us"].to_dict()
    missing = float("inf")
    rows, met = [], {False: 0, True: 0}
    for name, n, k in ROUTERS:
        for m, public in zip(TOKEN_COUNTS, PUBLIC_US[name], strict=True):
            row = [f"{name} {n}x{k}" if m == TOKEN_COUNTS[0] else "", m]
            for pdl in (False, True):
                fastest = min(FIRST_TIER, key=lambda backend: times.get((n, k, m, backend, pdl), missing))
                ratio = public[pdl] / times.get((n, k, m, fastest, pdl), missing)
                met[pdl] += ratio >= GOAL_RATIO
                row += [f"{public[pdl]:.2f}", f"**{cell(times, (n, k, m, fastest, pdl))}** {FIRST_TIER[fastest]}"]
                # italic: short of the goal, with the digits that show by how much
                row.append(f"{ratio:.2f}x" if ratio >= GOAL_RATIO else f"_{ratio:.3f}x_")
            row += [f"{cell(times, (n, k, m, b, False))} / {cell(times, (n, k, m, b, True))}" for b in FIRST_TIER]
            row.append(cell(times, (n, k, m, "mm_out_dtype", False)))
            rows.append(row)
    columns = ["router (N x K)", "M", "public", "gemmbench", "ratio", "public, PDL", "gemmbench, PDL", "ratio"]
    columns += [*FIRST_TIER, "mm_out_dtype"]
    return markdown_table(columns, rows), met


def main(argv: list[str] | None = None) -> None:
    frame = gemmbench.load_run(parse_args(argv).run).to_frame()
    frame["pdl"] = frame["pdl"].fillna(False).astype(bool)
    table, met = goal_table(frame)
    print(table, end="")
    points = len(ROUTERS) * len(TOKEN_COUNTS)
    print(f"\ngoal ({GOAL_RATIO:.2f}x) met: PDL off {met[False]} of {points}, PDL on {met[True]} of {points}")


if __name__ == "__main__":
    main()
