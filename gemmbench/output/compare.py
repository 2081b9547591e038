"""Two runs compared row by row (`gemmbench compare`): sweep rows and group rows."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.compare import Comparison, GroupComparison, RowComparison, RunConditions
from gemmbench.analysis.policy import (
    FLAGGED_TOLERANCE,
    SAME_TOLERANCE,
)
from gemmbench.output.format import MAX_LISTED_UNMATCHED, WideOrNarrow, format_us, markdown_table
from gemmbench.records import Provenance, after_context
from gemmbench.records.timers import median_of

VERDICT_STYLES = {"faster": "green", "slower": "red", "same": "", "noisy": "yellow", "not timed": "dim"}


def _run_label(provenance: Provenance, conditions: RunConditions) -> str:
    """What a compared run ran on: device, L2 mode, versions, date."""
    parts = [provenance.device_name or conditions.device_type or "unknown device"]
    if conditions.l2_modes:
        parts.append(f"L2 {'/'.join(conditions.l2_modes)}")
    versions = (provenance.gemmbench, provenance.torch, provenance.cuda, provenance.cublas)
    for version, label in zip(versions, ("gemmbench", "torch", "CUDA", "cuBLAS"), strict=True):
        if version:
            parts.append(f"{label} {version}")
    parts.append(provenance.started or "no date")
    return " · ".join(parts)


def _base_label(comparison: Comparison) -> str:
    return _run_label(comparison.base_provenance, comparison.base_conditions)


def _new_label(comparison: Comparison) -> str:
    return _run_label(comparison.new_provenance, comparison.new_conditions)


def _comparison_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    devices = {(row.base.device_id, row.new.device_id) for row in comparison.rows}
    for row in comparison.rows:
        # A row that was not timed in one run shows the other's device time, if it has one.
        base_us = row.base_us if row.timer else median_of(row.base.device)
        new_us = row.new_us if row.timer else median_of(row.new.device)
        rows.append(
            [
                f"{row.base.model} {row.base.gemm}{after_context(row.base.context)} N={row.base.n} K={row.base.k}",
                str(row.base.m),
                row.base.label + (_devices_of(row) if len(devices) > 1 else ""),
                format_us(base_us),
                format_us(new_us),
                "–" if row.ratio is None else f"{row.ratio:.3f}x",
                row.verdict,
            ]
        )
    return rows


def _devices_of(row: RowComparison) -> str:
    """Which devices' rows were compared, where a fleet's are (one device's row against each, or by device)."""
    base, new = row.base.device_id, row.new.device_id
    return f" ({base})" if base == new else f" ({base or 'base'} vs {new or 'new'})"


COMPARE_COLUMNS = ["GEMM", "M", "backend", "base", "new", "new/base", "verdict"]


def comparison_summary(comparison: Comparison) -> str:
    counts = ", ".join(f"{verdict} {count}" for verdict, count in comparison.counts().items())
    geomean = comparison.geomean_ratio
    lines = [f"geometric mean new/base: {'–' if geomean is None else f'{geomean:.3f}x'}; {counts}"]
    for label, rows in (("only in base", comparison.only_base), ("only in new", comparison.only_new)):
        if rows:
            shown = ", ".join(r.row_name for r in rows[:MAX_LISTED_UNMATCHED])
            lines.append(f"{label} ({len(rows)}): {shown}{' …' if len(rows) > MAX_LISTED_UNMATCHED else ''}")
    return "\n".join(lines)


# What the verdicts mean, under every compared table.
VERDICT_LEGEND = (
    f"same: within ±{SAME_TOLERANCE:.0%} (the run-to-run spread measured in docs/validation.md); noisy: a larger "
    f"change that the two runs' 95% intervals do not separate, or one within ±{FLAGGED_TOLERANCE:.0%} on a row "
    "flagged noisy or throttled"
)
SWEEP_TIME_LEGEND = "time: device (CUDA-graph) median where both runs have one, else latency"


def comparison_table(comparison: Comparison) -> WideOrNarrow:
    """The runs, their rows and the summary: one table with a GEMM column (the wide layout) where it fits the
    console's width, else a table per GEMM shape under its name (the narrow layout), whose columns keep every
    backend's name whole in an 80-column terminal."""
    rows = list(zip(_comparison_rows(comparison), comparison.rows, strict=True))
    return _compared(comparison, COMPARE_COLUMNS, COMPARE_COLUMNS[1:], rows, SWEEP_TIME_LEGEND)


def _compared(
    comparison: Comparison, columns: list[str], narrow_columns: list[str], rows: list[CellsAndRow], what: str
) -> WideOrNarrow:
    """The runs' labels, the compared rows (wide: one table; narrow: a table per value of the first column),
    the summary and the legend, `what` saying which time was compared."""
    header = Text(f"base: {_base_label(comparison)}\nnew:  {_new_label(comparison)}", style="bold")
    legend = Text(f"{what}; {VERDICT_LEGEND}", style="dim")
    summary = Text(comparison_summary(comparison))
    wide_table = _rows_table(columns, rows)
    return WideOrNarrow(
        [wide_table],
        wide=Group(header, wide_table, summary, legend),
        narrow=Group(header, *_tables_by_first_column(narrow_columns, rows), summary, legend),
    )


# The columns written right-justified: the numbers.
_NUMERIC_COLUMNS = ("M", "base", "new", "new/base", "base parallel", "new parallel")

# A compared row's cells (the verdict last), beside the row (sweep or group) they come from.
CellsAndRow = tuple[list[str], RowComparison | GroupComparison]


def _rows_table(columns: list[str], rows: list[CellsAndRow]) -> Table:
    """The compared rows, each verdict styled by it."""
    table = Table(pad_edge=False)
    for column in columns:
        justify = "right" if column in _NUMERIC_COLUMNS else "left"
        table.add_column(column, justify=justify, overflow="fold")  # names fold, whole, rather than lose their end
    for cells, row in rows:
        table.add_row(*cells[:-1], Text(cells[-1], style=VERDICT_STYLES[row.verdict]))
    return table


def _tables_by_first_column(columns: list[str], rows: list[CellsAndRow]) -> list:
    """The narrow layout: per value of the first cell (a GEMM shape, a group), that value, then its rows
    without that cell, under `columns`."""
    by_first: dict[str, list[CellsAndRow]] = {}
    for (first, *rest), row in rows:
        by_first.setdefault(first, []).append((rest, row))
    parts: list = []
    for first, rest_rows in by_first.items():
        parts += [Text(first, style="bold"), _rows_table(columns, rest_rows)]
    return parts


def comparison_markdown(comparison: Comparison) -> str:
    return _compared_markdown(comparison, COMPARE_COLUMNS, _comparison_rows(comparison))


def _compared_markdown(comparison: Comparison, columns: list[str], rows: list[list[str]]) -> str:
    header = f"base: {_base_label(comparison)}\n\nnew: {_new_label(comparison)}\n\n"
    return header + markdown_table(columns, rows) + "\n" + comparison_summary(comparison) + "\n"


GROUP_COMPARE_COLUMNS = ["group", "M", "light backend", "base parallel", "new parallel", "new/base", "verdict"]


def _group_comparison_rows(comparison: Comparison) -> list[list[str]]:
    return [
        [
            f"{r.base.model} {r.base.group}{after_context(r.base.context)}",
            str(r.base.m),
            r.base.backend,
            format_us(median_of(r.base.parallel_device)),
            format_us(median_of(r.new.parallel_device)),
            "–" if r.ratio is None else f"{r.ratio:.3f}x",
            r.verdict,
        ]
        for r in comparison.rows
    ]


GROUP_TIME_LEGEND = "time: the group's parallel device time (CUDA graphs), per layer after a context"
# The narrow layout's columns of a group's rows: the legend says which time base and new are.
NARROW_GROUP_COMPARE_COLUMNS = ["M", "light backend", "base", "new", "new/base", "verdict"]


def group_comparison_table(comparison: Comparison) -> WideOrNarrow:
    """The compared group rows (`compare_groups`), laid out as comparison_table lays out sweep rows, a
    table per group in the narrow layout."""
    rows = list(zip(_group_comparison_rows(comparison), comparison.rows, strict=True))
    return _compared(comparison, GROUP_COMPARE_COLUMNS, NARROW_GROUP_COMPARE_COLUMNS, rows, GROUP_TIME_LEGEND)


def group_comparison_markdown(comparison: Comparison) -> str:
    return _compared_markdown(comparison, GROUP_COMPARE_COLUMNS, _group_comparison_rows(comparison))
