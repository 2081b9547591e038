from __future__ import annotations

from functools import cache

import torch

from gemmbench.backends.base import Backend, GemmCall, GemmInputs
from gemmbench.errors import first_line
from gemmbench.spec.cases import Case

# torch.mm gained `out_dtype` (aten::mm.dtype) in PyTorch 2.8.
_MIN_TORCH = (2, 8)
# The probe's failure message keeps the first line of the exception, cut to this many characters.
MAX_PROBE_MESSAGE_CHARS = 120


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)


@cache
def out_dtype_unavailable(device_type: str) -> str | None:
    """Why `torch.mm(..., out_dtype=torch.float32)` cannot run on this device type, or None if it can.

    Probed once on a tiny input: which devices have a kernel for aten::mm.dtype changes between
    releases (CUDA and XPU have one; the CPU has none as of 2.13).
    """
    if _torch_version() < _MIN_TORCH:
        return f"torch {torch.__version__} has no torch.mm(out_dtype=); needs torch >= 2.8"
    if device_type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    try:
        a = torch.ones(2, 2, dtype=torch.bfloat16, device=device_type)
        torch.mm(a, a, out_dtype=torch.float32)
    except NotImplementedError:
        return f"torch {torch.__version__} has no {device_type} kernel for torch.mm(out_dtype=) (aten::mm.dtype)"
    except RuntimeError as exc:
        return f"torch.mm(out_dtype=) failed on {device_type}: {first_line(exc)[:MAX_PROBE_MESSAGE_CHARS]}"
    return None


class MmOutDtype(Backend):
    name = "mm_out_dtype"
    code = "torch.mm(x, w.T, out_dtype=torch.float32)"

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        return super().unavailable_reason(case, device) or out_dtype_unavailable(device.type)

    def prepare(self, case: Case, inputs: GemmInputs) -> GemmCall:
        x, wt, out = inputs.x, inputs.w.t(), inputs.out
        return lambda: torch.mm(x, wt, out_dtype=torch.float32, out=out)
