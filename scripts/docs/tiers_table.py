"""docs/tiers.md's table of the three tiers from a tiers run (scripts/checks/tiers_check.sh's sweep of the five
router shapes at M = 1..32 with the two first-tier kernels, mm_out_dtype and linear_cast): per shape and M,
each backend's device time in µs (the fastest in bold, `–` where a backend did not run), how many times
faster the faster first-tier kernel is than mm_out_dtype, and the configuration router_small_m ran. Needs
no GPU.

Usage: python scripts/docs/tiers_table.py RUN.json   (prints Markdown)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gemmbench.output.format import markdown_table
from gemmbench.records import OK
from gemmbench.records.runfile import load_run

# (N, K) -> the GEMM the shape is, as the page names it; another shape is named by its N x K alone.
GEMMS = {
    (256, 7168): "DeepSeek-V3 router",
    (384, 7168): "Kimi-K2 / V4-Pro router",
    (256, 6144): "GLM-5 router",
    (256, 4096): "V4-Flash router",
    (64, 7168): "V4 indexer weights_proj",
}
FIRST_TIER = ("router_small_m_ext", "router_small_m")
FALLBACK = "mm_out_dtype"
BACKENDS = (*FIRST_TIER, FALLBACK, "linear_cast")
# router_small_m's rows name their configuration after the backend: "router_small_m fma BLOCK_N=1 ...".
TUNED = "router_small_m"
MISSING = "–"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the tiers sweep's run file")
    return parser.parse_args(argv)


def tiers_table(path: Path) -> str:
    timed = [r for r in load_run(path).records if r.status == OK and r.device is not None]
    points: dict[tuple[int, int, int], dict] = {}  # (N, K, M) -> backend -> row, in the run's order
    for r in timed:
        points.setdefault((r.n, r.k, r.m), {})[r.backend] = r
    rows = []
    for (n, k, m), at in points.items():
        times = {b: at[b].device.median_us for b in BACKENDS if b in at}
        fastest = min(times, key=times.get)
        row = [f"{GEMMS[(n, k)]} ({n} x {k})" if (n, k) in GEMMS else f"{n} x {k}", m]
        for b in BACKENDS:
            row.append(MISSING if b not in times else f"**{times[b]:.2f}**" if b == fastest else f"{times[b]:.2f}")
        first_tier = [times[b] for b in FIRST_TIER if b in times]
        row.append(f"{times[FALLBACK] / min(first_tier):.2f}x" if first_tier and FALLBACK in times else MISSING)
        config = at[TUNED].backend_config if TUNED in at else None
        row.append(config.removeprefix(f"{TUNED} ") if config else MISSING)
        rows.append(row)
    columns = ["GEMM (N x K)", "M", *BACKENDS, f"{FALLBACK} / fastest first tier", f"{TUNED}'s configuration"]
    return markdown_table(columns, rows)


def main(argv: list[str] | None = None) -> None:
    print(tiers_table(parse_args(argv).run), end="")


if __name__ == "__main__":
    main()
