"""What people read: rich tables, Markdown tables and progress bars, built from records and the
library's answers. Units are scaled and numbers rounded here, for display; files keep full precision.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

from rich import box
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gemmbench.backends import Availability
from gemmbench.clocks import THROTTLE_CLOCK_FRACTION
from gemmbench.compare import FLAGGED_TOLERANCE, SAME_TOLERANCE, Comparison, GroupComparison, RunConditions
from gemmbench.decode import FAMILIES, KernelInfo, decode, gemm_kernel, short_name
from gemmbench.fleet import OUTLIER, OUTLIER_MIN_POINTS, FleetReport
from gemmbench.group_advice import GroupAdvice
from gemmbench.recommend import PREFERENCE, MRange, ShapeRecommendation, tied_fastest
from gemmbench.records import (
    ERROR,
    FP32_ACCURATE_REL_ERR,
    OK,
    SKIPPED,
    GroupRecord,
    KernelRun,
    Record,
    by_case,
    by_shape,
    grouped,
)
from gemmbench.routing import ROUTING_TOKENS
from gemmbench.runfile import Run
from gemmbench.session import MEASURE, Step
from gemmbench.shapes import Case, Preset
from gemmbench.summary import EVENTS_TIMER, GRAPH_TIMER, HOST_TIMER, SIMULATED_TIMER
from gemmbench.timing import EAGER_STEADY_CI_REL

TIMER_LABELS = {
    GRAPH_TIMER: "CUDA-graph replay, per call (device time)",
    EVENTS_TIMER: "CUDA events around eager calls, back to back (what an eager caller pays)",
    HOST_TIMER: "host clock around synchronous CPU calls",
    SIMULATED_TIMER: "simulated by the fake backend",
}
# The Markdown kernel table, which has no width limit, keeps this many characters of a kernel name (the
# rich table folds names to the terminal's width instead).
MARKDOWN_KERNEL_NAME_WIDTH = 100
# compare's summary lists at most this many rows found in only one of the runs.
MAX_LISTED_UNMATCHED = 10


def format_us(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.3g} ms"
    return f"{value:.3g} µs"


def format_err(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}"


L2_LABELS = {
    "cold": "L2 cold (input copies rotated past 2x L2)",
    "hot": "L2 hot (one set of buffers)",
}


def shape_title(case: Case, l2_mode: str | None = None) -> str:
    title = f"{case.model} {case.gemm}: x[M, {case.k}] @ w[{case.n}, {case.k}]ᵀ, {case.in_dtype} → {case.out_dtype}"
    return f"{title} · {L2_LABELS.get(l2_mode, l2_mode)}" if l2_mode else title


def point_label(case: Case, backend: str) -> str:
    return f"{case.model} {case.gemm} M={case.m} · {backend}"


def step_label(step: Step) -> str:
    """A progress bar's description of the step in hand."""
    label = point_label(step.case, step.backend)
    return label if step.phase == MEASURE else f"kernels: {label}"


def incomplete_note(run: Run) -> str:
    """How much of an interrupted sweep finished."""
    planned = "?" if run.planned is None else run.planned
    if run.planned is not None and len(run.records) >= run.planned:
        return f"all {planned} rows finished, the kernel pass did not"
    return f"{len(run.records)} of {planned} rows finished"


def header(provenance: dict) -> Text:
    """One line naming the device and the software that produced the numbers."""
    if provenance.get("device_type") == "cuda":
        device = f"{provenance.get('device_name')} ({provenance.get('arch')}, driver {provenance.get('driver') or '?'})"
    else:
        device = f"CPU {provenance.get('device_name') or ''} ({provenance.get('cpu_threads', '?')} threads)"
    parts = [f"gemmbench {provenance.get('gemmbench', '?')}", device, f"torch {provenance.get('torch', '?')}"]
    if provenance.get("cuda"):
        parts.append(f"CUDA {provenance['cuda']}")
    if provenance.get("cublas"):
        parts.append(f"cuBLAS {provenance['cublas']}")
    if provenance.get("started"):
        parts.append(provenance["started"])
    return Text(" · ".join(parts), style="bold")


