"""One-off exploration: which kineto events one GEMM call produces (names, types, correlation ids)."""
import torch
from torch.profiler import ProfilerActivity, profile, record_function

x = torch.randn(1, 7168, device="cuda", dtype=torch.bfloat16)
w = torch.randn(256, 7168, device="cuda", dtype=torch.bfloat16)
calls = {
    "mm_out_dtype": lambda: torch.mm(x, w.t(), out_dtype=torch.float32),
    "upcast": lambda: torch.mm(x.float(), w.float().t()),
    "linear_cast": lambda: torch.nn.functional.linear(x, w).float(),
}
for name, fn in calls.items():
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(2):
            with record_function(f"gemmbench.call.{i}"):
                fn()
            torch.cuda.synchronize()
    print("=====", name)
    for e in prof.events():
        print(f"{str(e.device_type):18s} id={e.id:6d} link={e.linked_correlation_id:6d} "
              f"start={e.time_range.start:.1f} end={e.time_range.end:.1f} {e.name[:150]}")
