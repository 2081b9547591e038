"""What the extension's backends share: availability through the extension (built on first use, never
by a query), and the call of one of its `*_out(x, w, out)` operators."""

from __future__ import annotations

import torch

from gemmbench.backends import ext
from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.spec.cases import Case


def out_op_call(op, inputs: GemmInputs, *options) -> GemmCall:
    """A call of one of the extension's `*_out(x, w, out, *options)` operators on `inputs`, returning `out`."""
    x, w, out = inputs.x, inputs.w, inputs.out

    def call() -> torch.Tensor:
        op(x, w, out, *options)
        return out

    return call


class ExtensionBackend(Backend):
    needs_extension = True

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        if device.type != "cuda":
            return super().unavailable_reason(case, device) or "no CUDA device"
        return super().unavailable_reason(case, device) or ext.unavailable_reason()
