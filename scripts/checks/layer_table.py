"""docs/context.md's layer tables, printed from run files (no GPU): per run and router, one row per view
(the GEMM alone, then per layer after each producer) and M, one column per backend, device time in µs,
recommend's choice in bold.

Usage: python scripts/checks/layer_table.py RUN [RUN ...] [--m 1,2,4,8,16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gemmbench.analysis.recommend import tied_fastest
from gemmbench.output.format import format_us, markdown_table
from gemmbench.records import OK, grouped
from gemmbench.records.runfile import load_run
from gemmbench.spec.parse import parse_m_list


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--m", type=parse_m_list, default=None, help="M values to show (default: all)")
    return parser.parse_args(argv)


def run_tables(path: Path, m_values) -> str:
    run = load_run(path)
    facts = run.provenance
    lines = [
        f"{facts.device_name or '?'} ({facts.arch or '?'}), torch {facts.torch or '?'}, "
        f"{(facts.started or '?')[:10]}, `{path.name}`; device time, µs per call alone or per layer:",
        "",
    ]
    records = [r for r in run.records if m_values is None or r.m in m_values]
    labels = list(dict.fromkeys(r.label for r in records))
    for (model, gemm, n, k), shape in grouped(records, lambda r: r.case.shape_key).items():
        rows = []
        views = list(dict.fromkeys(r.context for r in shape))
        points = grouped(shape, lambda r: (r.context, r.m))
        for (context, m), point in sorted(points.items(), key=lambda item: (views.index(item[0][0]), item[0][1])):
            by_label = {r.label: r for r in point}
            chosen = next(iter(tied_fastest(point)), None)
            cells = []
            for label in labels:
                record = by_label.get(label)
                if record is None or record.status != OK:
                    cells.append("–")
                else:
                    time = format_us(record.best_time_us).removesuffix(" µs")
                    cells.append(f"**{time}**" if label == chosen else time)
            rows.append([context or "alone", str(m), *cells])
        lines += [f"{model} {gemm} ({n}x{k}):", "", markdown_table(["view", "M", *labels], rows), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    print("\n".join(run_tables(path, args.m) for path in args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
