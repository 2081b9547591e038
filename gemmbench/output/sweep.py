"""A sweep's results for people: one rich table per GEMM shape (one column per backend, or, where that is
wider than the console, one row per M and backend), or one Markdown table, with the legend of the marks
the records use."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.policy import FP32_ACCURATE_REL_ERR, PREFERENCE, SAME_TOLERANCE
from gemmbench.analysis.recommend import tied_fastest
from gemmbench.output.format import (
    TIMER_LABELS,
    WideOrNarrow,
    flags,
    format_err,
    format_us,
    markdown_table,
    reason_lines,
    reasons_text,
    shape_title,
)
from gemmbench.records import ERROR, OK, SKIPPED, Record, Run, after_context, by_shape
from gemmbench.records.flags import EAGER_STEADY_CI_REL, ROUTING_TOKENS, THROTTLE_CLOCK_FRACTION
from gemmbench.records.record import NOT_MEASURED
from gemmbench.records.timers import median_of

# Marks the fastest accurate time beside its color, which a pipe, a log or a screen reader loses.
WINNER_MARK = "*"


def per_device(records: list[Record]) -> list[tuple[str | None, list[Record]]]:
    """A fleet run whose devices measured the same points (`--split none`) reads device by device; any
    other run is one group (a `--split points` run measured each point once)."""
    devices = list(dict.fromkeys(r.device_id for r in records))
    points = {(r.case, r.label) for r in records}
    if len(devices) < 2 or len(points) == len(records):
        return [(None, records)]
    return [(device, [r for r in records if r.device_id == device]) for device in devices]


def sweep_tables(records: list[Record]) -> WideOrNarrow:
    """One table per GEMM shape (per device, for a fleet check), then the legend and the skip and error
    reasons. Laid out for the console that prints them: one column per backend (the wide layout) where
    every such table fits its width, else one row per (M, backend) (the long layout), whose narrow columns
    keep every header and value whole in an 80-column terminal. All tables share one layout, so shapes
    read alike."""
    backends = list(dict.fromkeys(r.label for r in records))
    groups = [(device, list(by_shape(group).values())) for device, group in per_device(records)]
    wide_tables = [_wide_table(shape, backends) for _, shapes in groups for shape in shapes]
    return WideOrNarrow(
        measured=wide_tables,
        wide=_layout(records, groups, iter(wide_tables), _CELL_REL_ERR_LABEL),
        narrow=_layout(
            records, groups, (_long_table(s, backends) for _, shapes in groups for s in shapes), _COLUMN_REL_ERR_LABEL
        ),
    )


def _layout(records: list[Record], groups: list, tables, rel_err_label: str) -> Group:
    """The device headings, each shape's heading and table (from `tables`, in order), the legend, the reasons."""
    parts: list = []
    for device, shapes in groups:
        if device:
            parts.append(Text(f"device {device} (rank {shapes[0][0].rank})", style="bold magenta"))
        for shape in shapes:
            parts += [_shape_heading(shape), next(tables)]
    parts.append(_legend(records, rel_err_label=rel_err_label))
    reasons = reasons_text(records)
    if reasons:
        parts.append(reasons)
    return Group(*parts)


def _shape_heading(records: list[Record]) -> Text:
    modes = {r.l2_mode for r in records if r.l2_mode}
    mode = modes.pop() if len(modes) == 1 else ("/".join(sorted(modes)) or None)
    context = records[0].context
    layer = f" · in the layer after {context}: time per layer, {context} then the GEMM" if context else ""
    return Text(shape_title(records[0].case, mode) + layer, style="bold")


def _by_m(records: list[Record]) -> dict[int, dict[str, Record]]:
    """The records of one shape by M (ascending), then by backend."""
    by_m: dict[int, dict[str, Record]] = defaultdict(dict)
    for record in records:
        by_m[record.m][record.label] = record
    return dict(sorted(by_m.items()))


