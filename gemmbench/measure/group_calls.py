"""The calls of one group at one M with one backend (`GroupCalls`): rotated copies of every member's
inputs (the layers), the group run serially on one stream or forked onto its auxiliary streams and joined
back with events as vLLM's attn_gemm_parallel_execute does, alone or after a producer; and the check of
its light members against float64."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gemmbench.backends import Backend, GemmInputs
from gemmbench.backends.producers import Producer
from gemmbench.measure.bench import Bench
from gemmbench.measure.layers import LayerWork, produced, producer_calls
from gemmbench.records import after_context
from gemmbench.records.flags import WRONG_RESULT_REL_ERR
from gemmbench.spec.cases import DEFAULT_STREAM, Case, GroupMember, GroupSpec
from gemmbench.timing.inputs import (
    INPUTS_CONTRACT,
    OUT_CONTRACT,
    TORCH_DTYPES,
    cold_note,
    device_cold_copies,
    reference,
    relative_error,
    unwritten,
    written_into,
)

SERIAL, PARALLEL = "serial", "parallel"


def input_case(group: GroupSpec, m: int) -> Case:
    """The case of the group's shared input x [M, K], as a producer writes it (the first member's)."""
    return group.members[0].gemm.case(m)


@dataclass(frozen=True)
class ForkJoin:
    """A group's auxiliary streams, and the events that fork onto them from the default stream and join
    back: made once per set of calls, as vLLM does, so that recording an event is all a call then costs."""

    streams: dict[str, torch.cuda.Stream]
    fork: torch.cuda.Event
    joins: dict[str, torch.cuda.Event]

    @classmethod
    def for_group(cls, group: GroupSpec, device: torch.device) -> ForkJoin:
        aux = sorted({member.stream for member in group.members if member.stream != DEFAULT_STREAM})
        return cls(
            {name: torch.cuda.Stream(device) for name in aux},
            torch.cuda.Event(),
            {name: torch.cuda.Event() for name in aux},
        )


@dataclass
class GroupCalls:
    """The calls of one group at one M with one backend, over rotated copies of all its inputs (the layers)."""

    group: GroupSpec
    m: int
    backend: Backend
    device: torch.device
    sync: Callable[[], None]  # waits for the device (Bench.sync)
    inputs: list[list[GemmInputs]]  # copy -> member -> inputs (x shared by a copy's members)
    member_calls: list[list[Callable[[], object]]]  # copy -> member -> call
    l2_note: str = ""  # where fewer copies than wanted fit
    # In a layer: each producer's call per copy, writing that copy's x.
    producer_calls: dict[Producer, list[Callable[[], torch.Tensor]]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, group: GroupSpec, m: int, backend: Backend, bench: Bench, cold: bool, producers: tuple[Producer, ...] = ()
    ) -> GroupCalls:
        """Copies of all the group's inputs, enough to keep the L2 cold (`cold`, as a sweep counts them for
        the bytes of one copy: every member's), or one set; and each producer's calls, one per copy."""
        device = bench.device
        group_bytes = sum(member.gemm.case(m).bytes_moved for member in group.members)
        copies, wanted = device_cold_copies(group_bytes, device) if cold else (1, 1)
        generator = torch.Generator(device=device).manual_seed(bench.options.seed)
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
                copy_calls.append(member_call(member, m, backend, member_inputs))
            inputs.append(copy_inputs)
            member_calls.append(copy_calls)
        xs = [copy_inputs[0].x for copy_inputs in inputs]
        case, seed = input_case(group, m), bench.options.seed
        made = {producer: producer_calls(case, producer, xs, seed) for producer in producers}
        return cls(group, m, backend, device, bench.sync, inputs, member_calls, cold_note(copies, wanted), made)

    @functools.cached_property
    def fork_join(self) -> ForkJoin:
        """The streams and events of the parallel way, made where it first runs (eagerly, before any capture):
        making and checking the calls needs none."""
        return ForkJoin.for_group(self.group, self.device)

    def check(self, producer: Producer | None = None) -> tuple[float, str]:
        """The largest relative error of the light members (against float64), and why one is wrong, or ''; in
        a layer, on what the producer wrote."""
        worst = 0.0
        inputs, calls = self.inputs[0], self.member_calls[0]
        if producer:
            inputs, calls = self._on(0, produced(producer, self.producer_calls[producer][0], self.inputs[0][0].x))
        for member, member_inputs, call in zip(self.group.members, inputs, calls, strict=True):
            if not member.light:
                continue
            pristine = GemmInputs(member_inputs.x.clone(), member_inputs.w.clone(), member_inputs.out)
            member_inputs.out.fill_(math.nan)
            call()
            self.sync()
            ref = reference(pristine)
            rel_err = relative_error(member_inputs.out, ref)
            after = after_context(producer.name if producer else None)
            call_of = f"the call of {member.gemm.name}{after}"
            if written := written_into(member_inputs, pristine):
                return rel_err, f"{call_of} wrote into its input {' and '.join(written)}: {INPUTS_CONTRACT}"
            if left := unwritten(member_inputs.out, ref):
                return rel_err, f"{call_of} {left}: {OUT_CONTRACT}"
            if not rel_err <= WRONG_RESULT_REL_ERR:
                why = f"wrong result of {member.gemm.name}{after}: rel_err {rel_err:.3g} > {WRONG_RESULT_REL_ERR:g}"
                return rel_err, why
            worst = max(worst, rel_err)
        return worst, ""

    def _on(self, copy: int, x: torch.Tensor) -> tuple[list[GemmInputs], list[Callable[[], object]]]:
        """A copy's member inputs and calls on `x`: the prepared ones where `x` is the copy's own buffer (an
        out-variant producer wrote it), else prepared now on the new tensor (torch's F.rms_norm; in a CUDA
        graph capture, a tensor of the graph's own, the same every replay)."""
        if x is self.inputs[copy][0].x:
            return self.inputs[copy], self.member_calls[copy]
        inputs = [
            GemmInputs(x.to(TORCH_DTYPES[member.gemm.in_dtype]), member_inputs.w, member_inputs.out)
            for member, member_inputs in zip(self.group.members, self.inputs[copy], strict=True)
        ]
        calls = [
            member_call(member, self.m, self.backend, i) for member, i in zip(self.group.members, inputs, strict=True)
        ]
        return inputs, calls

    def way(self, name: str, producer: Producer | None = None) -> Callable[[int], None]:
        """`name` (SERIAL or PARALLEL) on a copy's inputs; after `producer`, on what it wrote into them."""
        run = self._serial if name == SERIAL else self._parallel
        if producer is None:
            return lambda copy: run(self.member_calls[copy])
        produce = self.producer_calls[producer]
        return lambda copy: run(self._on(copy, produce[copy]())[1])

    def work(self, name: str, producer: Producer | None = None) -> LayerWork:
        """What one layer of `name` computes: every member on one stream (SERIAL), or each stream's members
        (PARALLEL); after `producer`, where there is one."""
        members = self.group.members
        if name == SERIAL:
            return LayerWork((tuple(member.gemm.case(self.m) for member in members),), producer)
        streams = dict.fromkeys(member.stream for member in members)
        on_each = (tuple(member.gemm.case(self.m) for member in members if member.stream == s) for s in streams)
        return LayerWork(tuple(on_each), producer)

    @staticmethod
    def _serial(calls: list[Callable[[], object]]) -> None:
        for call in calls:
            call()

    def _parallel(self, calls: list[Callable[[], object]]) -> None:
        """Fork onto the auxiliary streams and join back with events, as vLLM does."""
        main, fork_join = torch.cuda.current_stream(self.device), self.fork_join
        fork_join.fork.record(main)
        for name, stream in fork_join.streams.items():
            stream.wait_event(fork_join.fork)
            with torch.cuda.stream(stream):
                for member, call in zip(self.group.members, calls, strict=True):
                    if member.stream == name:
                        call()
                fork_join.joins[name].record(stream)
        for member, call in zip(self.group.members, calls, strict=True):
            if member.stream == DEFAULT_STREAM:
                call()
        for join in fork_join.joins.values():
            main.wait_event(join)

    def rotating(self, way: Callable[[int], None]) -> Callable[[], None]:
        state = {"next": 0}

        def call() -> None:
            way(state["next"])
            state["next"] = (state["next"] + 1) % len(self.inputs)

        return call


def member_call(member: GroupMember, m: int, backend: Backend, inputs: GemmInputs) -> Callable[[], object]:
    if member.light:
        return backend.prepare(member.gemm.case(m), inputs)
    x, w, out = inputs.x, inputs.w, inputs.out
    return lambda: torch.mm(x, w.t(), out=out)  # the heavy projection: F.linear in its own dtype