def per_device(records: list[Record]) -> list[tuple[str | None, list[Record]]]:
    """A fleet run whose devices measured the same points (`--split none`) reads device by device; any
    other run is one group (a `--split points` run measured each point once)."""
    devices = list(dict.fromkeys(r.device_id for r in records))
    points = {(r.case, r.backend) for r in records}
    if len(devices) < 2 or len(points) == len(records):
        return [(None, records)]
    return [(device, [r for r in records if r.device_id == device]) for device in devices]


def sweep_tables(records: list[Record]) -> Group:
    """One table per GEMM shape, one row per M, one column per backend (per device, for a fleet check);
    then the legend and the skip and error reasons."""
    backends = list(dict.fromkeys(r.backend for r in records))
    parts: list = []
    for device, group in per_device(records):
        if device:
            parts.append(Text(f"device {device} (rank {group[0].rank})", style="bold magenta"))
        parts += [_shape_table(shape, backends) for shape in by_shape(group).values()]
    parts.append(_legend(records))
    reasons = _reasons(records)
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
        by_m[record.m][record.backend] = record
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
    flags = _flags(record)
    if flags:
        text.append(f"\n{' '.join(flags)}", style="yellow")
    return text


def _details(record: Record) -> list[str]:
    """Lines under the time: the eager latency (where a device time leads), then floor share and routing."""
    lines = [f"eager {format_us(record.latency_median_us)}"] if record.device_median_us is not None else []
    return lines + _annotations(record)


def _annotations(record: Record) -> list[str]:
    """The share of the floor and the routing mismatch, where the row has them."""
    notes = [f"{record.pct_of_floor:.0f}% of floor"] if record.pct_of_floor is not None else []
    return notes + ([f"top-k≠ {record.topk_mismatch:.1%}"] if record.topk_mismatch is not None else [])


def _flags(record: Record) -> list[str]:
    return [flag for flag, on in (("noisy", record.noisy), ("throttled", record.throttled)) if on]


def sweep_markdown(records: list[Record]) -> str:
    """The sweep as one Markdown table: per backend `device (eager), rel_err`; fastest accurate in bold."""
    backends = list(dict.fromkeys(r.backend for r in records))
    groups = per_device(records)
    by_point: dict[tuple, dict[str, Record]] = {}
    for device, group in groups:
        for record in group:
            by_point.setdefault((device, record.case.shape_key, record.m), {})[record.backend] = record
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
    table = markdown_table(["device", *header] if len(groups) > 1 else header, rows)
    return table + ("\n" + legend if legend else "")