def _floor_of(row: dict[str, Record]) -> float | None:
    return next((r.floor_us for r in row.values() if r.floor_us is not None), None)


def _wide_table(records: list[Record], backends: list[str]) -> Table:
    """One row per M, one column per backend: time and rel_err, then the details, in each cell."""
    table = Table(pad_edge=False)
    table.add_column("M", justify="right", style="cyan")
    for backend in backends:
        table.add_column(backend, justify="right")
    for m, row in _by_m(records).items():
        fastest = _fastest_accurate(row.values())
        floor = _floor_of(row)
        m_cell = Text(str(m))
        if floor is not None:
            m_cell.append(f"\nfloor {format_us(floor)}", style="dim")
        table.add_row(m_cell, *(_cell(row.get(b), b == fastest) for b in backends))
    return table


# What the legend calls the relative error: the second number of a cell (wide or Markdown), or the long
# layout's column of that name.
_CELL_REL_ERR_LABEL = "second number"
_COLUMN_REL_ERR_LABEL = "rel_err"

# The long layout's columns, left to right, with their justification and style; a column empty in every
# row of a table is left out (eager where no row has a device time, notes where no row has a note).
_LONG_COLUMNS = (
    ("M", "right", "cyan"),
    ("backend", "left", None),
    ("time", "right", None),
    (_COLUMN_REL_ERR_LABEL, "right", None),
    ("eager", "right", None),
    ("notes", "left", None),
)


def _long_table(records: list[Record], backends: list[str]) -> Table:
    """One row per (M, backend), one section per M."""
    groups = [_m_group(m, row, backends) for m, row in _by_m(records).items()]
    columns = [column for column in _LONG_COLUMNS if any(column[0] in cells for group in groups for cells in group)]
    table = Table(pad_edge=False)
    for name, justify, style in columns:
        table.add_column(name, justify=justify, style=style)
    for group in groups:
        for i, cells in enumerate(group):
            table.add_row(*(cells.get(name, "") for name, _, _ in columns), end_section=i == len(group) - 1)
    return table


def _m_group(m: int, row: dict[str, Record], backends: list[str]) -> list[dict[str, Text]]:
    """The rows of one M, each its non-empty cells by column: the floor's row first where measured (its time
    in the time column, where it reads against the backends'), then one per backend; M on the first."""
    fastest = _fastest_accurate(row.values())
    floor = _floor_of(row)
    group = [_floor_cells(floor)] if floor is not None else []
    group += [_long_cells(row[backend], backend == fastest) for backend in backends if backend in row]
    group[0]["M"] = Text(str(m))
    return group


def _floor_cells(floor: float) -> dict[str, Text]:
    return {"backend": Text("floor", style="dim"), "time": Text(format_us(floor), style="dim")}


def _long_cells(record: Record, fastest: bool) -> dict[str, Text]:
    """A backend's row of the long layout: the same values and marks as its cell of the wide layout."""
    cells = {"backend": Text(record.label)}
    status = _status_text(record)
    if status is not None:
        return cells | {"time": status}
    cells["time"] = _time_text(record, fastest)
    cells[_COLUMN_REL_ERR_LABEL] = Text(format_err(record.rel_err), style="dim")
    if record.device:
        cells["eager"] = Text(format_us(median_of(record.latency)), style="dim")
    notes = _notes(record)
    if notes:
        cells["notes"] = notes
    return cells


def _notes(record: Record) -> Text:
    """The annotations, one a line, then the flags, on one line, as the wide cell ends."""
    notes = Text("\n".join(_annotations(record)), style="dim")
    marks = flags(record)
    if marks:
        notes.append(("\n" if notes else "") + " ".join(marks), style="yellow")
    return notes


def _time_text(record: Record, fastest: bool) -> Text:
    """The row's time; the fastest accurate one green and marked, so a pipe or a log shows it too."""
    if fastest:
        return Text(f"{format_us(record.best_time_us)}{WINNER_MARK}", style="bold green")
    return Text(format_us(record.best_time_us))


