"""A sweep's results for people: one rich table per GEMM shape (one column per backend), or one Markdown
table, with the legend of the marks the records use."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.policy import (
    EAGER_STEADY_CI_REL,
    FP32_ACCURATE_REL_ERR,
    PREFERENCE,
    ROUTING_TOKENS,
    SAME_TOLERANCE,
    THROTTLE_CLOCK_FRACTION,
)
from gemmbench.analysis.recommend import tied_fastest
from gemmbench.output.format import (
    TIMER_LABELS,
    flags,
    format_err,
    format_us,
    markdown_table,
    reason_label,
    reasons_text,
    shape_title,
    skip_and_error_reasons,
)
from gemmbench.records import ERROR, OK, SKIPPED, Record, Run, by_shape
from gemmbench.records.timers import median_of


def per_device(records: list[Record]) -> list[tuple[str | None, list[Record]]]:
    """A fleet run whose devices measured the same points (`--split none`) reads device by device; any
    other run is one group (a `--split points` run measured each point once)."""
    devices = list(dict.fromkeys(r.device_id for r in records))
    points = {(r.case, r.label) for r in records}
    if len(devices) < 2 or len(points) == len(records):
        return [(None, records)]
    return [(device, [r for r in records if r.device_id == device]) for device in devices]


def sweep_tables(records: list[Record]) -> Group:
    """One table per GEMM shape, one row per M, one column per backend (per device, for a fleet check);
    then the legend and the skip and error reasons."""
    backends = list(dict.fromkeys(r.label for r in records))
    parts: list = []
    for device, group in per_device(records):
        if device:
            parts.append(Text(f"device {device} (rank {group[0].rank})", style="bold magenta"))
        parts += [_shape_table(shape, backends) for shape in by_shape(group).values()]
    parts.append(_legend(records))
    reasons = reasons_text(records)
    if reasons:
        parts.append(reasons)
    return Group(*parts)


def _shape_table(records: list[Record], backends: list[str]) -> Group:
    table = Table(pad_edge=False)
    table.add_column("M", justify="right", style="cyan")
    for backend in backends:
        table.add_column(backend, justify="right")
    by_m: dict[int, dict[str, Record]] = defaultdict(dict)
    for record in records:
        by_m[record.m][record.label] = record
    for m in sorted(by_m):
        row = by_m[m]
        fastest = _fastest_accurate(row.values())
        floor = next((r.floor_us for r in row.values() if r.floor_us is not None), None)
        m_cell = Text(str(m))
        if floor is not None:
            m_cell.append(f"\nfloor {format_us(floor)}", style="dim")
        table.add_row(m_cell, *(_cell(row.get(b), b == fastest) for b in backends))
    modes = {r.l2_mode for r in records if r.l2_mode}
    mode = modes.pop() if len(modes) == 1 else ("/".join(sorted(modes)) or None)
    return Group(Text(shape_title(records[0].case, mode), style="bold"), table)


def _fastest_accurate(records) -> str | None:
    """The backend `recommend` chooses at this point: the table marks the same one."""
    ranked = tied_fastest(records)
    return ranked[0] if ranked else None


def _cell(record: Record | None, fastest: bool) -> Text:
    if record is None:
        return Text("")
    if record.status == SKIPPED:
        return Text("skipped", style="dim")
    if record.status == ERROR:
        return Text("error", style="red")
    text = Text(format_us(record.best_time_us), style="bold green" if fastest else "")
    text.append(f" {format_err(record.rel_err)}", style="dim")
    for line in _details(record):
        text.append(f"\n{line}", style="dim")
    marks = flags(record)
    if marks:
        text.append(f"\n{' '.join(marks)}", style="yellow")
    return text


def _details(record: Record) -> list[str]:
    """Lines under the time: the eager latency (where a device time leads), then floor share and routing."""
    lines = [f"eager {format_us(median_of(record.latency))}"] if record.device else []
    return lines + _annotations(record)


def _annotations(record: Record) -> list[str]:
    """The time in the layer, the share of the floor and the routing mismatch, where the row has them."""
    in_layer = record.context_time_us
    notes = [f"after {record.context} {format_us(in_layer)}"] if record.context and in_layer is not None else []
    notes += [f"{record.pct_of_floor:.0f}% of floor"] if record.pct_of_floor is not None else []
    return notes + ([f"top-k≠ {record.topk_mismatch:.1%}"] if record.topk_mismatch is not None else [])


def sweep_markdown(records: list[Record]) -> str:
    """The sweep as one Markdown table: per backend `device (eager), rel_err`; fastest accurate in bold."""
    backends = list(dict.fromkeys(r.label for r in records))
    groups = per_device(records)
    by_point: dict[tuple, dict[str, Record]] = {}
    for device, group in groups:
        for record in group:
            by_point.setdefault((device, record.case.shape_key, record.m), {})[record.label] = record
    rows = []
    for (device, (model, gemm, n, k), m), row in by_point.items():
        fastest = _fastest_accurate(row.values())
        cells = [
            f"{model} {gemm}",
            str(n),
            str(k),
            str(m),
            *(_markdown_cell(row.get(b), b == fastest) for b in backends),
        ]
        rows.append([device, *cells] if len(groups) > 1 else cells)
    header = ["GEMM", "N", "K", "M", *backends]
    legend = "".join(f"- {line}\n" for line in legend_lines(records, markdown=True))
    reasons = "".join(
        f"- {reason_label(*key, count)}: {reason}\n"
        for (*key, reason), count in skip_and_error_reasons(records).items()
    )
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


def _legend(records: list[Record]) -> Text:
    return Text("\n".join(legend_lines(records, markdown=False)), style="dim")


def legend_lines(records: list[Record], markdown: bool) -> list[str]:
    """What the marks of a sweep table mean, for the marks these records use, in the words of the rich
    table or of the Markdown one."""
    bold, eager = ("bold", "in brackets") if markdown else ("green", "eager")
    ok = [r for r in records if r.status == OK]
    if not ok:
        return []
    timers = dict.fromkeys(summary.timer for r in ok if (summary := r.device or r.latency))
    lines = [f"time: {TIMER_LABELS.get(t, t)}" for t in timers]
    eager_timers = dict.fromkeys(r.latency.timer for r in ok if r.device and r.latency)
    lines += [f"{eager}: {TIMER_LABELS.get(t, t)}" for t in eager_timers]
    lines.append(
        "second number: ||out − ref|| / ||ref|| against float64; "
        f"{bold}: fastest with fp32-accurate output (≤ {FP32_ACCURATE_REL_ERR:g}), ties within "
        f"{SAME_TOLERANCE:.0%} going to the first of {', '.join(PREFERENCE)} (as `gemmbench recommend` chooses)"
    )
    contexts = dict.fromkeys(r.context for r in ok if r.context)
    for context in contexts:
        lines.append(
            f"after {context}: the GEMM's time in its layer, right after the {context} kernel that writes its input "
            "(CUDA graph of layers, each its own inputs: producer-then-GEMM minus the producer alone; eager where "
            f"there is no device time); {bold} goes by it, as `gemmbench recommend` does"
        )
    if any(r.floor_us is not None for r in ok):
        lines.append(
            "floor: max(bytes / measured bandwidth, FLOPs / measured bf16 throughput); "
            "N% of floor: the floor over the time"
        )
    if any(r.topk_mismatch is not None for r in ok):
        lines.append(
            f"top-k≠: share of {ROUTING_TOKENS} tokens whose top-k experts differ from those of the float64 logits"
        )
    if any(r.noisy for r in ok):
        lines.append(
            "noisy: the device time's 95% interval did not reach its target within the budget, or the eager "
            f"latency's window medians spread beyond ±{EAGER_STEADY_CI_REL:.0%} (the host's state moved)"
        )
    if any(r.throttled for r in ok):
        lines.append(
            f"throttled: the SM clock fell below {THROTTLE_CLOCK_FRACTION:.0%} of its maximum, "
            "or NVML reported a power or thermal slowdown"
        )
    return lines


def incomplete_note(run: Run) -> str:
    """How much of an interrupted sweep (or group run) finished."""
    planned = "?" if run.planned is None else run.planned
    finished = len(run.records) + len(run.groups)
    if run.planned is not None and finished >= run.planned:
        return f"all {planned} rows finished, the kernel pass did not"
    return f"{finished} of {planned} rows finished"
