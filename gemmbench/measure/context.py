"""The GEMM in the layer: what a GEMM costs right after the producer that writes its input (`--context`).

Each layer has its own hidden state, producer weight, GEMM weight and output (the GEMM's rotating cold-L2
copies are the layers: as many as keep the L2 cold, or one set hot). A chain call runs one layer, the
producer then the GEMM on what it wrote. In the chain the GEMM weights evict the producer's inputs, so
the producer reads them from DRAM; the producer alone is timed the same way, cold: over the chain's
layers and, where its own bytes are too few to keep L2 cold over them, more layers of its own (on an
H200, F.rms_norm of DeepSeek-V3's hidden state at M = 1 took 6.4 us hot and 12.8 us cold, a difference
that would otherwise be counted as the GEMM's). Both are timed the way a point is (the same warm-up,
eager windows and CUDA-graph timer, graphs of whole rotations of their layers), in the same process,
one after the other. The GEMM's in-context time is the difference per call: chain minus producer alone.

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


@dataclass(frozen=True)
class ContextTimes:
    """One variant's figures in context: the producer alone, and the GEMM's difference over it."""

    producer_device: TimerSummary | None
    producer_latency: TimerSummary
    context_device: TimerSummary | None
    context_latency: TimerSummary


def producer_bytes(case: Case) -> int:
    """What a producer reads and writes per layer: the hidden state, its weight, and x."""
    element = TORCH_DTYPES[case.in_dtype].itemsize
    return (2 * case.m * case.k + case.k) * element


def producer_layers(case: Case, device: torch.device, cold: bool) -> int:
    """Layers the producer alone rotates through: enough to keep L2 cold over its own bytes (cold), else one."""
    if not cold or device.type != "cuda":
        return 1
    return device_cold_copies(producer_bytes(case), device, most=MAX_PRODUCER_LAYERS)[0]


class Chain:
    """The layers of one case after one producer, for one backend variant: `step` runs the next layer
    (producer then GEMM), `producer_step` the producer alone, over `producer_layers` layers (the chain's
    first, then layers of its own)."""

    def __init__(
        self,
        case: Case,
        producer: Producer,
        copies: list[GemmInputs],
        gemm_for: Callable,
        seed: int,
        producer_layers: int = 1,
    ):
        self._generator = torch.Generator(device=copies[0].x.device).manual_seed(seed + 1)
        self._case, self._producer = case, producer
        self.copies = copies
        self.gemm_for = gemm_for  # GemmInputs -> the variant's prepared call
        self.producers = [self._prepare_producer(inputs.x) for inputs in copies]
        self.gemms = [gemm_for(inputs) for inputs in copies]
        own = [self._prepare_producer(torch.empty_like(copies[0].x)) for _ in range(producer_layers - len(copies))]
        self.producer_layers = len(copies) + len(own)
        self.step = rotating([self._layer(i) for i in range(len(copies))])
        self.producer_step = rotating(self.producers + own)

    def _prepare_producer(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """A producer call of a layer of its own: a new hidden state and weight, writing `x`."""
        case, generator, device = self._case, self._generator, x.device
        dtype = TORCH_DTYPES[case.in_dtype]
        hidden = torch.randn(case.m, case.k, device=device, dtype=dtype, generator=generator)
        weight = 1 + WEIGHT_SPREAD * torch.randn(case.k, device=device, dtype=torch.float32, generator=generator)
        return self._producer.prepare(case, hidden, weight.to(dtype), x)

    def _layer(self, index: int) -> Callable[[], object]:
        produce, gemm, inputs = self.producers[index], self.gemms[index], self.copies[index]

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
        x = self.producers[0]()
        self.gemm_for(GemmInputs(x, inputs.w, inputs.out))()
        return relative_error(inputs.out, reference(GemmInputs(x, inputs.w, inputs.out)))


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


def context_times(bench, chain: Chain) -> tuple[ContextTimes, bool]:
    """Both calls timed as a point is: warm-up, eager windows interleaved between the two, and (on a GPU)
    the CUDA-graph device time of each, in graphs of whole rotations of their layers; and whether any
    timer missed its target."""
    calls = {"chain": chain.step, "producer": chain.producer_step}
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
        layers = {"chain": len(chain.copies), "producer": chain.producer_layers}
        device = {name: bench.device_time(call, latency[name].min_us, layers[name]) for name, call in calls.items()}
    noisy = any(s.noisy for s in (*latency.values(), *device.values()))
    times = ContextTimes(
        producer_device=device["producer"].summary() if device else None,
        producer_latency=latency["producer"].summary(),
        context_device=difference(device["chain"], device["producer"], device["chain"].timer) if device else None,
        context_latency=difference(latency["chain"], latency["producer"], latency["chain"].timer),
    )
    return times, noisy
