"""What every answer's output shares: units scaled and numbers rounded for people (files keep full
precision), the run header, titles, Markdown tables, the list of skip and error reasons, and the choice of a
wide or a narrow layout by the width of the console that prints it."""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.text import Text

from gemmbench.records import ERROR, SKIPPED, Provenance, Record
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER, HOST_TIMER
from gemmbench.spec.cases import Case

# A duration is written in the largest of these units (name, µs in one) that it fills at least once.
DURATION_UNITS = (("s", 1_000_000.0), ("ms", 1000.0), ("µs", 1.0))
# Significant figures of a duration for people: device time repeats from run to run within 0.33% (median)
# to 2.7% (95th percentile) on an H200 (docs/design.md, what was measured), so a fourth figure (0.1%) would
# be noise; files keep full precision.
DURATION_FIGURES = 3


def format_us(value: float | None, unit: str | None = None) -> str:
    """A duration given in µs, for people: three significant figures in µs, ms or s, never an exponent; in
    `unit` where given (one unit down a column), else in the largest unit it fills.

    The unit is chosen after rounding, so 999.7 µs reads 1 ms (not 1e+03 µs) and 1.2e6 µs reads 1.2 s.
    """
    if value is None:
        return "–"
    if unit is None:
        rounded = float(f"{value:.{DURATION_FIGURES}g}")
        unit = next((name for name, size in DURATION_UNITS if abs(rounded) >= size), DURATION_UNITS[-1][0])
    return f"{_positional(value / dict(DURATION_UNITS)[unit], DURATION_FIGURES)} {unit}"


def _positional(value: float, figures: int) -> str:
    """value to `figures` significant figures written out in full, trailing zeros dropped as `g` drops them:
    4.5, 1230, 0.00004, never 1.23e+03."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    rounded = float(f"{value:.{figures}g}")
    decimals = max(0, figures - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals else text


def format_err(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}"


L2_LABELS = {
    "cold": "L2 cold (input copies rotated past 2x L2)",
    "hot": "L2 hot (one set of buffers)",
}


def shape_title(case: Case, l2_mode: str | None = None) -> str:
    title = f"{case.model} {case.gemm}: x[M, {case.k}] @ w[{case.n}, {case.k}]ᵀ, {case.in_dtype} → {case.out_dtype}"
    return f"{title} · {L2_LABELS.get(l2_mode, l2_mode)}" if l2_mode else title


def header(provenance: Provenance) -> Text:
    """One line naming the device and the software that produced the numbers."""
    if provenance.device_type == "cuda":
        device = f"{provenance.device_name} ({provenance.arch}, driver {provenance.driver or '?'})"
    else:
        threads = "?" if provenance.cpu_threads is None else provenance.cpu_threads
        device = f"CPU {provenance.device_name or ''} ({threads} threads)"
    parts = [f"gemmbench {provenance.gemmbench or '?'}", device, f"torch {provenance.torch or '?'}"]
    if provenance.cuda:
        parts.append(f"CUDA {provenance.cuda}")
    if provenance.cublas:
        parts.append(f"cuBLAS {provenance.cublas}")
    if provenance.started:
        parts.append(provenance.started)
    return Text(" · ".join(parts), style="bold")


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table of any cell values (as str() writes them); short rows are padded, pipes escaped."""

    def line(cells: list) -> str:
        cells = [str(c).replace("|", "\\|") for c in cells] + [""] * (len(header) - len(cells))
        return "| " + " | ".join(cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


TIMER_LABELS = {
    GRAPH_TIMER: "CUDA-graph replay, per call (device time)",
    EVENTS_TIMER: "CUDA events around eager calls, back to back (what an eager caller pays)",
    HOST_TIMER: "host clock around synchronous CPU calls",
}

# compare's summary lists at most this many rows found in only one of the runs.
MAX_LISTED_UNMATCHED = 10


def skip_and_error_reasons(records: list) -> dict[tuple[str, str], dict[str, int]]:
    """Each distinct (status, reason) of the skipped and error rows, with the backends it covers and how many
    rows of each: one line per reason, however many backends share it (a CPU run skips most for one)."""
    seen: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in records:
        if record.status in (SKIPPED, ERROR):
            seen[(record.status, record.reason)][record.label] += 1
    return seen


def reason_lines(records: list) -> list[tuple[str, str]]:
    """(status, line) per distinct skip or error reason: `status (N rows) — reason: backends`."""
    lines = []
    for (status, reason), backends in skip_and_error_reasons(records).items():
        rows = sum(backends.values())
        lines.append((status, f"{status} ({rows} row{'s' if rows > 1 else ''}) — {reason}: {', '.join(backends)}"))
    return lines


def reasons_text(records: list[Record]) -> Text | None:
    """Each distinct skip or error reason once, with the backends and the number of rows it covers."""
    lines = reason_lines(records)
    if not lines:
        return None
    text = Text()
    for status, line in lines:
        text.append(f"{line}\n", style="yellow" if status == SKIPPED else "red")
    return text


def flags(record) -> list[str]:
    """The flags a row (a Record or a GroupRecord) carries, as the tables mark them."""
    return [flag for flag, on in (("noisy", record.noisy), ("throttled", record.throttled)) if on]


# Where a renderable is measured for its natural width: no width limit, so rich shrinks none of its columns.
UNLIMITED_WIDTH = sys.maxsize


def fits(renderable: RenderableType, console: Console, options: ConsoleOptions) -> bool:
    """Whether the renderable fits the width at its natural width, where no header is cut and no cell wraps."""
    natural = Measurement.get(console, options.update_width(UNLIMITED_WIDTH), renderable)
    return natural.maximum <= options.max_width


@dataclass
class WideOrNarrow:
    """An answer laid out for the console that prints it, chosen at print time: `wide` where every one of
    `measured` (its tables, or stand-ins for them) fits the console's width, else `narrow`, whose layout keeps
    every name and value whole in an 80-column terminal."""

    measured: list[RenderableType]
    wide: RenderableType
    narrow: RenderableType

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.wide if all(fits(table, console, options) for table in self.measured) else self.narrow
