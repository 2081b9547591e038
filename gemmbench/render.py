"""Rich tables and progress for people. The only place where units are scaled and numbers rounded."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from gemmbench.results import ERROR, FP32_ACCURATE_REL_ERR, OK, SKIPPED, Record
from gemmbench.shapes import Case

TIMER_LABELS = {
    "cuda_graph": "CUDA-graph replay, per call (device time)",
    "cuda_events": "CUDA events around eager calls, back to back (what an eager caller pays)",
    "host_clock": "host clock around synchronous CPU calls",
    "simulated": "simulated by the fake backend",
}


def format_us(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.3g} ms"
    return f"{value:.3g} µs"


def format_err(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}"


def shape_title(case: Case) -> str:
    return (
        f"{case.model} {case.gemm}: x[M, {case.k}] @ w[{case.n}, {case.k}]ᵀ, "
        f"{case.in_dtype} → {case.out_dtype}"
    )


def point_label(case: Case, backend: str) -> str:
    return f"{case.model} {case.gemm} M={case.m} · {backend}"


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


def sweep_tables(records: list[Record]) -> Group:
    """One table per GEMM shape, one row per M, one column per backend; then skip and error reasons."""
    backends = list(dict.fromkeys(r.backend for r in records))
    groups: dict[tuple, list[Record]] = {}
    for record in records:
        groups.setdefault(record.case.shape_key, []).append(record)
    parts: list = [_shape_table(group, backends) for group in groups.values()]
    parts.append(_legend(records))
    reasons = _reasons(records)
    if reasons:
        parts.append(reasons)
    return Group(*parts)


def _shape_table(records: list[Record], backends: list[str]) -> Table:
    table = Table(title=shape_title(records[0].case), title_justify="left", show_lines=False, pad_edge=False)
    table.add_column("M", justify="right", style="cyan")
    for backend in backends:
        table.add_column(backend, justify="right")
    by_m: dict[int, dict[str, Record]] = defaultdict(dict)
    for record in records:
        by_m[record.m][record.backend] = record
    for m in sorted(by_m):
        row = by_m[m]
        fastest = _fastest_accurate(row.values())
        table.add_row(str(m), *(_cell(row.get(b), b == fastest) for b in backends))
    return table


def _fastest_accurate(records) -> str | None:
    accurate = [r for r in records if r.fp32_accurate and r.best_time_us is not None]
    return min(accurate, key=lambda r: r.best_time_us).backend if accurate else None


def _cell(record: Record | None, fastest: bool) -> Text:
    if record is None:
        return Text("")
    if record.status == SKIPPED:
        return Text("skipped", style="dim")
    if record.status == ERROR:
        return Text("error", style="red")
    text = Text(format_us(record.best_time_us), style="bold green" if fastest else "")
    detail = f"err {format_err(record.rel_err)}"
    if record.device_median_us is not None:
        detail = f"eager {format_us(record.latency_median_us)} · {detail}"
    text.append(f"\n{detail}", style="dim")
    return text


def _legend(records: list[Record]) -> Text:
    ok = [r for r in records if r.status == OK]
    timers = list(dict.fromkeys(r.device_timer or r.latency_timer for r in ok))
    lines = [f"time: {TIMER_LABELS.get(t, t)}" for t in timers]
    if any(r.device_median_us is not None for r in ok):
        lines.append(f"eager: {TIMER_LABELS['cuda_events']}")
    lines.append(
        f"err: ||out − ref|| / ||ref|| against float64; green: fastest with fp32-accurate output (err ≤ {FP32_ACCURATE_REL_ERR:g})"
    )
    return Text("\n".join(lines), style="dim")


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