def _fastest_accurate(records) -> str | None:
    """The backend `recommend` chooses at this point: the table marks the same one."""
    ranked = tied_fastest(records)
    return ranked[0] if ranked else None


def _cell(record: Record | None, fastest: bool) -> Text:
    if record is None:
        return Text("")
    status = _status_text(record)
    if status is not None:
        return status
    text = _time_text(record, fastest)
    text.append(f" {format_err(record.rel_err)}", style="dim")
    for line in _details(record):
        text.append(f"\n{line}", style="dim")
    marks = flags(record)
    if marks:
        text.append(f"\n{' '.join(marks)}", style="yellow")
    return text


def _status_text(record: Record) -> Text | None:
    """What a skipped or an error row shows in place of its time (its reason is listed under the tables)."""
    if record.status == SKIPPED:
        return Text("skipped", style="dim")
    if record.status == ERROR:
        return Text("error", style="red")
    return None


def _details(record: Record) -> list[str]:
    """Lines under the time: the eager latency (where a device time leads), then floor share and routing."""
    lines = [f"eager {format_us(median_of(record.latency))}"] if record.device else []
    return lines + _annotations(record)


def _annotations(record: Record) -> list[str]:
    """How close the time comes to the floor, and the routing fidelity, where the row has them."""
    notes = [f"{record.pct_of_floor:.0f}% of roofline"] if record.pct_of_floor is not None else []
    return notes + ([routing_note(record)] if record.topk_mismatch is not None else [])


# A share of tokens under 0.1% (one token of 2048 is 0.05%) keeps two significant digits: one decimal of a
# percent would read 0.0%, as if no token had moved.
SMALLEST_ONE_DECIMAL_SHARE = 0.001


def routing_note(record: Record) -> str:
    """`top-k≠ 3.0%`, and where tokens moved, how far their weights and the experts' loads moved."""
    share = record.topk_mismatch
    note = f"top-k≠ {share:.1%}" if share == 0 or share >= SMALLEST_ONE_DECIMAL_SHARE else f"top-k≠ {share * 100:.2g}%"
    if record.topk_mismatch and record.weight_l1_max is not None and record.load_change is not None:
        note += f" (weights ≤{record.weight_l1_max:.2g}, load ±{record.load_change:.0%})"
    return note


def sweep_markdown(records: list[Record]) -> str:
    """The sweep as one Markdown table: per backend `device (eager), rel_err`; fastest accurate in bold."""
    backends = list(dict.fromkeys(r.label for r in records))
    groups = per_device(records)
    by_point: dict[tuple, dict[str, Record]] = {}
    for device, group in groups:
        for record in group:
            by_point.setdefault((device, record.view, record.m), {})[record.label] = record
    rows = []
    for (device, (model, gemm, n, k, context), m), row in by_point.items():
        fastest = _fastest_accurate(row.values())
        cells = [
            f"{model} {gemm}{after_context(context)}",
            str(n),
            str(k),
            str(m),
            *(_markdown_cell(row.get(b), b == fastest) for b in backends),
        ]
        rows.append([device, *cells] if len(groups) > 1 else cells)
    header = ["GEMM", "N", "K", "M", *backends]
    legend = "".join(f"- {line}\n" for line in legend_lines(records, markdown=True))
    reasons = "".join(f"- {line}\n" for _, line in reason_lines(records))
    table = markdown_table(["device", *header] if len(groups) > 1 else header, rows)
    return table + ("\n" + legend if legend else "") + ("\n" + reasons if reasons else "")


def _markdown_cell(record: Record | None, fastest: bool) -> str:
    if record is None:
        return ""
    if record.status != OK:
        return record.status
    time = format_us(record.best_time_us)
    time = f"**{time}**" if fastest else time
    eager = f" ({format_us(median_of(record.latency))})" if record.device else ""
    return f"{time}{eager}, {format_err(record.rel_err)}" + "".join(
        f", {e}" for e in _annotations(record) + flags(record)
    )


