"""The GEMM in the layer: what a GEMM costs right after the producer that writes its input (`--context`).

Each layer has its own hidden state, producer weight, GEMM weight and output (the GEMM's rotating cold-L2
copies are the layers: as many as keep the L2 cold, or one set hot). A chain call runs one layer, the
producer then the GEMM on what it wrote. In the chain the GEMM weights evict the producer's inputs, so
the producer reads them from DRAM; the producer alone is timed the same way, cold: over the chain's
layers and, where its own bytes are too few to keep L2 cold over them, more layers of its own (on an
H200, F.rms_norm of DeepSeek-V3's hidden state at M = 1 took 6.4 us hot and 12.8 us cold, a difference
that would otherwise be counted as the GEMM's). Both are timed the way a point is (the same warm-up,
eager windows and CUDA-graph timer, graphs of whole rotations of their layers), in the same process,
one after the other; the producer alone once per case, with its first variant's chain (it does not
depend on the GEMM after it). The GEMM's in-context time is the difference per call: chain minus
producer alone.

The interval of a difference is formed from the two 95% intervals at their extremes: low = chain low -
producer high, high = chain high - producer low. It holds the difference whenever both intervals hold
their medians (probability >= 0.95^2 = 90% for independent timers), so it is wide, never narrow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gemmbench.backends import GemmInputs
from gemmbench.backends.producers import Producer
from gemmbench.records import TimerSummary
from gemmbench.spec.cases import Case
from gemmbench.timing.inputs import TORCH_DTYPES, device_cold_copies, reference, relative_error, rotating
from gemmbench.timing.timers import Samples

# The producer's weight: around 1, as a trained RMSNorm's gain, never exactly 1 (a multiply by 1 is an
# identity a kernel could skip).
WEIGHT_SPREAD = 0.1
# Layers of the producer alone at most: the smallest producer input of a shipped preset (M = 1, K = 4096:
# 24 KB with its weight and output) needs 5,120 to span twice an H200's 60 MiB L2.
MAX_PRODUCER_LAYERS = 8192
# The timer name of an in-context figure: a difference of two timers' medians, not a timer of its own.
DIFFERENCE_OF = "minus_producer"
CHAIN, PRODUCER = "chain", "producer"


@dataclass(frozen=True)
class InLayer:
    """Figures in context: the producer alone, and each chain's difference over it (`chains` by name)."""

    producer_device: TimerSummary | None
    producer_latency: TimerSummary
    device: dict[str, TimerSummary | None]
    latency: dict[str, TimerSummary]
    noisy: bool  # any timer missed its target


def producer_problem(producer: Producer | None, case: Case, device: torch.device) -> str | None:
    """Why `producer` cannot write the input of `case` here, as a row's reason; None if it can (or no context)."""
    reason = producer.unavailable_reason(case, device) if producer else None
    return f"context {producer.name}: {reason}" if reason else None


def producer_bytes(case: Case) -> int:
    """What a producer reads and writes per layer: the hidden state, its weight, and x."""
    element = TORCH_DTYPES[case.in_dtype].itemsize
    return (2 * case.m * case.k + case.k) * element


def producer_layers(case: Case, device: torch.device, cold: bool) -> int:
    """Layers the producer alone rotates through: enough to keep L2 cold over its own bytes (cold), else one."""
    if not cold or device.type != "cuda":
        return 1
    return device_cold_copies(producer_bytes(case), device, most=MAX_PRODUCER_LAYERS)[0]


