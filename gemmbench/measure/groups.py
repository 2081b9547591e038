"""Groups of GEMMs on CUDA streams: what running them in parallel is worth (`gemmbench group`).

A group (a preset's [[group]]) is run two ways, as vLLM's attn_gemm_parallel_execute does: serially on
one stream, and in parallel: an event recorded on the default stream, each auxiliary stream waiting on
it and running its members, the default stream running its own, then waiting on each auxiliary stream's
event. The light (bf16 -> fp32) members are computed by the backend under test, the others by torch.mm
in their own dtypes. Both ways, alone and in the layer after each producer (`--context`), are timed in
the same rounds as a sweep's point is (measure/layers.py): CUDA-graph device time and eager latency;
each member alone as device time; cold L2 by rotating copies of every member's inputs. The kernel pass,
after all timing, profiles one parallel call and says how many streams ran kernels and for how long
kernels of two or more streams overlapped.

On the CPU there are no streams: rows are skipped with the reason (Bench.streams_unavailable).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import replace

import torch

from gemmbench.backends import Backend
from gemmbench.backends.producers import Producer
from gemmbench.backends.registry import ask_unavailable
from gemmbench.errors import BACKEND_FAILURES
from gemmbench.measure.bench import Bench, error_reason, ignore, load_backends, unrun_status
from gemmbench.measure.group_calls import PARALLEL, SERIAL, GroupCalls, input_case
from gemmbench.measure.layers import LayerWork, Unit, producer_problem
from gemmbench.measure.tuning import tune_for_case
from gemmbench.records import (
    ERROR,
    OK,
    SKIPPED,
    ClockSummary,
    GroupRecord,
    MemberTime,
    TimerSummary,
)
from gemmbench.spec.cases import GroupSpec
from gemmbench.timing import profile, timers
from gemmbench.timing.inputs import Placements, make_inputs, placed

# An upper bound of one member's time alone, to start sizing its CUDA graph (fit_graph_unroll refines it).
MEMBER_UPPER_BOUND_US = 1000.0


def measure_groups(
    groups: list[GroupSpec],
    m_values: tuple[int, ...],
    backends: list[Backend],
    bench: Bench,
    note: Callable[[str], None] = ignore,
    producers: tuple[Producer, ...] = (),
) -> Iterator[GroupRecord]:
    """One record per (group, M, context, backend), in that order: the group alone, then in its layer after
    each of `producers` (measure/layers.py); then run `profile_groups` on them."""
    load_backends([*backends, *producers], bench.device, note)
    for group in groups:
        for m in m_values:
            measured = {backend: _measure(group, m, backend, bench, note, producers) for backend in backends}
            for producer in (None, *producers):
                for backend in backends:
                    yield measured[backend][producer]
            bench.release()


def _unavailable(group: GroupSpec, m: int, backend: Backend, device: torch.device) -> str | None:
    for member in group.members:
        if member.light:
            reason = ask_unavailable(backend.unavailable_reason, member.gemm.case(m), device)
            if reason:
                return reason
    return None


def _measure(
    group: GroupSpec,
    m: int,
    backend: Backend,
    bench: Bench,
    note: Callable[[str], None],
    producers: tuple[Producer, ...],
) -> dict[Producer | None, GroupRecord]:
    """The group with `backend`, alone and after each producer, timed in the same rounds: a record each."""
    device = bench.device
    contexts: tuple[Producer | None, ...] = (None, *producers)

    def every(status: str, reason: str, **results) -> dict[Producer | None, GroupRecord]:
        return {p: _row(group, m, backend, p, status, reason, **results) for p in contexts}

    reason = _unavailable(group, m, backend, device)
    context_reasons = {
        p: producer_problem(p, input_case(group, m), device) or _unfed_members(group, p) for p in producers
    }
    if reason:
        return every(unrun_status(reason), reason)
    runnable = tuple(p for p in producers if not context_reasons[p])
    skipped = {
        p: _row(group, m, backend, p, unrun_status(context_reasons[p]), context_reasons[p])
        for p in producers
        if p not in runnable
    }
    if bench.streams_unavailable:
        return every(SKIPPED, bench.streams_unavailable)
    try:
        bench.warm_device()
        for case in [member.gemm.case(m) for member in group.members if member.light]:  # tuned before any check
            inputs = make_inputs(case, device, bench.options.seed)
            if tuning_failed := tune_for_case([backend], case, inputs, bench, note):
                return {**every(ERROR, tuning_failed[backend]), **skipped}
        placements = placed(
            lambda: _built(GroupCalls.build(group, m, backend, bench, cold=bench.cold, producers=runnable)),
            device,
            bench.options.placements,
            bench.options.seed,
        )
        checked = {p: placements.first.check(p) for p in (None, *runnable)}
        if checked[None][1]:  # wrong alone: wrong in every layer too
            return {**every(ERROR, checked[None][1], rel_err=checked[None][0]), **skipped}
        wrong = {p: _row(group, m, backend, p, ERROR, why, rel_err=err) for p, (err, why) in checked.items() if why}
        timed, failed = time_placements(placements, bench, tuple(p for p in runnable if p not in wrong))
    except BACKEND_FAILURES as exc:  # any failure is a row, never a traceback
        bench.release()
        return {**every(ERROR, error_reason(exc)), **skipped}
    rows = {p: replace(record, rel_err=checked[p][0]) for p, record in timed.items()}
    errors = {p: _row(group, m, backend, p, ERROR, error_reason(exc)) for p, exc in failed.items()}
    return {**rows, **errors, **wrong, **skipped}


def _row(
    group: GroupSpec, m: int, backend: Backend, producer: Producer | None, status: str, reason: str = "", **results
) -> GroupRecord:
    context = producer.name if producer else None
    return GroupRecord.for_point(group, m, backend.name, status, reason, context=context, **results)


def _unfed_members(group: GroupSpec, producer: Producer | None) -> str | None:
    """In a context, why the producer's x cannot feed every member: a member of another input dtype reads
    a copy of x converted once, which the producer never writes."""
    dtypes = {member.gemm.in_dtype for member in group.members}
    if producer is None or len(dtypes) == 1:
        return None
    return f"context {producer.name}: the members read x in {'/'.join(sorted(dtypes))}; one producer writes one"


def _per_stream(members: list[MemberTime]) -> dict[str, float]:
    """Each stream's members' times alone, summed: what a stream takes at best."""
    per_stream: dict[str, float] = {}
    for member in members:
        per_stream[member.stream] = per_stream.get(member.stream, 0.0) + (member.device_us or 0.0)
    return per_stream


def _record(
    group: GroupSpec,
    m: int,
    backend: str,
    timed: dict[str, tuple[TimerSummary, TimerSummary]],
    members: list[MemberTime] = (),
    **values,
) -> GroupRecord:
    """A timed group record from each way's (device time, eager latency), with the figures they give; the
    members' times alone (the group alone) give its overlap and critical path."""
    (serial, serial_latency), (parallel, parallel_latency) = timed[SERIAL], timed[PARALLEL]
    if members:
        per_stream = _per_stream(members)
        critical = max(per_stream, key=per_stream.get)
        names = ", ".join(member.gemm for member in members if member.stream == critical)
        values.update(
            overlap_efficiency=sum(member.device_us or 0.0 for member in members) / parallel.median_us,
            critical_path=f"{critical}: {names}",
            members=tuple(members),
        )
    return GroupRecord.for_point(
        group,
        m,
        backend,
        OK,
        serial_device=serial,
        serial_latency=serial_latency,
        parallel_device=parallel,
        parallel_latency=parallel_latency,
        speedup=serial.median_us / parallel.median_us,
        **values,
    )


