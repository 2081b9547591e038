"""GPU clocks, temperature, power and throttle reasons through NVML (the nvidia-ml-py package), and
the device warm-up that lets the clocks settle before a sweep.

Read before and after each point, so a row whose SM clock sagged or that saw a thermal or power
slowdown is flagged `throttled` instead of passing as a slow backend (docs/design.md, what was measured:
sums of kernel times read 219 us under sustained load where ncu read 155 us).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

from gemmbench.records import ClockSummary
from gemmbench.records.flags import THROTTLE_CLOCK_FRACTION
from gemmbench.timing import timers

# Once per sweep on a GPU, run matmuls until the SM clock is stable: readings this far apart...
DEVICE_WARMUP_STEP_S = 0.1
# ...agreeing within this fraction over this many consecutive readings...
DEVICE_WARMUP_CLOCK_TOLERANCE = 0.01
DEVICE_WARMUP_STABLE_READINGS = 3
# ...after at least the minimum and at most the maximum time. Without NVML: the minimum, doubled.
DEVICE_WARMUP_MIN_S = 0.5
DEVICE_WARMUP_MAX_S = 5.0
# Side of the square bf16 matmul the warm-up runs: ~0.1 ms on an H100, enough to keep the GPU busy.
DEVICE_WARMUP_SIZE = 4096
# After a point's eager windows (host-bound launches: the GPU mostly idle) and before its first device
# timer, the same matmuls for this long, so that every point is sampled from one loaded state. Without
# it, one default DeepSeek-V3 sweep on an H200 whose timers sampled 10 ms each read the first device time
# after the eager windows 11-13% high at 4 of 15 points (mm_out_dtype 7.2 against 6.4 us); and when a
# point's own graphs were replayed for 30 ms in its place (H100, three default sweeps), whole points
# landed at random in one of two states about 10% apart (mm_out_dtype at M = 1..16 read 6.4-6.7 or
# 7.3-7.5 us), so that compare called 24-53 of 254 rows faster or slower in each pair of those sweeps;
# after this reload no pair called more than one (docs/measurement.md). NVML's clocks and reasons show
# neither state. The reload costs about 1 s a default sweep.
DEVICE_RESETTLE_S = 0.03
# NVML clocks-event (throttle) reason bits that mean heat or power slowed the GPU (nvml.h), all recorded.
# The others (idle, application clocks, sync boost, display) are not slowdowns.
SLOWDOWN_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}
# The reasons that flag a row whatever its clock read: the hardware slowed itself, or heat did. The power
# cap alone flags a row only through the clock it lowered (THROTTLE_CLOCK_FRACTION).
FLAGGING_REASONS = {"hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake"}


@dataclass(frozen=True)
class ClockReading:
    sm_mhz: int
    mem_mhz: int
    temp_c: int
    power_w: float
    reasons: int  # NVML clocks-event reason bit mask


def slowdown_names(mask: int) -> list[str]:
    return [name for bit, name in SLOWDOWN_REASONS.items() if mask & bit]


def assess(readings: list[ClockReading], max_sm_mhz: int) -> ClockSummary:
    """What a record keeps of the readings that bound its timers: the lowest clocks, the highest
    temperature and power, every slowdown reason seen, and whether they could have moved its times."""
    mask = 0
    for reading in readings:
        mask |= reading.reasons
    reasons = slowdown_names(mask)
    sm = min(r.sm_mhz for r in readings)
    return ClockSummary(
        sm_clock_mhz=sm,
        mem_clock_mhz=min(r.mem_mhz for r in readings),
        temp_c=max(r.temp_c for r in readings),
        power_w=max(r.power_w for r in readings),
        throttle_reasons=",".join(reasons) or None,
        throttled=bool(FLAGGING_REASONS.intersection(reasons)) or sm < THROTTLE_CLOCK_FRACTION * max_sm_mhz,
    )


class ClockWatch:
    """NVML for one CUDA device; `unavailable` says why not where NVML cannot be used."""

    def __init__(self, device: torch.device) -> None:
        self.unavailable: str | None = None
        self.max_sm_mhz = 0
        self._nvml = self._handle = None
        if device.type != "cuda":
            self.unavailable = "not a CUDA device"
            return
        try:
            import pynvml
        except ImportError:
            self.unavailable = "the nvidia-ml-py package is not installed"
            return
        try:
            pynvml.nvmlInit()
            self._handle = _handle_for(pynvml, device)
            self.max_sm_mhz = pynvml.nvmlDeviceGetMaxClockInfo(self._handle, pynvml.NVML_CLOCK_SM)
            self._nvml = pynvml
        except pynvml.NVMLError as exc:
            self.unavailable = f"NVML failed: {exc}"

    def read(self) -> ClockReading | None:
        if self._nvml is None:
            return None
        nvml, handle = self._nvml, self._handle
        try:
            reasons_of = (
                getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
            )
            return ClockReading(
                sm_mhz=nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
                mem_mhz=nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM),
                temp_c=nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
                power_w=nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                reasons=reasons_of(handle),
            )
        except nvml.NVMLError:
            return None

    def provenance(self) -> dict:
        """Clocks at the start of a run and the settings that bound them, by their fields of Provenance
        (records/provenance.py)."""
        if self._nvml is None:
            return {"nvml": self.unavailable}
        nvml, handle = self._nvml, self._handle
        facts: dict = {}
        queries = {
            "sm_clock_mhz_start": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
            "mem_clock_mhz_start": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM),
            "sm_clock_mhz_max": lambda: self.max_sm_mhz,
            "mem_clock_mhz_max": lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM),
            "power_limit_w": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
            "ecc": lambda: bool(nvml.nvmlDeviceGetEccMode(handle)[0]),
            "persistence_mode": lambda: bool(nvml.nvmlDeviceGetPersistenceMode(handle)),
        }
        for key, query in queries.items():
            try:
                facts[key] = query()
            except nvml.NVMLError:  # some queries are not supported on every GPU or VM
                facts[key] = None
        return facts


def _handle_for(nvml, device: torch.device):
    """The NVML handle of a torch device, matched by PCI bus id (indices differ under CUDA_VISIBLE_DEVICES)."""
    props = torch.cuda.get_device_properties(device)
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        bus_id = f"{getattr(props, 'pci_domain_id', 0):08x}:{bus:02x}:{getattr(props, 'pci_device_id', 0):02x}.0"
        try:
            return nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        except nvml.NVMLError:
            pass
    return nvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def resettle_device(device: torch.device) -> None:
    """Load the GPU for DEVICE_RESETTLE_S after a stretch of light load (eager windows), so that the device
    timers of every point start from the same loaded state."""
    a = _warmup_operand(device)
    timers.warm_up(lambda: torch.mm(a, a), DEVICE_RESETTLE_S, lambda: torch.cuda.synchronize(device))


@functools.cache
def _warmup_operand(device: torch.device) -> torch.Tensor:
    return torch.randn(DEVICE_WARMUP_SIZE, DEVICE_WARMUP_SIZE, device=device, dtype=torch.bfloat16)


def warm_device(device: torch.device, clocks: ClockWatch) -> None:
    """Run bf16 matmuls until the SM clock has settled (docs/design.md, measurement rules: clocks ramp
    from idle)."""
    a = _warmup_operand(device)
    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    start = time.perf_counter()
    readings: list[int] = []
    while time.perf_counter() - start < DEVICE_WARMUP_MAX_S:
        timers.warm_up(lambda: torch.mm(a, a), DEVICE_WARMUP_STEP_S, sync)
        reading = clocks.read()
        if reading is None:
            if time.perf_counter() - start >= 2 * DEVICE_WARMUP_MIN_S:
                return
            continue
        readings.append(reading.sm_mhz)
        recent = readings[-DEVICE_WARMUP_STABLE_READINGS:]
        settled = len(recent) == DEVICE_WARMUP_STABLE_READINGS and (
            max(recent) - min(recent) <= DEVICE_WARMUP_CLOCK_TOLERANCE * max(recent)
        )
        if settled and time.perf_counter() - start >= DEVICE_WARMUP_MIN_S:
            return