class ProducerLayers:
    """A producer's calls, one per layer, each with its own hidden state and weight: first one writing each
    of `xs` (the chain's layers, `calls`), then layers of its own up to `layers` in all; `alone` runs the
    next of them all, round-robin. Shared by every chain of one case: the producer alone does not depend
    on the GEMM after it, so it is timed once, with the first chains, and `timed` keeps its samples."""

    def __init__(self, case: Case, producer: Producer, xs: list[torch.Tensor], layers: int, seed: int):
        self._generator = torch.Generator(device=xs[0].device).manual_seed(seed + 1)
        self._case, self._producer = case, producer
        self.name = producer.name
        self.calls = [self._prepare(x) for x in xs]
        own = [self._prepare(torch.empty_like(xs[0])) for _ in range(layers - len(xs))]
        self.layers = len(xs) + len(own)
        self.alone = rotating(self.calls + own)
        self.timed: tuple[Samples, Samples | None] | None = None  # (eager latency, device time) alone

    def _prepare(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        case, generator, device = self._case, self._generator, x.device
        dtype = TORCH_DTYPES[case.in_dtype]
        hidden = torch.randn(case.m, case.k, device=device, dtype=dtype, generator=generator)
        weight = 1 + WEIGHT_SPREAD * torch.randn(case.k, device=device, dtype=torch.float32, generator=generator)
        return self._producer.prepare(case, hidden, weight.to(dtype), x)


class Chain:
    """The layers of one case after its producer, for one backend variant: `step` runs the next layer
    (producer then GEMM) over `copies`, whose x `producers` write."""

    def __init__(self, producers: ProducerLayers, copies: list[GemmInputs], gemm_for: Callable):
        self.copies = copies
        self.gemm_for = gemm_for  # GemmInputs -> the variant's prepared call
        self.producers = producers
        self.gemms = [gemm_for(inputs) for inputs in copies]
        self.step = rotating([self._layer(i) for i in range(len(copies))])

    def _layer(self, index: int) -> Callable[[], object]:
        produce, gemm, inputs = self.producers.calls[index], self.gemms[index], self.copies[index]

        def layer() -> object:
            x = produce()
            if x is inputs.x:  # an out-variant producer wrote the buffer the GEMM was prepared on
                return gemm()
            # A producer that returns a new tensor (torch's F.rms_norm): the GEMM is prepared on it, in the
            # capture too, where the tensor is the graph's own and the same every replay.
            return self.gemm_for(GemmInputs(x, inputs.w, inputs.out))()

        return layer

    def checked(self) -> float:
        """The relative error of the GEMM's output on what the first layer's producer wrote."""
        inputs = self.copies[0]
        inputs.out.fill_(float("nan"))
        x = self.producers.calls[0]()
        self.gemm_for(GemmInputs(x, inputs.w, inputs.out))()
        return relative_error(inputs.out, reference(GemmInputs(x, inputs.w, inputs.out)))

    def time(self, bench) -> InLayer:
        return time_in_layer(bench, self.producers, {CHAIN: (self.step, len(self.copies))})


def difference(chain: Samples, producer: Samples, timer: str) -> TimerSummary:
    """chain - producer, per call, with the interval formed as the module docstring says."""
    (chain_low, chain_high), (producer_low, producer_high) = chain.ci_us, producer.ci_us
    return TimerSummary(
        f"{timer}_{DIFFERENCE_OF}",
        chain.median_us - producer.median_us,
        ci_low_us=chain_low - producer_high,
        ci_high_us=chain_high - producer_low,
        samples=min(chain.count, producer.count),
    )


def time_in_layer(bench, producers: ProducerLayers, chains: dict[str, tuple[Callable[[], object], int]]) -> InLayer:
    """The chains (by name: a call and the layers it rotates through) and, the first time, the producer
    alone, timed as a point is: warm-up, eager windows interleaved between them all, and (on a GPU) the
    CUDA-graph device time of each, in graphs of whole rotations of their layers. Later chains of the case
    are timed alone and compared with the producer's first figures: their eager windows are not
    interleaved with the producer's (the device times, which the answers read, do not drift with the
    host)."""
    layers = {name: count for name, (_, count) in chains.items()}
    calls = {name: call for name, (call, _) in chains.items()}
    if producers.timed is None:
        layers[PRODUCER], calls[PRODUCER] = producers.layers, producers.alone
    for call in calls.values():
        bench.warm_up(call)
    latency, failures = bench.eager_latency(calls)
    if failures:
        raise next(iter(failures.values()))
    device = {}
    if bench.device.type == "cuda":
        # What a replay costs beyond its calls is spread over a rotation or more of layers in both graphs:
        # the difference read the same (9.57 and 9.58 us) with one and with eight rotations per graph on
        # an H200 (scripts/checks/context_probe.py).
        device = {name: bench.device_time(call, latency[name].min_us, layers[name]) for name, call in calls.items()}
    if producers.timed is None:
        producers.timed = latency.pop(PRODUCER), device.pop(PRODUCER, None)
    alone_latency, alone_device = producers.timed
    timers_used = (*latency.values(), *device.values(), alone_latency, *([alone_device] if alone_device else []))
    return InLayer(
        producer_device=alone_device.summary() if alone_device else None,
        producer_latency=alone_latency.summary(),
        device={n: difference(device[n], alone_device, device[n].timer) if alone_device else None for n in chains},
        latency={name: difference(latency[name], alone_latency, latency[name].timer) for name in chains},
        noisy=any(s.noisy for s in timers_used),  # the producer's timers too: a difference is as noisy as either
    )
