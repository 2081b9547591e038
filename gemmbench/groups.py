"""Groups of GEMMs on CUDA streams: what running them in parallel is worth (`gemmbench group`).

A group (a preset's [[group]]) is run two ways, as vLLM's attn_gemm_parallel_execute does: serially on
one stream, and in parallel: an event recorded on the default stream, each auxiliary stream waiting on
it and running its members, the default stream running its own, then waiting on each auxiliary stream's
event. The light (bf16 -> fp32) members are computed by the backend under test, the others by torch.mm
in their own dtypes. Each way is timed as CUDA-graph device time and as eager latency (windows
interleaved between the two, as in a sweep), each member alone as device time, cold L2 by rotating
copies of every member's inputs. The kernel pass, after all timing, profiles one parallel call and says
how many streams ran kernels and for how long kernels of two or more streams overlapped.

On the CPU there are no streams: rows are skipped with the reason, except for the fake backend, whose
simulated times make the records, tables and comparisons testable anywhere.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from gemmbench import timing
from gemmbench.backends import Backend, GemmInputs
from gemmbench.backends.base import TORCH_DTYPES
from gemmbench.inputs import (
    COLD,
    COLD_L2_FACTOR,
    COLD_MEMORY_FRACTION,
    MIN_COLD_COPIES,
    l2_mode,
    reference,
    relative_error,
)
from gemmbench.measure import SweepOptions, announce_tuning, error_reason, is_allocation_failure, load_backends
from gemmbench.records import ERROR, OK, SKIPPED, WRONG_RESULT_REL_ERR, GroupRecord, MemberTime
from gemmbench.shapes import DEFAULT_STREAM, GroupMember, GroupSpec
from gemmbench.summary import EVENTS_TIMER
from gemmbench.timing import Samples

# Input sets rotated for cold L2 are capped lower than a sweep's: a group holds several weights already.
MAX_GROUP_COPIES = 64
# An upper bound of one member's time alone, to start sizing its CUDA graph (fit_graph_unroll refines it).
MEMBER_UPPER_BOUND_US = 1000.0


def measure_groups(
    groups: list[GroupSpec],
    m_values: tuple[int, ...],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions,
    note: Callable[[str], None] = lambda message: None,
) -> Iterator[GroupRecord]:
    """One record per (group, M, backend), in that order; then run `profile_groups` on them."""
    load_backends(backends, device, note)
    for group in groups:
        for m in m_values:
            for backend in backends:
                yield _measure(group, m, backend, device, options, note)
                if device.type == "cuda":
                    torch.cuda.empty_cache()


def _unavailable(group: GroupSpec, m: int, backend: Backend, device: torch.device) -> str | None:
    for member in group.members:
        if member.light:
            reason = backend.unavailable_reason(member.gemm.case(m), device)
            if reason:
                return reason
    return None


def _measure(
    group: GroupSpec, m: int, backend: Backend, device: torch.device, options: SweepOptions, note: Callable[[str], None]
) -> GroupRecord:
    reason = _unavailable(group, m, backend, device)
    if reason:
        return GroupRecord.for_point(group, m, backend.name, SKIPPED, reason)
    if backend.simulated_times_us(group.members[0].gemm.case(m)) is not None:
        return _simulated(group, m, backend)
    if device.type != "cuda":
        return GroupRecord.for_point(group, m, backend.name, SKIPPED, "CUDA streams need a CUDA device")
    announce_tuning([backend], [member.gemm.case(m) for member in group.members if member.light], device, note)
    try:
        calls = GroupCalls.build(group, m, backend, device, options)
        rel_err, wrong = calls.check()
        if wrong:
            return GroupRecord.for_point(group, m, backend.name, ERROR, wrong, rel_err=rel_err)
        return replace(calls.time(options), rel_err=rel_err)
    except Exception as exc:  # noqa: BLE001 - any failure is a row, never a traceback
        if device.type == "cuda":
            torch.cuda.empty_cache()
        reason = "out of memory" if is_allocation_failure(exc) else error_reason(exc)
        return GroupRecord.for_point(group, m, backend.name, ERROR, reason)


def _simulated(group: GroupSpec, m: int, backend: Backend) -> GroupRecord:
    """The fake backend's group: every member takes its simulated time; streams overlap perfectly, and
    every launch costs the fake's launch time on the host."""
    times = [backend.simulated_times_us(member.gemm.case(m)) for member in group.members]
    members = [
        MemberTime(member.gemm.name, member.stream, device_us)
        for member, (_, device_us) in zip(group.members, times, strict=True)
    ]
    launches_us = sum(latency_us - device_us for latency_us, device_us in times)
    serial = sum(device_us for _, device_us in times)
    parallel = max(_per_stream(members).values())
    return _record(
        group, m, backend.name, serial, parallel, serial + launches_us, parallel + launches_us, members, None
    )


