"""The tests' made-up device: `FakeBench`, a bench that times nothing and makes up each unit's times from
what it computes, and the `fake` backend, a correct GEMM on any device.

`FakeBench` goes behind the sessions' one bench seam (measure/session.py, SESSION_BENCH): the `fake_device`
fixture (conftest.py) puts it there for a test, and fake_gemmbench.py for gemmbench run in a process of its
own. This module is also a plugin (its BACKENDS), which is how the `fake` backend gets registered.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch

from gemmbench.backends import Backend, GemmCall, GemmInputs
from gemmbench.measure.bench import Bench
from gemmbench.measure.layers import LayerWork, Timed, Unit
from gemmbench.spec.cases import Case
from gemmbench.timing.timers import Samples

# The timer name of the made-up times, in the `latency_timer` and `device_timer` columns.
FAKE_TIMER = "fake_bench"
# The made-up device: a fixed launch cost on the host per kernel, and each kernel's time on the device a
# fixed overhead plus its bytes or its FLOPs (whichever takes longer) at round rates.
FAKE_LAUNCH_US = 20.0
FAKE_DEVICE_OVERHEAD_US = 2.0
FAKE_BYTES_PER_US = 2.0e6  # 2 TB/s
FAKE_FLOPS_PER_US = 500.0e6  # 500 TFLOP/s
# In a layer, the made-up kernel switch after the producer: what the layer adds beyond the producer's time.
FAKE_KERNEL_SWITCH_US = 1.5
BF16_BYTES = 2


def gemm_us(case: Case) -> float:
    """The made-up device time of one GEMM."""
    return FAKE_DEVICE_OVERHEAD_US + max(case.bytes_moved / FAKE_BYTES_PER_US, case.flops / FAKE_FLOPS_PER_US)


def producer_us(case: Case) -> float:
    """The made-up device time of the producer that writes x of `case`: it reads and writes [M, K] bf16."""
    return FAKE_DEVICE_OVERHEAD_US + 2 * case.m * case.k * BF16_BYTES / FAKE_BYTES_PER_US


def made_up(work: LayerWork) -> Timed:
    """A layer's times: its device time the busiest stream's GEMMs (streams overlap perfectly), after the
    producer and the kernel switch where there is one; its latency that plus a launch per kernel."""
    device_us = max(sum(gemm_us(case) for case in stream) for stream in work.streams)
    kernels = sum(len(stream) for stream in work.streams)
    if work.producer is not None:
        device_us = device_us + producer_us(work.streams[0][0]) + FAKE_KERNEL_SWITCH_US
        kernels += 1
    latency_us = device_us + kernels * FAKE_LAUNCH_US
    return Timed(Samples(FAKE_TIMER, (latency_us,)), Samples(FAKE_TIMER, (device_us,)))


class FakeBench(Bench):
    """A bench on the CPU (where the rows are still checked against float64) that times no call: every
    unit's times are `made_up` from its work, so tables and files come out the same on any machine. Unlike
    the CPU's bench, it gives groups on streams their times."""

    streams_unavailable = None

    def time_units(self, units: dict[Hashable, list[Unit]]) -> tuple[dict[Hashable, Timed], dict[Hashable, Exception]]:
        return {key: made_up(placements[0].work) for key, placements in units.items()}, {}

    def device_time(self, unit: Unit, upper_bound_us: float, rule=None) -> Samples:
        return made_up(unit.work).device


class Fake(Backend):
    """Computes the right answer on any device, for any dtypes: a backend every test can run."""

    name = "fake"
    code = "x.float() @ w.float().T"
    in_default_set = False

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        return None

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: torch.mm(x.float(), w.float().t(), out=out)


BACKENDS = [Fake()]
