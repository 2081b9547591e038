"""Is one GPU of a fleet slower than the others? Reads a fleet check (`torchrun ... sweep --split none`):
per device and point, the ratio of its median to the fleet's median, and a verdict per device.

A device is slower at a point when even the low end of its 95% interval lies above the fleet's median by
more than the run-to-run spread of one GPU (SAME_TOLERANCE): a difference the run's own noise does not
explain. One such point is chance; an outlier is slower at several.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from gemmbench.analysis.policy import OUTLIER_MIN_POINTS, SAME_TOLERANCE
from gemmbench.errors import GemmbenchError
from gemmbench.records import OK, Record, Run

OUTLIER, OK_VERDICT = "outlier", "ok"


@dataclass(frozen=True)
class DevicePoint:
    device_id: str
    backend: str
    model: str
    gemm: str
    m: int
    median_us: float
    fleet_median_us: float
    ratio: float  # this device's median over the fleet's
    slower: bool  # beyond the run's spread
    context: str | None = None  # the producer the GEMM ran after (its time is per layer); None: alone


@dataclass(frozen=True)
class DeviceSummary:
    device_id: str
    rank: int | None
    gpu: str
    points: int
    median_ratio: float
    max_ratio: float
    slower_points: int
    verdict: str
    min_sm_clock_mhz: int | None
    max_power_w: float | None
    throttle_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FleetReport:
    devices: list[DeviceSummary]
    points: list[DevicePoint]

    def failing(self, above_pct: float) -> list[DeviceSummary]:
        """Devices whose median ratio to the fleet is above 1 + above_pct/100."""
        return [d for d in self.devices if (d.median_ratio - 1) * 100 > above_pct]

    def to_dict(self) -> dict:
        return asdict(self)


def _time(record: Record) -> tuple[float, float] | None:
    """(median, low end of the 95% interval) of the device time, else of the latency."""
    summary = record.device or record.latency
    return (summary.median_us, summary.interval_us[0]) if summary else None


def fleet_report(run: Run, source: str = "the run") -> FleetReport:
    """Each device's points against the fleet's median at the same point, and a summary per device."""
    if run.groups and not run.records:
        raise GemmbenchError(
            f"{source} is a group run (gemmbench group): fleet reads sweep runs",
            "run the fleet check as a sweep: torchrun ... gemmbench -- sweep --split none",
        )
    timed = [r for r in run.records if r.status == OK and r.device_id and _time(r)]
    devices = list(dict.fromkeys(r.device_id for r in timed))
    if len(devices) < 2:
        # rows without a device id are a plain sweep's: one device
        count = len(devices) or int(any(r.status == OK and _time(r) for r in run.records))
        raise GemmbenchError(
            f"{source} holds timed rows of {count} device(s), not a fleet",
            "run the sweep under torchrun with --split none (docs/usage.md: fleets)",
        )
    points = _device_points(timed)
    if not points:
        raise GemmbenchError(
            f"{source} measured no point on more than one device (a --split points run)",
            "a fleet check runs every point on every device: torchrun ... gemmbench -- sweep --split none",
        )
    ranks = run.provenance.fleet.ranks if run.provenance.fleet else ()
    gpus = {p.device_id: p.device_name or "?" for p in ranks}
    summaries = [
        _device_summary(device, gpus.get(device, "?"), mine, [r for r in timed if r.device_id == device])
        for device in devices
        if (mine := [p for p in points if p.device_id == device])
    ]
    return FleetReport(summaries, points)


def _device_points(timed: list[Record]) -> list[DevicePoint]:
    """Every timed row of a point measured on two or more devices, against the median of that point."""
    by_point: dict[tuple, list[Record]] = {}
    for record in timed:
        by_point.setdefault((record.case, record.label, record.context), []).append(record)
    points = []
    for (case, backend, context), rows in by_point.items():
        if len(rows) < 2:
            continue
        fleet_us = statistics.median(_time(r)[0] for r in rows)
        for row in rows:
            median_us, low_us = _time(row)
            slower = low_us > fleet_us * (1 + SAME_TOLERANCE)
            ratio = median_us / fleet_us
            points.append(
                DevicePoint(
                    row.device_id, backend, case.model, case.gemm, case.m, median_us, fleet_us, ratio, slower, context
                )
            )
    return points


def _device_summary(device: str, gpu: str, mine: list[DevicePoint], rows: list[Record]) -> DeviceSummary:
    """One device's verdict from its points, with the lowest clock, highest power and slowdowns its rows saw."""
    slower = sum(p.slower for p in mine)
    seen = (r.clocks.throttle_reasons for r in rows if r.clocks and r.clocks.throttle_reasons)
    reasons = sorted({reason for listed in seen for reason in listed.split(",")})
    clocks = [r.clocks.sm_clock_mhz for r in rows if r.clocks and r.clocks.sm_clock_mhz is not None]
    power = [r.clocks.power_w for r in rows if r.clocks and r.clocks.power_w is not None]
    return DeviceSummary(
        device,
        rows[0].rank,
        gpu,
        len(mine),
        statistics.median(p.ratio for p in mine),
        max(p.ratio for p in mine),
        slower,
        OUTLIER if slower >= OUTLIER_MIN_POINTS else OK_VERDICT,
        min(clocks) if clocks else None,
        max(power) if power else None,
        reasons,
    )
