"""The tables of docs/routing.md from routing_check.sh's run files: each preset's routing function, and per
router, M and backend the routing fidelity against float64 (rows launched with PDL compute the same bits
as without and are left out).

Usage: python scripts/checks/routing_table.py RUN [RUN ...]   (prints Markdown)
"""

from __future__ import annotations

import argparse

from gemmbench.output.format import markdown_table
from gemmbench.records import OK
from gemmbench.records.runfile import load_run
from gemmbench.spec.presets import load_preset, preset_names


def functions_table() -> str:
    rows = []
    for name in preset_names():
        for gemm in load_preset(name).gemms:
            if gemm.role == "router":
                spec = gemm.routing
                rows.append([name, gemm.n, gemm.top_k, spec.label if spec else "plain top-k"])
    return markdown_table(["preset", "experts", "top-k", "routing function"], rows)


def fidelity_table(path: str) -> str:
    run = load_run(path)
    rows = [
        [
            r.model,
            r.m,
            r.backend,
            f"{r.topk_mismatch:.2%}",
            f"{r.weight_l1_mean:.2e}",
            f"{r.weight_l1_max:.2e}",
            f"{r.load_change:.3f}",
        ]
        for r in run.records
        if r.status == OK and not r.pdl and r.topk_mismatch is not None
    ]
    gpu = run.provenance.device_name or "?"
    inputs = sorted({r.routing_inputs for r in run.records if r.routing_inputs})
    head = f"{gpu}, {(run.provenance.started or '?')[:10]}; inputs: {'; '.join(inputs)}\n\n"
    return head + markdown_table(
        [
            "model",
            "M",
            "backend",
            "tokens whose experts change",
            "weight L1, mean",
            "weight L1, worst",
            "largest load change",
        ],
        rows,
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    print(functions_table())
    for path in args.runs:
        print()
        print(fidelity_table(path))


if __name__ == "__main__":
    main()
