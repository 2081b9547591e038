"""A fleet check per device (`gemmbench fleet`): rich table and Markdown."""

from __future__ import annotations

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from gemmbench.analysis.fleet import OUTLIER, DeviceSummary, FleetReport
from gemmbench.analysis.policy import (
    OUTLIER_MIN_POINTS,
    SAME_TOLERANCE,
)
from gemmbench.output.format import MAX_LISTED_UNMATCHED, WideOrNarrow, markdown_table
from gemmbench.records import after_context

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
        shown = ", ".join(
            f"{p.model} {p.gemm} M={p.m} {p.backend}{after_context(p.context)} {p.ratio:.2f}x"
            for p in slow[:MAX_LISTED_UNMATCHED]
        )
        lines.append(f"{device.device_id} slower at: {shown}{' …' if len(slow) > MAX_LISTED_UNMATCHED else ''}")
    return lines


def fleet_table(report: FleetReport) -> WideOrNarrow:
    """The devices, then the outliers' slowest points and the legend: one table of a column per figure (the
    wide layout) where it fits the console's width, else a block of three lines per device (the narrow
    layout), which keep every name and value whole in an 80-column terminal."""
    table = Table(pad_edge=False)
    for column in FLEET_COLUMNS:
        justify = "right" if column in ("rank", "points", "median ratio", "worst") else "left"
        table.add_column(column, justify=justify, overflow="fold")
    verdict = FLEET_COLUMNS.index("verdict")
    for cells, device in zip(_fleet_rows(report), report.devices, strict=True):
        cells[verdict] = Text(cells[verdict], style=_verdict_style(device))
        table.add_row(*cells)
    after = [*(Text(line) for line in _slowest_points(report)), Text(fleet_legend(), style="dim")]
    blocks = [_device_block(device) for device in report.devices]
    return WideOrNarrow([table], wide=Group(table, *after), narrow=Group(*blocks, *after))


def _verdict_style(device: DeviceSummary) -> str:
    return "red" if device.verdict == OUTLIER else "green"


# The narrow layout's figures of a device sit this many columns right of its name, to read as its own.
BLOCK_INDENT = 2


def _device_block(device: DeviceSummary) -> Group:
    """A device in the narrow layout: who it is and its verdict, then its ratios, then its clocks, power and
    slowdowns, each line wrapping between words."""
    rank = "–" if device.rank is None else str(device.rank)
    title = Text(f"{device.device_id} · rank {rank} · {device.gpu}: ", style="bold")
    title.append(device.verdict, style=_verdict_style(device))
    ratios = (
        f"median ratio {device.median_ratio:.3f}x, worst {device.max_ratio:.3f}x, "
        f"slower at {device.slower_points} of {device.points} points"
    )
    clock = "–" if device.min_sm_clock_mhz is None else f"{device.min_sm_clock_mhz} MHz"
    power = "–" if device.max_power_w is None else f"{device.max_power_w:.0f} W"
    slowdowns = ", ".join(device.throttle_reasons) or "none"
    clocks = f"min SM clock {clock}, max power {power}, slowdowns: {slowdowns}"
    return Group(title, *(Padding(Text(line), (0, 0, 0, BLOCK_INDENT), expand=False) for line in (ratios, clocks)))


def fleet_markdown(report: FleetReport) -> str:
    lines = _slowest_points(report)
    extra = "\n" + "".join(f"- {line}\n" for line in lines) if lines else ""
    return markdown_table(FLEET_COLUMNS, _fleet_rows(report)) + extra + "\n" + fleet_legend() + "\n"
