"""Two runs compared row by row (`gemmbench compare`): sweep rows and group rows."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.compare import Comparison, GroupComparison, RunConditions
from gemmbench.analysis.policy import (
    FLAGGED_TOLERANCE,
    SAME_TOLERANCE,
)
from gemmbench.output.format import MAX_LISTED_UNMATCHED, format_us, markdown_table
from gemmbench.records.timers import median_of

VERDICT_STYLES = {"faster": "green", "slower": "red", "same": "", "noisy": "yellow", "not timed": "dim"}


def _run_label(provenance: dict, conditions: RunConditions) -> str:
    """What a compared run ran on: device, L2 mode, versions, date."""
    parts = [provenance.get("device_name") or conditions.device_type or "unknown device"]
    if conditions.l2_modes:
        parts.append(f"L2 {'/'.join(conditions.l2_modes)}")
    for key, label in (("gemmbench", "gemmbench"), ("torch", "torch"), ("cuda", "CUDA"), ("cublas", "cuBLAS")):
        if provenance.get(key):
            parts.append(f"{label} {provenance[key]}")
    parts.append(provenance.get("started", "no date"))
    return " · ".join(parts)


def _base_label(comparison: Comparison) -> str:
    return _run_label(comparison.base_provenance, comparison.base_conditions)


def _new_label(comparison: Comparison) -> str:
    return _run_label(comparison.new_provenance, comparison.new_conditions)


def _comparison_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for row in comparison.rows:
        # A row that was not timed in one run shows the other's device time, if it has one.
        base_us = row.base_us if row.timer else median_of(row.base.device)
        new_us = row.new_us if row.timer else median_of(row.new.device)
        rows.append(
            [
                f"{row.base.model} {row.base.gemm} N={row.base.n} K={row.base.k}",
                str(row.base.m),
                row.base.label,
                format_us(base_us),
                format_us(new_us),
                "–" if row.ratio is None else f"{row.ratio:.3f}x",
                row.verdict,
            ]
        )
    return rows


COMPARE_COLUMNS = ["GEMM", "M", "backend", "base", "new", "new/base", "verdict"]


def comparison_summary(comparison: Comparison) -> str:
    counts = ", ".join(f"{verdict} {count}" for verdict, count in comparison.counts().items())
    geomean = comparison.geomean_ratio
    lines = [f"geometric mean new/base: {'–' if geomean is None else f'{geomean:.3f}x'}; {counts}"]
    for label, rows in (("only in base", comparison.only_base), ("only in new", comparison.only_new)):
        if rows:
            shown = ", ".join(f"{r.model} {r.gemm} M={r.m} {r.label}" for r in rows[:MAX_LISTED_UNMATCHED])
            lines.append(f"{label} ({len(rows)}): {shown}{' …' if len(rows) > MAX_LISTED_UNMATCHED else ''}")
    return "\n".join(lines)


def comparison_table(comparison: Comparison) -> Group:
    header = Text(f"base: {_base_label(comparison)}\nnew:  {_new_label(comparison)}", style="bold")
    table = Table(pad_edge=False)
    for column in COMPARE_COLUMNS:
        table.add_column(column, justify="right" if column in ("M", "base", "new", "new/base") else "left")
    for cells, row in zip(_comparison_rows(comparison), comparison.rows, strict=True):
        table.add_row(*cells[:-1], Text(cells[-1], style=VERDICT_STYLES[row.verdict]))
    legend = Text(
        f"time: device (CUDA-graph) median where both runs have one, else latency; same: within ±{SAME_TOLERANCE:.0%} "
        "(the run-to-run spread measured in docs/measurement.md); noisy: a larger change that the two runs' "
        f"95% intervals do not separate, or one within ±{FLAGGED_TOLERANCE:.0%} on a row flagged noisy or throttled",
        style="dim",
    )
    return Group(header, table, Text(comparison_summary(comparison)), legend)


def comparison_markdown(comparison: Comparison) -> str:
    header = f"base: {_base_label(comparison)}\n\nnew: {_new_label(comparison)}\n\n"
    return (
        header
        + markdown_table(COMPARE_COLUMNS, _comparison_rows(comparison))
        + "\n"
        + comparison_summary(comparison)
        + "\n"
    )


GROUP_COMPARE_COLUMNS = ["group", "M", "light backend", "base parallel", "new parallel", "new/base", "verdict"]


def _group_comparison_rows(rows: list[GroupComparison]) -> list[list[str]]:
    return [
        [
            f"{r.base.model} {r.base.group}",
            str(r.base.m),
            r.base.backend,
            format_us(median_of(r.base.parallel_device)),
            format_us(median_of(r.new.parallel_device)),
            "–" if r.ratio is None else f"{r.ratio:.3f}x",
            r.verdict,
        ]
        for r in rows
    ]


def group_comparison_table(rows: list[GroupComparison]) -> Table:
    table = Table(title="groups (parallel device time)", title_justify="left", pad_edge=False)
    for column in GROUP_COMPARE_COLUMNS:
        table.add_column(
            column, justify="right" if column in ("M", "base parallel", "new parallel", "new/base") else "left"
        )
    for cells, row in zip(_group_comparison_rows(rows), rows, strict=True):
        table.add_row(*cells[:-1], Text(cells[-1], style=VERDICT_STYLES[row.verdict]))
    return table


def group_comparison_markdown(rows: list[GroupComparison]) -> str:
    return markdown_table(GROUP_COMPARE_COLUMNS, _group_comparison_rows(rows))