def _per_stream(members: list[MemberTime]) -> dict[str, float]:
    """Each stream's members' times alone, summed: what a stream takes at best."""
    per_stream: dict[str, float] = {}
    for member in members:
        per_stream[member.stream] = per_stream.get(member.stream, 0.0) + (member.device_us or 0.0)
    return per_stream


def _record(group, m, backend, serial_us, parallel_us, serial_latency_us, parallel_latency_us, members, l2, **values):
    """A timed group record, with the figures derived from its times."""
    per_stream = _per_stream(members)
    critical = max(per_stream, key=per_stream.get)
    names = ", ".join(member.gemm for member in members if member.stream == critical)
    return GroupRecord.for_point(
        group,
        m,
        backend,
        OK,
        serial_device_us=serial_us,
        serial_latency_us=serial_latency_us,
        parallel_device_us=parallel_us,
        parallel_latency_us=parallel_latency_us,
        speedup=serial_us / parallel_us,
        overlap_efficiency=sum(member.device_us or 0.0 for member in members) / parallel_us,
        critical_path=f"{critical}: {names}",
        members=tuple(members),
        l2_mode=l2,
        **values,
    )


@dataclass
class GroupCalls:
    """The calls of one group at one M with one backend, over rotated copies of all its inputs."""

    group: GroupSpec
    m: int
    backend: Backend
    device: torch.device
    inputs: list[list[GemmInputs]]  # copy -> member -> inputs (x shared by a copy's members)
    member_calls: list[list[Callable[[], object]]]  # copy -> member -> call
    streams: dict[str, torch.cuda.Stream]
    l2: str | None
    fork: torch.cuda.Event  # made once, as vLLM does: recording an event is all a call then costs
    joins: dict[str, torch.cuda.Event]

    @classmethod
    def build(
        cls, group: GroupSpec, m: int, backend: Backend, device: torch.device, options: SweepOptions
    ) -> GroupCalls:
        copies = _copies(group, m, device, options)
        generator = torch.Generator(device=device).manual_seed(options.seed)
        inputs, member_calls = [], []
        for _ in range(copies):
            x = torch.randn(m, group.k, device=device, dtype=torch.bfloat16, generator=generator)  # one hidden state
            copy_inputs, copy_calls = [], []
            for member in group.members:
                spec = member.gemm
                w = torch.randn(spec.n, spec.k, device=device, dtype=TORCH_DTYPES[spec.in_dtype], generator=generator)
                out = torch.empty(m, spec.n, device=device, dtype=TORCH_DTYPES[spec.out_dtype])
                member_inputs = GemmInputs(x.to(TORCH_DTYPES[spec.in_dtype]), w, out)
                copy_inputs.append(member_inputs)
                copy_calls.append(_member_call(member, m, backend, member_inputs))
            inputs.append(copy_inputs)
            member_calls.append(copy_calls)
        aux = sorted({member.stream for member in group.members if member.stream != DEFAULT_STREAM})
        streams = {name: torch.cuda.Stream(device) for name in aux}
        joins = {name: torch.cuda.Event() for name in aux}
        return cls(
            group,
            m,
            backend,
            device,
            inputs,
            member_calls,
            streams,
            l2_mode(device, options.l2),
            torch.cuda.Event(),
            joins,
        )

    def check(self) -> tuple[float, str]:
        """The largest relative error of the light members (against float64), and why one is wrong, or ''."""
        worst = 0.0
        for member, member_inputs, call in zip(self.group.members, self.inputs[0], self.member_calls[0], strict=True):
            if not member.light:
                continue
            member_inputs.out.fill_(math.nan)
            call()
            torch.cuda.synchronize(self.device)
            rel_err = relative_error(member_inputs.out, reference(member_inputs))
            if not rel_err <= WRONG_RESULT_REL_ERR:
                return rel_err, f"wrong result of {member.gemm.name}: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}"
            worst = max(worst, rel_err)
        return worst, ""

    def serial(self, copy: int) -> None:
        for call in self.member_calls[copy]:
            call()

    def parallel(self, copy: int) -> None:
        """Fork onto the auxiliary streams and join back with events, as vLLM does."""
        main = torch.cuda.current_stream(self.device)
        self.fork.record(main)
        for name, stream in self.streams.items():
            stream.wait_event(self.fork)
            with torch.cuda.stream(stream):
                for member, call in zip(self.group.members, self.member_calls[copy], strict=True):
                    if member.stream == name:
                        call()
                self.joins[name].record(stream)
        for member, call in zip(self.group.members, self.member_calls[copy], strict=True):
            if member.stream == DEFAULT_STREAM:
                call()
        for join in self.joins.values():
            main.wait_event(join)

    def rotating(self, way: Callable[[int], None]) -> Callable[[], None]:
        state = {"next": 0}

        def call() -> None:
            way(state["next"])
            state["next"] = (state["next"] + 1) % len(self.inputs)

        return call

    def time(self, options: SweepOptions) -> GroupRecord:
        sync = lambda: torch.cuda.synchronize(self.device)  # noqa: E731
        ways = {"serial": self.rotating(self.serial), "parallel": self.rotating(self.parallel)}
        for call in ways.values():
            timing.warm_up(call, options.warmup_s, sync)
        windows: dict[str, list[list[float]]] = {name: [] for name in ways}
        for _ in range(options.eager_windows):
            for name, call in ways.items():
                windows[name].append(timing.sample_window(call, EVENTS_TIMER, options.eager_window_s))
        latency = {name: Samples.from_windows(EVENTS_TIMER, w) for name, w in windows.items()}
        device_time = {
            name: _graph_time(call, latency[name].min_us, len(self.inputs), options) for name, call in ways.items()
        }
        members = []
        for index, member in enumerate(self.group.members):
            call = self.rotating(lambda copy, index=index: self.member_calls[copy][index]())
            alone_us = _graph_time(call, MEMBER_UPPER_BOUND_US, len(self.inputs), options).median_us
            members.append(MemberTime(member.gemm.name, member.stream, alone_us))
        serial, parallel = device_time["serial"], device_time["parallel"]
        record = _record(
            self.group,
            self.m,
            self.backend.name,
            serial.median_us,
            parallel.median_us,
            latency["serial"].median_us,
            latency["parallel"].median_us,
            members,
            self.l2,
            noisy=any(s.noisy for s in (*latency.values(), serial, parallel)),
        )
        (serial_low, serial_high), (parallel_low, parallel_high) = serial.ci_us, parallel.ci_us
        return replace(
            record,
            serial_device_ci_low_us=serial_low,
            serial_device_ci_high_us=serial_high,
            parallel_device_ci_low_us=parallel_low,
            parallel_device_ci_high_us=parallel_high,
        )


