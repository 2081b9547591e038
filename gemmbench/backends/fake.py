from __future__ import annotations

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.spec.cases import Case

# A made-up device: a fixed launch cost plus bytes and FLOPs at round rates. Deterministic, so CLI
# tests can assert what the tables and files show.
FAKE_LAUNCH_US = 20.0
FAKE_DEVICE_OVERHEAD_US = 2.0
FAKE_BYTES_PER_US = 2.0e6  # 2 TB/s
FAKE_FLOPS_PER_US = 500.0e6  # 500 TFLOP/s
# In a context, the made-up kernel switch after the producer: what the layer adds to each of its times.
FAKE_KERNEL_SWITCH_US = 1.5


class Fake(Backend):
    """Test double: computes the right answer on any device and reports deterministic times."""

    name = "fake"
    code = "x.float() @ w.float().T, with simulated times"
    real = False

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        return None

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        x, w, out = inputs.x, inputs.w, inputs.out
        return lambda: torch.mm(x.float(), w.float().t(), out=out)

    def simulated_context_us(self, case: Case) -> tuple[float, float, float]:
        """The producer reads and writes x ([M, K] bf16) at the fake's bandwidth."""
        producer_device = FAKE_DEVICE_OVERHEAD_US + 2 * case.m * case.k * 2 / FAKE_BYTES_PER_US
        return producer_device + FAKE_LAUNCH_US, producer_device, FAKE_KERNEL_SWITCH_US

    def simulated_times_us(self, case: Case) -> tuple[float, float]:
        device = FAKE_DEVICE_OVERHEAD_US + max(case.bytes_moved / FAKE_BYTES_PER_US, case.flops / FAKE_FLOPS_PER_US)
        return device + FAKE_LAUNCH_US, device
