"""The one measurement engine: timed units, each the calls of one layer over rotating layers.

A unit is what one row times: the GEMM alone (a layer is one of the rotating cold-L2 input copies), the
GEMM after the producer that writes its input (`--context`: a layer is the producer writing that copy's
x from the copy's own hidden state, then the GEMM on what it wrote), or a V4 group, serial or parallel,
alone or after its producer. Every unit of a point (all its backends, alone and in each context) is
timed in the same rounds by `Bench.time_units`: warm-up, eager windows in turn, CUDA graphs of whole
rotations of their layers sampled in turn. So a layer is timed as one unit, per layer: nothing is
subtracted, no figure can be negative, and two backends' layer times were taken under the same states
of the host and the device, so their difference (analysis/recommend.py) is the advantage one has over
the other in the layer.

Why no "GEMM's share" (the layer minus the producer alone): the producer does not cost inside the layer
what it costs alone. On an H100, torch's norm then `router_small_m_ext` took 10.3 us per layer, less than
the norm alone over as many cold layers (13.0 us), so that subtraction read -2.6 us (docs/context.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gemmbench.backends.producers import Producer
from gemmbench.backends.registry import ask_unavailable, is_query_failure
from gemmbench.errors import BACKEND_FAILURES, described
from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import TORCH_DTYPES
from gemmbench.timing.timers import Samples

# The producer's weight: around 1, as a trained RMSNorm's gain, never exactly 1 (a multiply by 1 is an
# identity a kernel could skip).
WEIGHT_SPREAD = 0.1


@dataclass(frozen=True)
class LayerWork:
    """What one layer of a unit computes: its GEMMs, by the stream each runs on (in turn on one stream),
    after the producer that writes their x (None: the GEMMs alone). The timers time the call and never
    read it; it is there for a bench that answers from the work instead (the tests' made-up device)."""

    streams: tuple[tuple[Case, ...], ...]
    producer: Producer | None = None


@dataclass(frozen=True)
class Unit:
    """What one row times: `call` runs the next of `layers` rotating layers (each replay of a graph runs
    every layer equally often), each of which computes `work`."""

    call: Callable[[], object]
    layers: int
    work: LayerWork


@dataclass(frozen=True)
class Timed:
    """A unit's timers: eager latency, CUDA-graph device time (None off a GPU, or with `note` saying why
    the unit could not be captured)."""

    latency: Samples
    device: Samples | None
    note: str = ""

    @property
    def noisy(self) -> bool:
        return any(s.noisy for s in (self.latency, self.device) if s is not None)


def producer_problem(producer: Producer | None, case: Case, device: torch.device) -> str | None:
    """Why `producer` cannot write the input of `case` here, as a row's reason; None if it can (or no context).
    A query that fails (registry.ask_unavailable) keeps its reason's start, which makes the row an error row."""
    reason = ask_unavailable(producer.unavailable_reason, case, device) if producer else None
    if not reason:
        return None
    return f"{reason} (context {producer.name})" if is_query_failure(reason) else f"context {producer.name}: {reason}"


class ProducerFailed(Exception):
    """A producer raised, or gave its layer something else than its x: the row's reason names the producer
    (the row's context), not the backend after it, which never ran on what it should read."""

    @classmethod
    def of(cls, producer: Producer, what: str) -> ProducerFailed:
        return cls(f"context {producer.name}: {what}")


def producer_calls(
    case: Case, producer: Producer, xs: list[torch.Tensor], seed: int
) -> list[Callable[[], torch.Tensor]]:
    """The producer's call of each layer, writing that layer's `x` (one of `xs`) from a hidden state and a
    norm weight of the layer's own (random, never zeros)."""
    generator = torch.Generator(device=xs[0].device).manual_seed(seed + 1)
    dtype = TORCH_DTYPES[case.in_dtype]
    calls = []
    for x in xs:
        hidden = torch.randn(case.m, case.k, device=x.device, dtype=dtype, generator=generator)
        weight = 1 + WEIGHT_SPREAD * torch.randn(case.k, device=x.device, dtype=torch.float32, generator=generator)
        try:
            calls.append(producer.prepare(case, hidden, weight.to(dtype), x))
        except BACKEND_FAILURES as exc:
            raise ProducerFailed.of(producer, f"prepare raised {described(exc)}") from exc
    return calls


def produced(producer: Producer, call: Callable[[], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """What the producer's `call` gives the GEMM of the layer whose input buffer is `x`: `x` itself or a new
    tensor of its shape, dtype and device; else ProducerFailed. The check of each row's first layer: the
    timed layers run the same call."""
    try:
        written = call()
    except BACKEND_FAILURES as exc:
        raise ProducerFailed.of(producer, f"its call raised {described(exc)}") from exc
    if not isinstance(written, torch.Tensor):
        raise ProducerFailed.of(producer, f"its call returned {type(written).__name__}, not the x it wrote")
    if (written.shape, written.dtype, written.device) != (x.shape, x.dtype, x.device):
        got = f"{tuple(written.shape)} {written.dtype} on {written.device}"
        raise ProducerFailed.of(producer, f"its call returned {got}, not an x of {tuple(x.shape)} {x.dtype}")
    return written


def after_producer(
    produce: Callable[[], torch.Tensor], x: torch.Tensor, body: Callable[[], object], body_on: Callable
) -> Callable[[], object]:
    """One layer: the producer, then `body` (prepared on the layer's buffer `x`) where the producer wrote
    into it, else `body_on(tensor)`, prepared on the tensor it returned (torch's F.rms_norm has no out=
    form; in a CUDA graph capture that tensor is the graph's own, the same every replay)."""

    def layer() -> object:
        written = produce()
        return body() if written is x else body_on(written)()

    return layer