def _member_call(member: GroupMember, m: int, backend: Backend, inputs: GemmInputs) -> Callable[[], object]:
    if member.light:
        return backend.prepare(member.gemm.case(m), inputs)
    x, w, out = inputs.x, inputs.w, inputs.out
    return lambda: torch.mm(x, w.t(), out=out)  # the heavy projection: F.linear in its own dtype


def _graph_time(call: Callable[[], object], upper_bound_us: float, copies: int, options: SweepOptions) -> Samples:
    call()
    unroll = timing.fit_graph_unroll(call, upper_bound_us, multiple_of=copies)
    return timing.time_graph(call, options.target, unroll)


def _copies(group: GroupSpec, m: int, device: torch.device, options: SweepOptions) -> int:
    """Copies of all the group's inputs to rotate so that none is in L2 when used again (cold), or one."""
    if options.l2 != COLD:
        return 1
    group_bytes = sum(member.gemm.case(m).bytes_moved for member in group.members)
    wanted = max(
        MIN_COLD_COPIES,
        math.ceil(COLD_L2_FACTOR * torch.cuda.get_device_properties(device).L2_cache_size / group_bytes),
    )
    fitting = max(1, int(COLD_MEMORY_FRACTION * torch.cuda.mem_get_info(device)[0] // group_bytes))
    return min(wanted, fitting, MAX_GROUP_COPIES)


def profile_groups(
    records: list[GroupRecord],
    groups: list[GroupSpec],
    backends: list[Backend],
    device: torch.device,
    options: SweepOptions,
) -> list[GroupRecord]:
    """The kernel pass, after all timing: for each timed record, the parallel group under torch.profiler.

    Which streams ran kernels comes from one eager call, whose kernels carry the streams they were launched
    on. How long kernels ran at once comes from one replay of the parallel group captured in a CUDA graph:
    eagerly under the profiler, each small kernel ends before the host has launched the next (on the H200,
    0 us of overlap at every M <= 2048 of DeepSeek-V4-Pro's group). Even in the replay, the profiler sees
    less overlap at small M than the graph timing implies (docs/groups.md), so it is a lower bound. A
    record that cannot be profiled keeps its timings."""
    if device.type != "cuda":
        return records
    by_name = {(g.model, g.name): g for g in groups}
    by_backend = {b.name: b for b in backends}
    profiled = []
    for record in records:
        group = by_name.get((record.model, record.group))
        if record.status != OK or group is None or record.backend not in by_backend:
            profiled.append(record)
            continue
        try:
            calls = GroupCalls.build(group, record.m, by_backend[record.backend], device, replace(options, l2="hot"))
            parallel = functools.partial(calls.parallel, 0)
            parallel()
            eager = _kernel_intervals(parallel, device)
            graph = timing.capture_graph(parallel, 1)
            replayed = _kernel_intervals(graph.replay, device)
        except Exception:  # noqa: BLE001 - a profiler problem never costs a record its timings
            profiled.append(record)
            continue
        # In the replay, every kernel counts as its own lane: what overlaps is kernels, whichever stream
        # the profiler files a graph's kernels under (so two kernels of one stream that overlap, as with
        # programmatic dependent launch, count too).
        lanes = [(i, start, end) for i, (_, start, end) in enumerate(replayed)]
        profiled.append(
            replace(
                record,
                streams_with_kernels=len({stream for stream, _, _ in eager}),
                overlap_us=overlap_us(lanes) if lanes else None,
            )
        )
    return profiled


def _kernel_intervals(call: Callable[[], object], device: torch.device) -> list[tuple[int, float, float]]:
    """(stream, start µs, end µs) of each kernel that one `call` ran, under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize(device)
    return [
        (e.device_resource_id(), e.start_ns() / 1e3, e.end_ns() / 1e3)
        for e in prof.profiler.kineto_results.events()
        if e.device_type() == torch.autograd.DeviceType.CUDA
    ]


def overlap_us(kernels: list[tuple[int, float, float]]) -> float:
    """Time during which kernels of two or more streams ran at once, from (stream, start, end) in µs."""
    edges = sorted((t, kind, stream) for stream, start, end in kernels for t, kind in ((start, 1), (end, -1)))
    running: dict[int, int] = {}
    total, last = 0.0, None
    for t, kind, stream in edges:
        if last is not None and sum(1 for count in running.values() if count > 0) >= 2:
            total += t - last
        running[stream] = running.get(stream, 0) + kind
        last = t
    return total