def _legend(records: list[Record], rel_err_label: str) -> Text:
    return Text("\n".join(legend_lines(records, markdown=False, rel_err_label=rel_err_label)), style="dim")


def legend_lines(records: list[Record], markdown: bool, rel_err_label: str = _CELL_REL_ERR_LABEL) -> list[str]:
    """What the marks of a sweep table mean, for the marks these records use, in the words of the rich
    table (wide or long) or of the Markdown one."""
    bold, eager = ("bold", "in brackets") if markdown else (f"green, {WINNER_MARK}", "eager")
    ok = [r for r in records if r.status == OK]
    if not ok:
        return []
    timers = dict.fromkeys(summary.timer for r in ok if (summary := r.device or r.latency))
    lines = [f"time: {TIMER_LABELS.get(t, t)}" for t in timers]
    eager_timers = dict.fromkeys(r.latency.timer for r in ok if r.device and r.latency)
    lines += [f"{eager}: {TIMER_LABELS.get(t, t)}" for t in eager_timers]
    lines.append(
        f"{rel_err_label}: ||out − ref|| / ||ref|| against float64; "
        f"{bold}: fastest with fp32-accurate output (≤ {FP32_ACCURATE_REL_ERR:g}), ties within "
        f"{SAME_TOLERANCE:.0%} going to the first of {', '.join(PREFERENCE)} (as `gemmbench recommend` chooses)"
    )
    contexts = dict.fromkeys(r.context for r in ok if r.context)
    for context in contexts:
        lines.append(
            f"after {context}: time per layer, the {context} kernel that writes the GEMM's input then the GEMM "
            "(layers each with their own inputs, timed in the same rounds as the rows alone); "
            f"{bold} goes by it, as `gemmbench recommend` does"
        )
    if any(r.floor_us is not None for r in ok):
        lines.append(
            "floor: max(bytes / measured bandwidth, FLOPs / measured bf16 throughput); "
            "N% of roofline: the floor over the time, how close the row comes to the floor (100%)"
        )
    if any(r.topk_mismatch is not None for r in ok):
        lines.append(
            f"top-k≠: share of the tokens checked ({ROUTING_TOKENS} synthetic ones, or those of the run's activations "
            "file: routing_inputs; at a larger M, one batch of M repeating them) routed to other experts than "
            "with the float64 logits, by the model's routing function (plain top-k where its preset gives none); "
            "weights: the "
            "largest L1 distance of a token's routing weights; load: the largest change of an expert's load, "
            "relative to the mean (docs/routing.md)"
        )
    if any(r.noisy for r in ok):
        windows = f"window medians spread beyond ±{EAGER_STEADY_CI_REL:.0%} (the host's state moved)"
        lines.append(
            f"noisy: the device time's 95% interval did not reach its target within the budget, or the eager "
            f"latency's {windows}"
            if any(r.device for r in ok)
            else f"noisy: the time's {windows}"
        )
    if any(r.throttled for r in ok):
        lines.append(
            f"throttled: the SM clock fell below {THROTTLE_CLOCK_FRACTION:.0%} of its maximum (beyond the "
            "run-to-run spread), or NVML reported a hardware slowdown or a thermal limit"
        )
    return lines


def incomplete_note(run: Run) -> str:
    """How much of an interrupted sweep (or group run) finished."""
    finished = sum(1 for row in (*run.records, *run.groups) if not row.reason.startswith(NOT_MEASURED))
    if run.planned is None:  # a CSV export
        return f"{finished} rows finished"
    planned = run.planned
    if finished >= run.planned:
        return f"all {planned} rows finished, the kernel pass did not"
    return f"{finished} of {planned} rows finished"
