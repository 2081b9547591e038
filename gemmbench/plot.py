"""Time against M on log-log axes, one panel per GEMM shape, one line per backend, and the floor."""

from __future__ import annotations

import math
from pathlib import Path

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.records import OK, by_shape
from gemmbench.runfile import Run
from gemmbench.summary import GRAPH_TIMER, HOST_TIMER

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
    groups = by_shape(r for r in run.records if r.status == OK and r.best_time_us is not None)
    if not groups:
        raise GemmbenchError("the run has no timed rows to plot", "plot a run with at least one ok row")
    columns = min(MAX_COLUMNS, len(groups))
    rows = math.ceil(len(groups) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), squeeze=False
    )
    for axis, ((model, gemm, n, k), records) in zip(
        axes.flat, groups.items(), strict=False
    ):  # spare axes are hidden below
        backends = dict.fromkeys(r.backend for r in records)
        for backend in backends:
            points = sorted((r.m, r.best_time_us) for r in records if r.backend == backend)
            axis.plot(*zip(*points, strict=True), marker="o", markersize=3, label=backend)
        floor = sorted({(r.m, r.floor_us) for r in records if r.floor_us is not None})
        if floor:
            axis.plot(*zip(*floor, strict=True), color="black", linestyle="--", linewidth=1, label="floor")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title(f"{model} {gemm}\nN={n}, K={k}", fontsize=9)
        axis.set_xlabel("M (tokens)")
        axis.set_ylabel("µs per call")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(groups) :]:
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


def _title(run: Run) -> str:
    provenance = run.provenance
    device = provenance.get("device_name", "unknown device")
    modes = sorted({r.l2_mode for r in run.records if r.l2_mode})
    timers = sorted({r.device_timer or r.latency_timer for r in run.records if r.status == OK})
    timer = {GRAPH_TIMER: "CUDA-graph replay (device time)", HOST_TIMER: "host clock"}.get(
        timers[0] if len(timers) == 1 else "", ", ".join(timers)
    )
    first = [device, f"L2 {'/'.join(modes)}" if modes else ""]
    second = [timer, provenance.get("started", "")]
    return "\n".join(" · ".join(p for p in line if p) for line in (first, second))