def _built(calls: GroupCalls) -> tuple[GroupCalls, str]:
    return calls, calls.l2_note


def time_placements(
    placements: Placements[GroupCalls], bench: Bench, producers: tuple[Producer, ...] = ()
) -> tuple[dict[Producer | None, GroupRecord], dict[Producer | None, BaseException]]:
    """Both ways, alone and after each producer, in every placement, timed in the same rounds
    (Bench.time_units), the clock watch around them; then each member alone as device time (first
    placement). A record per context (None: alone), and the failure of each context where a way failed
    or could not be captured (that context's row only)."""
    first = placements.first
    copies = len(first.inputs)
    units = {
        (name, producer): [
            Unit(calls.rotating(calls.way(name, producer)), copies, first.work(name, producer))
            for calls in placements.sets
        ]
        for producer in (None, *producers)
        for name in (SERIAL, PARALLEL)
    }
    start = bench.read_clocks()
    timed, failures = bench.time_units(units)
    failed: dict[Producer | None, BaseException] = {producer: exc for (_, producer), exc in failures.items()}
    for (_, producer), result in timed.items():
        if result.device is None and producer not in failed:  # a group row is its graph's device time
            failed[producer] = RuntimeError(result.note)
    members, members_note = _members_alone(first, bench)
    clocks: ClockSummary | None = bench.clock_summary(start, bench.read_clocks())  # the whole point
    common = {
        "reason": "; ".join(note for note in (placements.note, members_note) if note),
        "l2_mode": bench.l2_mode,
        "l2_copies": copies,
        "placements": len(placements.sets),
        "clocks": clocks,
    }
    records = {}
    for producer in (p for p in (None, *producers) if p not in failed):
        ways = {name: timed[name, producer] for name in (SERIAL, PARALLEL)}
        summaries = {name: (t.device.summary(), t.latency.summary()) for name, t in ways.items()}
        context = {"context": producer.name} if producer else {}
        noisy = any(t.noisy for t in ways.values())
        records[producer] = _record(
            first.group,
            first.m,
            first.backend.name,
            summaries,
            [] if producer else members,
            noisy=noisy,
            **context,
            **common,
        )
    return records, failed