def _markdown_cell(record: Record | None, fastest: bool) -> str:
    if record is None:
        return ""
    if record.status != OK:
        return record.status
    time = format_us(record.best_time_us)
    time = f"**{time}**" if fastest else time
    eager = f" ({format_us(record.latency_median_us)})" if record.device_median_us is not None else ""
    return f"{time}{eager}, {format_err(record.rel_err)}" + "".join(
        f", {e}" for e in _annotations(record) + _flags(record)
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
    timers = dict.fromkeys(t for r in ok if (t := r.device_timer or r.latency_timer))
    lines = [f"time: {TIMER_LABELS.get(t, t)}" for t in timers]
    eager_timers = dict.fromkeys(r.latency_timer for r in ok if r.device_median_us is not None)
    lines += [f"{eager}: {TIMER_LABELS.get(t, t)}" for t in eager_timers]
    lines.append(
        "second number: ||out − ref|| / ||ref|| against float64; "
        f"{bold}: fastest with fp32-accurate output (≤ {FP32_ACCURATE_REL_ERR:g}), ties within "
        f"{SAME_TOLERANCE:.0%} going to the first of {', '.join(PREFERENCE)} (as `gemmbench recommend` chooses)"
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


def _reasons(records: list[Record]) -> Text | None:
    """Each distinct skip or error reason once, with the backends and the number of rows it covers."""
    seen: dict[tuple[str, str, str], int] = defaultdict(int)
    for record in records:
        if record.status in (SKIPPED, ERROR):
            seen[(record.status, record.backend, record.reason)] += 1
    if not seen:
        return None
    text = Text()
    for (status, backend, reason), count in seen.items():
        style = "yellow" if status == SKIPPED else "red"
        text.append(f"{backend} {status} ({count} row{'s' if count > 1 else ''}): ", style=style)
        text.append(f"{reason}\n")
    return text


def progress(console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )


# Columns of decoded kernel fields, shared by the rich and the Markdown kernel tables.
KERNEL_COLUMNS = ("kernel", "family", "arch", "types", "tile", "stages", "cluster", "split-K", "µs")


def _info_cells(info: KernelInfo) -> list[str]:
    """family, arch, types, tile, stages, cluster, split-K of a decoded name; '' where the name is silent."""
    split = "" if info.split_k is None else ("yes" if info.split_k else "no")
    stages = "" if info.stages is None else str(info.stages)
    return [info.family, info.arch or "", info.dtypes, info.tile, stages, info.cluster, split]


def _kernel_cells(kernel: KernelRun) -> list[str]:
    duration = "" if kernel.duration_us is None else f"{kernel.duration_us:.3g}"
    return [short_name(kernel.name), *_info_cells(decode(kernel.name)), duration]


def _shared_gemm_line(records: list[Record]) -> str:
    """Which backends of one case run the very same GEMM kernel: the check vLLM made by hand."""
    by_kernel: dict[str, list[str]] = {}
    for record in records:
        kernel = gemm_kernel([k.name for k in record.kernels or ()])
        if kernel:
            by_kernel.setdefault(kernel, []).append(record.backend)
    shared = [
        f"{', '.join(backends)} → {short_name(kernel)}" for kernel, backends in by_kernel.items() if len(backends) > 1
    ]
    return "same GEMM kernel: " + "; ".join(shared) if shared else "no two backends share a GEMM kernel"


def kernel_tables(records: list[Record]) -> Group:
    """Per case: each backend's kernels in launch order, decoded; then which backends share a GEMM kernel."""
    parts: list = []
    for case, group in by_case(records).items():
        # No vertical rules: ten columns must fit a 120-column terminal.
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("backend", style="cyan", overflow="fold")
        for column in KERNEL_COLUMNS:
            table.add_column(
                column,
                justify="right" if column in ("stages", "µs") else "left",
                overflow="fold",  # a narrow terminal folds long cells onto more lines; no column is cut
            )
        for record in group:
            if record.status != OK or not record.kernels:
                note = record.reason if record.status != OK else "kernels not recorded"
                table.add_row(
                    record.backend, Text(f"{record.status}: {note}", style="dim"), *[""] * (len(KERNEL_COLUMNS) - 1)
                )
                continue
            for index, kernel in enumerate(record.kernels):
                table.add_row(record.backend if index == 0 else "", *_kernel_cells(kernel))
        parts += [
            Text(f"{shape_title(case)}, M={case.m}", style="bold"),
            table,
            Text(_shared_gemm_line(group)),
            Text(""),
        ]
    return Group(*parts)


def kernel_markdown(records: list[Record]) -> str:
    """The kernel tables as one Markdown table, ready to paste into a pull request."""
    rows: list[list[str]] = []
    for case, group in by_case(records).items():
        label = f"{case.model} {case.gemm} M={case.m} N={case.n} K={case.k}"
        for record in group:
            if record.status == OK and record.kernels:
                for kernel in record.kernels:
                    cells = _kernel_cells(kernel)
                    cells[0] = f"`{short_name(kernel.name, width=MARKDOWN_KERNEL_NAME_WIDTH)}`"
                    rows.append([label, record.backend, *cells])
            else:
                rows.append([label, record.backend, f"{record.status}: {record.reason or 'kernels not recorded'}"])
        rows.append([label, "", _shared_gemm_line(group)])
    return markdown_table(["case", "backend", *KERNEL_COLUMNS], rows)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table of any cell values (as str() writes them); short rows are padded, pipes escaped."""

    def line(cells: list) -> str:
        cells = [str(c).replace("|", "\\|") for c in cells] + [""] * (len(header) - len(cells))
        return "| " + " | ".join(cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


def decoded_tables(infos: list[KernelInfo]) -> Group:
    """Each name, then its fields one per line: readable however long the name."""
    parts: list = []
    for info in infos:
        if not info.recognised:
            known = ", ".join(f for f in FAMILIES if f != "other")
            parts += [
                Text(info.name, style="bold"),
                Text(f"not recognised: not a name of {known}", style="yellow"),
                Text(""),
            ]
            continue
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="dim")
        table.add_column()
        for key, value in info.to_dict().items():
            if key != "name":
                table.add_row(
                    key, "–" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                )
        parts += [Text(info.name, style="bold"), table, Text("")]
    return Group(*parts)


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
        base_us = row.base_us if row.timer else row.base.device_median_us
        new_us = row.new_us if row.timer else row.new.device_median_us
        rows.append(
            [
                f"{row.base.model} {row.base.gemm} N={row.base.n} K={row.base.k}",
                str(row.base.m),
                row.base.backend,
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
            shown = ", ".join(f"{r.model} {r.gemm} M={r.m} {r.backend}" for r in rows[:MAX_LISTED_UNMATCHED])
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


def range_rule(ranges: list[MRange], index: int) -> str:
    """The dispatch rule of `ranges[index]`: "M <= 8", "8 < M <= 64", "M > 64", or "all M"."""
    last = ranges[index].last_m
    previous = ranges[index - 1].last_m if index else None
    if len(ranges) == 1:
        return "all M"
    if index == 0:
        return f"M <= {last}"
    if index == len(ranges) - 1:
        return f"M > {previous}"
    return f"{previous} < M <= {last}"


def recommendation_summary(recommendation: ShapeRecommendation) -> str:
    ranges = recommendation.ranges
    return "; ".join(f"{range_rule(ranges, i)}: {r.backend}" for i, r in enumerate(ranges)) or "no backend qualified"


def why_not_qualified(record: Record, tolerance: float) -> str:
    if record.status != OK:
        return f"{record.status}: {record.reason}"
    if record.rel_err is None:
        return "no relative error recorded"
    if record.rel_err > tolerance:
        return f"rel_err {record.rel_err:.1e} > {tolerance:g}"
    return "not timed"


def recommendation_dicts(recommendations: list[ShapeRecommendation]) -> list[dict]:
    """The recommendations as `recommend --json` writes them: every field, each range's rule, a summary."""
    return [
        {
            "model": rec.model,
            "gemm": rec.gemm,
            "n": rec.n,
            "k": rec.k,
            "tolerance": rec.tolerance,
            "ranges": [
                {"first_m": r.first_m, "last_m": r.last_m, "backend": r.backend, "rule": range_rule(rec.ranges, i)}
                for i, r in enumerate(rec.ranges)
            ],
            "winners": rec.winners,
            "tied": rec.tied,
            "excluded": {backend: why_not_qualified(record, rec.tolerance) for backend, record in rec.excluded.items()},
            "summary": recommendation_summary(rec),
        }
        for rec in recommendations
    ]


def _range_ties(recommendation: ShapeRecommendation, mrange: MRange) -> str:
    """The backends tied with the range's choice at some of its M values, with those M values."""
    at: dict[str, list[int]] = {}
    for m, others in recommendation.tied.items():
        if mrange.first_m <= m <= mrange.last_m:
            for backend in others:
                at.setdefault(backend, []).append(m)
    return ", ".join(f"{b} (M {','.join(map(str, ms))})" for b, ms in at.items())


def _recommendation_rows(recommendation: ShapeRecommendation) -> list[list[str]]:
    ranges = recommendation.ranges
    return [
        [
            range_rule(ranges, i),
            r.backend,
            f"{r.first_m}-{r.last_m}" if r.first_m != r.last_m else str(r.first_m),
            _range_ties(recommendation, r),
        ]
        for i, r in enumerate(ranges)
    ]


RECOMMEND_COLUMNS = ["M range", "backend", "measured M", f"tied within {SAME_TOLERANCE:.0%}"]


def tie_rule() -> str:
    return (
        f"tied: within {SAME_TOLERANCE:.0%} of the fastest (the run-to-run spread); a tie goes to the first of "
        f"{', '.join(PREFERENCE)}, then any other backend by name"
    )


def recommendation_tables(recommendations: list[ShapeRecommendation]) -> Group:
    parts: list = []
    for rec in recommendations:
        parts.append(
            Text(f"{rec.model} {rec.gemm} (N={rec.n}, K={rec.k}): {recommendation_summary(rec)}", style="bold")
        )
        table = Table(pad_edge=False)
        for column in RECOMMEND_COLUMNS:
            table.add_column(column)
        for cells in _recommendation_rows(rec):
            table.add_row(*cells)
        parts.append(table)
        for backend, record in rec.excluded.items():
            parts.append(Text(f"  {backend} never qualified: {why_not_qualified(record, rec.tolerance)}", style="dim"))
    if recommendations:
        parts.append(Text(tie_rule(), style="dim"))
        parts.append(
            Text(
                f"qualifies: status ok and rel_err <= {recommendations[0].tolerance:g}; fastest by device time "
                "(latency where there is none)",
                style="dim",
            )
        )
    return Group(*parts)


def recommendation_markdown(recommendations: list[ShapeRecommendation]) -> str:
    rows = [
        [f"{rec.model} {rec.gemm}", str(rec.n), str(rec.k), *cells]
        for rec in recommendations
        for cells in _recommendation_rows(rec)
    ]
    return markdown_table(["GEMM", "N", "K", *RECOMMEND_COLUMNS], rows) + ("\n" + tie_rule() + "\n" if rows else "")


PRESET_COLUMNS = ("preset", "model", "gemm", "role", "N", "K", "in → out", "top_k")


def presets_table(presets: list[Preset]) -> Table:
    """Every GEMM of every preset; the preset's name and model on its first row."""
    table = Table(title="Presets (configs/*.toml)", title_justify="left")
    for column in PRESET_COLUMNS:
        table.add_column(column, justify="right" if column in ("N", "K", "top_k") else "left")
    for preset in presets:
        for i, g in enumerate(preset.gemms):
            table.add_row(
                preset.name if i == 0 else "",
                preset.model if i == 0 else "",
                g.name,
                g.role,
                str(g.n),
                str(g.k),
                f"{g.in_dtype} → {g.out_dtype}",
                str(g.top_k or ""),
            )
    return table


def backends_table(availabilities: list[Availability], device_type: str) -> Table:
    """Each backend, the code it stands for, and whether it runs here (and if not, why)."""
    table = Table(title=f"Backends (availability on {device_type})", title_justify="left")
    for column in ("backend", "code", "origin", "here"):
        table.add_column(column)
    for availability in availabilities:
        backend = availability.backend
        table.add_row(backend.name, backend.code, backend.origin, _availability_cell(availability))
    return table


def _availability_cell(availability: Availability) -> str:
    backend = availability.backend
    if not backend.real:
        return "test double"
    if availability.reason:
        cell = f"[yellow]no: {availability.reason}[/]"
    elif availability.builds_first:
        cell = "[green]yes[/] (the extension builds on first use)"
    else:
        cell = "[green]yes[/]"
    return cell if backend.in_default_set else f"{cell}; only with --backend {backend.name}"


def facts_table(facts: dict) -> Table:
    """A flat dict as a two-column table for people ('–' for None)."""
    table = Table(show_header=False)
    for key, value in facts.items():
        table.add_row(key, "–" if value is None else str(value))
    return table


def _identifier(text: str) -> str:
    """`DeepSeek-V3 router` -> `deepseek_v3_router`: a Python name for a GEMM."""
    name = re.sub(r"\W+", "_", text).strip("_").lower()
    return name if name and not name[0].isdigit() else f"gemm_{name}"


def recommendation_python(recommendations: list[ShapeRecommendation], provenance: dict, source: str) -> str:
    """A dispatch function per GEMM shape and one by (N, K), as Python to paste into serving code: the M
    thresholds as named constants, a docstring naming the run, GPU and software they were measured on."""
    gpu = provenance.get("device_name", "unknown device")
    arch = f" ({provenance['arch']})" if provenance.get("arch") else ""
    software = ", ".join(
        f"{label} {provenance[key]}"
        for key, label in (("torch", "torch"), ("cuda", "CUDA"), ("cublas", "cuBLAS"), ("gemmbench", "gemmbench"))
        if provenance.get(key)
    )
    tolerance = recommendations[0].tolerance if recommendations else FP32_ACCURATE_REL_ERR
    lines = [
        '"""Which backend to dispatch for each bf16 x bf16 -> fp32 GEMM, by token count M.',
        "",
        f"Measured in {source}: {gpu}{arch}, {software}, {provenance.get('started', 'date not recorded')}.",
        f"The fastest backend with rel_err <= {tolerance:g} at each measured M; ties within {SAME_TOLERANCE:.0%} go",
        f"to the first of {', '.join(PREFERENCE)}.",
        "Each threshold is the largest M measured in its tier; an M between two measured values gets the",
        "lower tier's backend; an M above the largest measured gets None (not measured: a specialised",
        "backend may not even run there).",
        '"""',
        "",
    ]
    table: list[str] = []
    seen_shapes: dict[tuple[int, int], str] = {}
    for rec in recommendations:
        function = f"{_identifier(f'{rec.model} {rec.gemm}')}_backend"
        prefix = function.removesuffix("_backend").upper()
        lines.append(f"# {rec.model} {rec.gemm}: x[M, {rec.k}] @ w[{rec.n}, {rec.k}].T")
        for tier, mrange in enumerate(rec.ranges[:-1], start=1):
            lines.append(f"{prefix}_TIER_{tier}_MAX_M = {mrange.last_m}  # {mrange.backend}")
        if rec.ranges:
            lines.append(f"{prefix}_MAX_MEASURED_M = {rec.ranges[-1].last_m}")
        lines += ["", "", f"def {function}(m: int) -> str | None:"]
        if not rec.ranges:
            lines.append("    return None  # no backend qualified in this run")
        else:
            lines += [f"    if m > {prefix}_MAX_MEASURED_M:", "        return None  # not measured"]
        for tier, mrange in enumerate(rec.ranges[:-1], start=1):
            lines += [f"    if m <= {prefix}_TIER_{tier}_MAX_M:", f"        return {json.dumps(mrange.backend)}"]
        if rec.ranges:
            lines.append(f"    return {json.dumps(rec.ranges[-1].backend)}")
        lines += ["", ""]
        shape = (rec.n, rec.k)
        if shape in seen_shapes:
            table.append(f"    # {shape}: also {function}, measured separately; {seen_shapes[shape]} is used")
        else:
            seen_shapes[shape] = function
            table.append(f"    {shape}: {function},")
    lines += [
        "# (N, K) -> the dispatch function of that GEMM shape",
        "BACKEND_BY_SHAPE = {",
        *table,
        "}",
        "",
        "",
        "def choose_backend(n: int, k: int, m: int) -> str | None:",
        '    """The backend to dispatch for x[m, k] @ w[n, k].T, or None for a shape not measured."""',
        "    pick = BACKEND_BY_SHAPE.get((n, k))",
        "    return pick(m) if pick else None",
    ]
    return "\n".join(lines) + "\n"


FLEET_COLUMNS = [
    "device",
    "rank",
    "GPU",
    "points",
    "median ratio",
    "worst",
    "slower at",
    "verdict",
    "min SM MHz",
    "max W",
    "slowdowns",
]


def _fleet_rows(report: FleetReport) -> list[list[str]]:
    return [
        [
            d.device_id,
            "–" if d.rank is None else str(d.rank),
            d.gpu,
            str(d.points),
            f"{d.median_ratio:.3f}x",
            f"{d.max_ratio:.3f}x",
            str(d.slower_points),
            d.verdict,
            "–" if d.min_sm_clock_mhz is None else str(d.min_sm_clock_mhz),
            "–" if d.max_power_w is None else f"{d.max_power_w:.0f}",
            ", ".join(d.throttle_reasons) or "–",
        ]
        for d in report.devices
    ]


def fleet_legend() -> str:
    return (
        "ratio: the device's median over the fleet's median at a point (device time, else latency); "
        f"slower at: points where the low end of its 95% interval is more than {SAME_TOLERANCE:.0%} above the "
        f"fleet's median; outlier: slower at {OUTLIER_MIN_POINTS} or more points"
    )


def _slowest_points(report: FleetReport) -> list[str]:
    """For each outlier, the points where it is slower, worst first."""
    lines = []
    for device in (d for d in report.devices if d.verdict == OUTLIER):
        slow = sorted(
            (p for p in report.points if p.device_id == device.device_id and p.slower), key=lambda p: -p.ratio
        )
        shown = ", ".join(f"{p.model} {p.gemm} M={p.m} {p.backend} {p.ratio:.2f}x" for p in slow[:MAX_LISTED_UNMATCHED])
        lines.append(f"{device.device_id} slower at: {shown}{' …' if len(slow) > MAX_LISTED_UNMATCHED else ''}")
    return lines


def fleet_table(report: FleetReport) -> Group:
    table = Table(pad_edge=False)
    for column in FLEET_COLUMNS:
        table.add_column(column, justify="right" if column in ("rank", "points", "median ratio", "worst") else "left")
    for cells, device in zip(_fleet_rows(report), report.devices, strict=True):
        style = "red" if device.verdict == OUTLIER else "green"
        table.add_row(*cells[:7], Text(cells[7], style=style), *cells[8:])
    return Group(table, *(Text(line) for line in _slowest_points(report)), Text(fleet_legend(), style="dim"))


def fleet_markdown(report: FleetReport) -> str:
    lines = _slowest_points(report)
    extra = "\n" + "".join(f"- {line}\n" for line in lines) if lines else ""
    return markdown_table(FLEET_COLUMNS, _fleet_rows(report)) + extra + "\n" + fleet_legend() + "\n"


GROUP_LEGEND = (
    "parallel: the members on their streams, forked from and joined to the default stream with events; "
    "serial: all on one stream; times: CUDA-graph device time (eager latency below); speedup: serial over "
    "parallel; overlap: the members' times alone, summed, over the parallel time (1 = no gain; the stream "
    "count at best); critical path: the stream whose members take longest alone"
)


def _group_cell(record: GroupRecord | None) -> Text:
    if record is None:
        return Text("")
    if record.status != OK:
        return Text(record.status, style="dim" if record.status == SKIPPED else "red")
    style = "green" if record.speedup and record.speedup > 1 + SAME_TOLERANCE else ""
    text = Text(f"{format_us(record.parallel_device_us)} ∥ {format_us(record.serial_device_us)}", style=style)
    text.append(f"\n{record.speedup:.2f}x, overlap {record.overlap_efficiency:.2f}", style=style or "dim")
    text.append(f"\neager {format_us(record.parallel_latency_us)} ∥ {format_us(record.serial_latency_us)}", style="dim")
    if record.noisy:
        text.append("\nnoisy", style="yellow")
    return text


def group_tables(records: list[GroupRecord]) -> Group:
    """Per group: one row per M, one column per backend of the light members: parallel ∥ serial."""
    backends = list(dict.fromkeys(r.backend for r in records))
    parts: list = []
    for (model, name), group in grouped(records, lambda r: (r.model, r.group)).items():
        table = Table(pad_edge=False)
        table.add_column("M", justify="right", style="cyan")
        for backend in backends:
            table.add_column(f"light: {backend}", justify="right")
        by_m: dict[int, dict[str, GroupRecord]] = defaultdict(dict)
        for record in group:
            by_m[record.m][record.backend] = record
        for m in sorted(by_m):
            table.add_row(str(m), *(_group_cell(by_m[m].get(b)) for b in backends))
        timed = next((r for r in group if r.status == OK and r.members), None)
        members = ", ".join(f"{t.gemm} ({t.stream})" for t in timed.members) if timed else ""
        parts += [Text(f"{model} {name}: {members}", style="bold"), table]
    parts.append(Text("time: parallel ∥ serial. " + GROUP_LEGEND, style="dim"))
    reasons = _reasons(records)
    if reasons:
        parts.append(reasons)
    return Group(*parts)


GROUP_COLUMNS = [
    "group",
    "M",
    "light backend",
    "parallel",
    "serial",
    "speedup",
    "overlap",
    "critical path",
    "eager parallel",
    "eager serial",
]


def group_markdown(records: list[GroupRecord]) -> str:
    rows = []
    for r in records:
        if r.status != OK:
            rows.append([f"{r.model} {r.group}", str(r.m), r.backend, f"{r.status}: {r.reason}"])
            continue
        rows.append(
            [
                f"{r.model} {r.group}",
                str(r.m),
                r.backend,
                format_us(r.parallel_device_us),
                format_us(r.serial_device_us),
                f"{r.speedup:.2f}x",
                f"{r.overlap_efficiency:.2f}",
                r.critical_path or "",
                format_us(r.parallel_latency_us),
                format_us(r.serial_latency_us),
            ]
        )
    return markdown_table(GROUP_COLUMNS, rows) + "\n" + GROUP_LEGEND + "\n"


ADVICE_COLUMNS = ["M", "light backend", "parallel", "serial", "speedup", "streams pay"]


def _advice_rows(advice: GroupAdvice) -> list[list[str]]:
    return [
        [
            str(c.m),
            c.backend,
            format_us(c.parallel_us),
            format_us(c.serial_us),
            f"{c.speedup:.2f}x",
            "yes" if c.streams_pay else "no",
        ]
        for c in advice.choices
    ]


def advice_summary(advice: GroupAdvice) -> str:
    up_to = advice.streams_pay_up_to
    backends = ", ".join(dict.fromkeys(c.backend for c in advice.choices)) or "none qualified"
    pays = f"the auxiliary streams pay up to M = {up_to}" if up_to else "the auxiliary streams do not pay"
    return f"{advice.model} {advice.group}: {pays}; light GEMMs: {backends}"


def advice_tables(advice: list[GroupAdvice]) -> Group:
    parts: list = []
    for item in advice:
        table = Table(pad_edge=False)
        for column in ADVICE_COLUMNS:
            table.add_column(column, justify="left" if column in ("light backend", "streams pay") else "right")
        for row in _advice_rows(item):
            table.add_row(*row)
        parts += [Text(advice_summary(item), style="bold"), table]
    parts.append(
        Text(f"streams pay: parallel beats serial by more than {SAME_TOLERANCE:.0%}; " + tie_rule(), style="dim")
    )
    return Group(*parts)


def advice_markdown(advice: list[GroupAdvice]) -> str:
    parts = [f"{advice_summary(item)}\n\n{markdown_table(ADVICE_COLUMNS, _advice_rows(item))}" for item in advice]
    return "\n".join(parts)


def advice_dicts(advice: list[GroupAdvice]) -> list[dict]:
    return [
        {
            "model": a.model,
            "group": a.group,
            "streams_pay_up_to": a.streams_pay_up_to,
            "choices": [c.__dict__ for c in a.choices],
            "summary": advice_summary(a),
        }
        for a in advice
    ]


GROUP_COMPARE_COLUMNS = ["group", "M", "light backend", "base parallel", "new parallel", "new/base", "verdict"]


def _group_comparison_rows(rows: list[GroupComparison]) -> list[list[str]]:
    return [
        [
            f"{r.base.model} {r.base.group}",
            str(r.base.m),
            r.base.backend,
            format_us(r.base.parallel_device_us),
            format_us(r.new.parallel_device_us),
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
