"""The record model: one frozen row per (case, backend), skips and errors included, with the reason.

Units are fixed: microseconds (`*_us`), TFLOP/s, GB/s; the unit is in the field name. The layout is
flat, as in the run file and the CSV export; `latency` and `device` read the two timers back as
`TimerSummary` values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gemmbench.shapes import Case, GemmSpec
from gemmbench.summary import TimerSummary

OK = "ok"
SKIPPED = "skipped"
ERROR = "error"
STATUSES = (OK, SKIPPED, ERROR)

# fp32 accumulation over K = 7168 lands near 1e-6, bf16 rounding of the output near 1.5e-3: a relative
# error under 1e-4 means the backend delivers fp32-output semantics, with wide margins on both sides.
FP32_ACCURATE_REL_ERR = 1e-4
# A relative error above this is not rounding (bf16 rounding of the output gives ~1.5e-3): the output
# was not written, or is wrong. Such a row is an error and is not timed.
WRONG_RESULT_REL_ERR = 1e-2


@dataclass(frozen=True)
class KernelRun:
    """One device kernel of one call, as torch.profiler saw it."""

    name: str
    duration_us: float | None = None


@dataclass(frozen=True)
class Record:
    """One (case, backend) point. Skips and errors are records too, with the reason."""

    model: str
    gemm: str
    role: str
    m: int
    n: int
    k: int
    in_dtype: str
    out_dtype: str
    backend: str
    status: str
    reason: str = ""
    rel_err: float | None = None
    top_k: int | None = None
    topk_mismatch: float | None = None  # share of tokens whose top-k expert set differs from float64's
    latency_timer: str | None = None
    latency_median_us: float | None = None
    latency_iqr_us: float | None = None
    latency_min_us: float | None = None
    latency_ci_low_us: float | None = None  # 95% confidence interval of the median
    latency_ci_high_us: float | None = None
    latency_samples: int | None = None
    device_timer: str | None = None
    device_median_us: float | None = None
    device_iqr_us: float | None = None
    device_min_us: float | None = None
    device_ci_low_us: float | None = None
    device_ci_high_us: float | None = None
    device_samples: int | None = None
    noisy: bool | None = None  # a timer ran out of budget before its CI reached the target
    l2_mode: str | None = None  # "cold" (inputs rotated past the L2), "hot", or None on the CPU
    l2_copies: int | None = None
    tflops: float | None = None
    gbps: float | None = None
    floor_us: float | None = None  # max(bytes / measured bandwidth, FLOPs / measured bf16 throughput)
    pct_of_floor: float | None = None  # floor_us over the measured time, in percent
    sm_clock_mhz: int | None = None  # lowest SM clock read before and after the timers
    mem_clock_mhz: int | None = None
    temp_c: int | None = None  # highest
    power_w: float | None = None  # highest
    throttle_reasons: str | None = None  # NVML slowdown reasons seen, comma-separated
    throttled: bool | None = None
    kernels: tuple[KernelRun, ...] | None = None  # one call's kernels in launch order; None: not profiled
    kernel_count: int | None = None
    kernel_sum_us: float | None = None
    rank: int | None = None  # fleet runs (torchrun): the rank that measured the row...
    device_id: str | None = None  # ...and its device, "host:cuda:N"
    backend_config: str | None = None  # the configuration a tuned backend ran (router_small_m's block sizes)

    @property
    def case(self) -> Case:
        return Case(self.model, self.gemm, self.role, self.m, self.n, self.k, self.in_dtype, self.out_dtype, self.top_k)

    @property
    def latency(self) -> TimerSummary | None:
        """The eager latency (CUDA events, or the host clock on the CPU); None where not timed."""
        if self.latency_timer is None or self.latency_median_us is None:
            return None
        return TimerSummary(
            self.latency_timer,
            self.latency_median_us,
            self.latency_iqr_us,
            self.latency_min_us,
            self.latency_ci_low_us,
            self.latency_ci_high_us,
            self.latency_samples,
        )

    @property
    def device(self) -> TimerSummary | None:
        """The CUDA-graph device time; None where not timed (the CPU, a call that cannot be captured)."""
        if self.device_timer is None or self.device_median_us is None:
            return None
        return TimerSummary(
            self.device_timer,
            self.device_median_us,
            self.device_iqr_us,
            self.device_min_us,
            self.device_ci_low_us,
            self.device_ci_high_us,
            self.device_samples,
        )

    @property
    def best_time_us(self) -> float | None:
        """Device time where measured (it excludes launch gaps), else the latency."""
        return self.device_median_us if self.device_median_us is not None else self.latency_median_us

    def accurate(self, tolerance: float = FP32_ACCURATE_REL_ERR) -> bool:
        """A timed-and-checked row whose relative error is within `tolerance` (default: fp32 output)."""
        return self.status == OK and self.rel_err is not None and self.rel_err <= tolerance

    @classmethod
    def for_case(
        cls,
        case: Case,
        backend: str,
        status: str,
        reason: str = "",
        latency: TimerSummary | None = None,
        device: TimerSummary | None = None,
        **values,
    ) -> Record:
        """A record of `case`; the timer summaries are spread into their flat fields."""
        if latency is not None:
            values.update(
                latency_timer=latency.timer,
                latency_median_us=latency.median_us,
                latency_iqr_us=latency.iqr_us,
                latency_min_us=latency.min_us,
                latency_ci_low_us=latency.ci_low_us,
                latency_ci_high_us=latency.ci_high_us,
                latency_samples=latency.samples,
            )
        if device is not None:
            values.update(
                device_timer=device.timer,
                device_median_us=device.median_us,
                device_iqr_us=device.iqr_us,
                device_min_us=device.min_us,
                device_ci_low_us=device.ci_low_us,
                device_ci_high_us=device.ci_high_us,
                device_samples=device.samples,
            )
        return cls(
            case.model,
            case.gemm,
            case.role,
            case.m,
            case.n,
            case.k,
            case.in_dtype,
            case.out_dtype,
            backend,
            status,
            reason,
            top_k=case.top_k,
            **values,
        )


def select_records(
    records: Iterable[Record],
    backends: Iterable[str] = (),
    m_values: Iterable[int] = (),
    gemms: Iterable[GemmSpec] = (),
    roles: Iterable[str] = (),
    shapes: Iterable[Case | GemmSpec] = (),
) -> list[Record]:
    """The records that every given filter admits (an empty filter admits all): a backend named, an M
    listed, a GEMM of the given presets (or a role of them), a shape given (MxNxK matches M too)."""
    backends, m_values, roles = set(backends), set(m_values), set(roles)
    wanted_gemms = {(g.model, g.name, g.n, g.k) for g in gemms}
    wanted_shapes = [(s.n, s.k, s.m if isinstance(s, Case) else None) for s in shapes]

    def admitted(record: Record) -> bool:
        shape_ok = any(n == record.n and k == record.k and m in (None, record.m) for n, k, m in wanted_shapes)
        gemm_ok = record.case.shape_key in wanted_gemms
        return (
            (not backends or record.backend in backends)
            and (not m_values or record.m in m_values)
            and (not roles or record.role in roles)
            and (not (wanted_gemms or wanted_shapes) or gemm_ok or shape_ok)
        )

    return [record for record in records if admitted(record)]


def grouped(records: Iterable, key) -> dict:
    """Records grouped by `key(record)`, groups and records in first-seen order."""
    groups: dict = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


def by_shape(records: Iterable[Record]) -> dict[tuple, list[Record]]:
    """Records grouped by GEMM shape (model, gemm, N, K), in first-seen order: one table or panel each."""
    return grouped(records, lambda record: record.case.shape_key)


def by_case(records: Iterable[Record]) -> dict[Case, list[Record]]:
    """Records grouped by case (shape and M), in first-seen order: one kernel table each."""
    return grouped(records, lambda record: record.case)


@dataclass(frozen=True)
class MemberTime:
    """One member of a group, timed alone (CUDA-graph device time)."""

    gemm: str
    stream: str
    device_us: float | None = None


@dataclass(frozen=True)
class GroupRecord:
    """One (group, M, backend) point of `gemmbench group`: the group's GEMMs run serially on one stream and
    in parallel on their streams, the light members computed by `backend`. Skips and errors are records too."""

    model: str
    group: str
    m: int
    k: int
    backend: str  # computes the group's light (bf16 -> fp32) members
    status: str
    reason: str = ""
    rel_err: float | None = None  # the largest relative error of the light members, against float64
    serial_device_us: float | None = None  # CUDA-graph device time, one stream
    serial_device_ci_low_us: float | None = None
    serial_device_ci_high_us: float | None = None
    serial_latency_us: float | None = None  # eager, CUDA events
    parallel_device_us: float | None = None  # forked onto the members' streams and joined with events
    parallel_device_ci_low_us: float | None = None
    parallel_device_ci_high_us: float | None = None
    parallel_latency_us: float | None = None
    speedup: float | None = None  # serial over parallel device time
    overlap_efficiency: float | None = None  # the members' times alone, summed, over the parallel time
    critical_path: str | None = None  # the stream whose members take longest alone
    members: tuple[MemberTime, ...] | None = None
    l2_mode: str | None = None
    streams_with_kernels: int | None = None  # kernel pass: streams that ran kernels in one parallel call
    overlap_us: float | None = None  # kernel pass: time during which two or more kernels ran, in a graph replay
    noisy: bool | None = None
    throttled: bool | None = None

    @classmethod
    def for_point(cls, group, m: int, backend: str, status: str, reason: str = "", **values) -> GroupRecord:
        return cls(group.model, group.name, m, group.k, backend, status, reason, **values)