def _members_alone(calls: GroupCalls, bench: Bench) -> tuple[list[MemberTime], str]:
    """Each member's device time alone (for the overlap and the critical path), and a note where they could
    not be timed: the group's rows keep the times of both ways all the same."""
    members = []
    try:
        for index, member in enumerate(calls.group.members):
            call = calls.rotating(lambda copy, index=index: calls.member_calls[copy][index]())
            call()
            alone = Unit(call, len(calls.inputs), LayerWork(((member.gemm.case(calls.m),),)))
            alone_us = bench.device_time(alone, MEMBER_UPPER_BOUND_US).median_us
            members.append(MemberTime(member.gemm.name, member.stream, alone_us))
    except BACKEND_FAILURES as exc:
        bench.release()
        return [], f"members alone not timed: {error_reason(exc)}"
    return members, ""


def profile_groups(
    records: list[GroupRecord], groups: list[GroupSpec], backends: list[Backend], bench: Bench
) -> list[GroupRecord]:
    """The kernel pass, after all timing: for each timed record, the parallel group under torch.profiler.

    Which streams ran kernels comes from one eager call, whose kernels carry the streams they were launched
    on. How long kernels ran at once comes from one replay of the parallel group captured in a CUDA graph:
    eagerly under the profiler, each small kernel ends before the host has launched the next (on the H200,
    0 us of overlap at every M <= 2048 of DeepSeek-V4-Pro's group). Even in the replay, the profiler sees
    less overlap at small M than the graph timing implies (docs/groups.md), so it is a lower bound. A
    record that cannot be profiled keeps its timings."""
    if bench.device.type != "cuda":
        return records
    by_name = {(g.model, g.name): g for g in groups}
    by_backend = {b.name: b for b in backends}
    profiled = []
    for record in records:
        group = by_name.get((record.model, record.group))
        if record.status != OK or group is None or record.backend not in by_backend or record.in_layer:
            profiled.append(record)
            continue
        try:
            calls = GroupCalls.build(group, record.m, by_backend[record.backend], bench, cold=False)
            parallel = functools.partial(calls.way(PARALLEL), 0)
            parallel()
            eager = profile.kernel_intervals(parallel, bench.device)
            graph = timers.capture_graph(parallel, 1)
            replayed = profile.kernel_intervals(graph.replay, bench.device)
        except BACKEND_FAILURES:  # a profiler problem never costs a record its timings
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
                overlap_us=profile.overlap_us(lanes) if lanes else None,
            )
        )
    return profiled
