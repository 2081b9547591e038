"""Debug: which bad-input call crashes the extension on the GPU machine (temporary)."""
import sys
import torch
from gemmbench import ext

ext.load()
dev = "cuda"
def bf16(*s, device=dev):
    return torch.randn(*s, device=device, dtype=torch.bfloat16)
cases = [("dtype", lambda: (bf16(4, 64).half(), bf16(8, 64)))] * 5 + [
    ("3d", lambda: (bf16(2, 4, 64), bf16(8, 64))),
    ("kmismatch", lambda: (bf16(4, 64), bf16(8, 32))),
    ("noncontig", lambda: (bf16(64, 4).t(), bf16(8, 64))),
    ("cpu", lambda: (bf16(4, 64, device="cpu"), bf16(8, 64, device="cpu"))),
]
for op in ("gemm_ex_out", "gemm_ex"):
    for name, make in cases:
        x, w = make()
        print(op, name, "...", flush=True)
        try:
            if op == "gemm_ex_out":
                torch.ops.gemmbench.gemm_ex_out(x, w, torch.empty(4, 8, device=x.device))
            else:
                torch.ops.gemmbench.gemm_ex(x, w)
        except RuntimeError as e:
            print("  ->", str(e).splitlines()[0], flush=True)
