"""docs/context.md's tables of an independent layer check (the JSON `layer_check.py` writes): how many points
agree within 5%, the worst, how many read higher on either side, and per backend the points within 5% and
the ratio check / gemmbench (min, median, max), the backends with most points within first.

Usage: python scripts/checks/layer_check_table.py CHECK.json   (prints Markdown; no GPU)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

# The agreement the check asked of every point (layer_check.py's AGREEMENT, which wrote each point's
# `within`; that script needs torch): for the outside counts and the headings.
AGREEMENT = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", type=Path, help="a layer_check.json")
    return parser.parse_args(argv)


def summary(points: list[dict]) -> str:
    compared = [p for p in points if p.get("ratio") is not None]
    if not compared:
        return f"no point compared ({len(points)} in the file)"
    within = sum(p["within"] for p in compared)
    worst = max(compared, key=lambda p: abs(p["ratio"] - 1))
    higher = sum(p["ratio"] < 1 - AGREEMENT for p in compared)  # gemmbench read more than the check
    lower = sum(p["ratio"] > 1 + AGREEMENT for p in compared)
    not_timed = len(points) - len(compared)
    return (
        f"{within} of {len(compared)} points within {AGREEMENT:.0%} (worst {abs(worst['ratio'] - 1):.1%}, "
        f"{worst['point']}); outside it, gemmbench higher at {higher}, the check higher at {lower}"
        + (f"; {not_timed} not timed by the check" if not_timed else "")
    )


def backend_table(points: list[dict]) -> str:
    by_label: dict[str, list[dict]] = {}
    for p in points:
        if p.get("ratio") is not None:
            by_label.setdefault(p["label"], []).append(p)
    rows = sorted(by_label.items(), key=lambda item: -sum(p["within"] for p in item[1]))
    lines = [
        f"| backend | points within {AGREEMENT:.0%} | ratio (check / gemmbench): min, median, max |",
        "| --- | --- | --- |",
    ]
    for label, compared in rows:
        ratios = [p["ratio"] for p in compared]
        spread = f"{min(ratios):.3f}, {statistics.median(ratios):.3f}, {max(ratios):.3f}"
        lines.append(f"| `{label}` | {sum(p['within'] for p in compared)} of {len(ratios)} | {spread} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    check = json.loads(args.check.read_text())
    print(f"`{args.check}` ({check['device']}, run `{check['run_file']}`): {summary(check['points'])}.\n")
    print(backend_table(check["points"]))


if __name__ == "__main__":
    main()
