"""The record of one (group, M, backend) point of `gemmbench group`: the group's GEMMs run serially on one
stream and in parallel on their streams, the light members computed by `backend`. Its timers and clocks
are the same summaries a sweep's Record carries."""

from __future__ import annotations

from dataclasses import dataclass

from gemmbench.records.record import ClockSummary, after_context, inline, prefixed
from gemmbench.records.timers import TimerSummary, median_of
from gemmbench.spec.cases import GroupSpec


@dataclass(frozen=True)
class MemberTime:
    """One member of a group, timed alone (CUDA-graph device time)."""

    gemm: str
    stream: str
    device_us: float | None = None


@dataclass(frozen=True)
class GroupRecord:
    """One (group, M, backend) point. Skips and errors are records too, with the reason."""

    model: str
    group: str
    m: int
    k: int
    backend: str  # computes the group's light (bf16 -> fp32) members
    status: str
    reason: str = ""
    rel_err: float | None = None  # the largest relative error of the light members, against float64
    serial_device: TimerSummary | None = prefixed("serial_device")  # CUDA-graph device time, one stream
    serial_latency: TimerSummary | None = prefixed("serial_latency")  # eager, CUDA events
    parallel_device: TimerSummary | None = prefixed("parallel_device")  # forked onto the streams, joined
    parallel_latency: TimerSummary | None = prefixed("parallel_latency")
    speedup: float | None = None  # serial over parallel device time
    overlap_efficiency: float | None = None  # the members' times alone, summed, over the parallel time
    critical_path: str | None = None  # the stream whose members take longest alone
    members: tuple[MemberTime, ...] | None = None
    l2_mode: str | None = None
    l2_copies: int | None = None
    placements: int | None = None  # sets of input buffers allocated apart that the timers sampled
    streams_with_kernels: int | None = None  # kernel pass: streams that ran kernels in one parallel call
    overlap_us: float | None = None  # kernel pass: time during which two or more kernels ran, in a graph replay
    # The producer that wrote the group's x right before each call, in a layer (`group --context`): then the
    # serial and parallel times are per layer, producer included (measure/layers.py); None: the group alone.
    context: str | None = None
    noisy: bool | None = None
    clocks: ClockSummary | None = inline()

    @classmethod
    def for_point(cls, group: GroupSpec, m: int, backend: str, status: str, reason: str = "", **results) -> GroupRecord:
        return cls(group.model, group.name, m, group.k, backend, status, reason, **results)

    @property
    def in_layer(self) -> bool:
        """Timed in its layer, after a producer: its times are per layer, producer included."""
        return self.context is not None

    @property
    def label(self) -> str:
        return self.backend

    @property
    def best_time_us(self) -> float | None:
        """The figure a group row is compared by: its parallel device time."""
        return median_of(self.parallel_device)

    @property
    def row_name(self) -> str:
        """One row named whole in a sentence: `DeepSeek-V4-Pro attention M=8 mm_out_dtype after norm`."""
        return f"{self.model} {self.group} M={self.m} {self.backend}{after_context(self.context)}"

    @property
    def throttled(self) -> bool:
        return bool(self.clocks and self.clocks.throttled)
