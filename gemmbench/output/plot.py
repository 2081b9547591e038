"""Time against M on log-log axes, one panel per GEMM shape, one line per backend, and the floor."""

from __future__ import annotations

import math
from pathlib import Path

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.records import OK, by_shape, grouped
from gemmbench.records.runfile import Run
from gemmbench.records.timers import GRAPH_TIMER, HOST_TIMER, median_of

FORMATS = (".png", ".svg")
PANEL_INCHES = (5.0, 3.6)
MAX_COLUMNS = 3
DPI = 130


def plot_run(run: Run, path: Path) -> Path:
    """Write the figure to `path` (PNG or SVG by its suffix); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot tell the image format of '{path.name}'", "end the file name in .png or .svg")
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise GemmbenchError("plotting needs matplotlib", "pip install matplotlib (or gemmbench[plot])") from exc
    panels = _record_panels(run) + _group_panels(run)
    if not panels:
        raise GemmbenchError("the run has no timed rows to plot", "plot a run with at least one ok row")
    columns = min(MAX_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), squeeze=False
    )
    for axis, (title, series) in zip(axes.flat, panels, strict=False):  # spare axes are hidden below
        for label, points, style in series:
            axis.plot(*zip(*sorted(points), strict=True), label=label, **style)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("M (tokens)")
        axis.set_ylabel("µs per call")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(_title(run), fontsize=10)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=DPI)
    except OSError as exc:
        raise GemmbenchError(f"cannot write {path}: {exc.strerror}", "choose another path") from exc
    finally:
        plt.close(figure)
    return path


# A panel: its title and its lines, each (label, [(M, µs)], matplotlib style).
Panel = tuple[str, list[tuple[str, list[tuple[int, float]], dict]]]
_POINTS = {"marker": "o", "markersize": 3}
_FLOOR = {"color": "black", "linestyle": "--", "linewidth": 1}


def _record_panels(run: Run) -> list[Panel]:
    """One panel per GEMM shape and view (alone, or per layer after a producer): a line per backend, and
    the floor (alone)."""
    panels = []
    for (model, gemm, n, k, context), records in by_shape(
        r for r in run.records if r.status == OK and r.best_time_us
    ).items():
        series = [
            (backend, [(r.m, r.best_time_us) for r in records if r.label == backend], _POINTS)
            for backend in dict.fromkeys(r.label for r in records)
        ]
        floor = sorted({(r.m, r.floor_us) for r in records if r.floor_us is not None})
        if floor:
            series.append(("floor", floor, _FLOOR))
        layer = f"\nper layer, after {context}" if context else ""
        panels.append((f"{model} {gemm}\nN={n}, K={k}{layer}", series))
    return panels


def _group_panels(run: Run) -> list[Panel]:
    """One panel per group: parallel and serial device time against M, per light backend."""
    timed = [r for r in run.groups if r.status == OK and median_of(r.parallel_device) and median_of(r.serial_device)]
    panels = []
    for (model, name), records in grouped(timed, lambda r: (r.model, r.group)).items():
        series = []
        for backend in dict.fromkeys(r.backend for r in records):
            mine = [r for r in records if r.backend == backend]
            series.append((f"parallel ({backend})", [(r.m, median_of(r.parallel_device)) for r in mine], _POINTS))
            serial_style = {**_POINTS, "linestyle": ":"}
            series.append((f"serial ({backend})", [(r.m, median_of(r.serial_device)) for r in mine], serial_style))
        panels.append((f"{model} {name}\nparallel on streams vs serial", series))
    return panels


def _title(run: Run) -> str:
    device = run.provenance.device_name or "unknown device"
    modes = sorted({r.l2_mode for r in run.records if r.l2_mode})
    timers = sorted({summary.timer for r in run.records if r.status == OK and (summary := r.device or r.latency)})
    timer = {GRAPH_TIMER: "CUDA-graph replay (device time)", HOST_TIMER: "host clock"}.get(
        timers[0] if len(timers) == 1 else "", ", ".join(timers)
    )
    first = [device, f"L2 {'/'.join(modes)}" if modes else ""]
    second = [timer, run.provenance.started or ""]
    return "\n".join(" · ".join(p for p in line if p) for line in (first, second))
