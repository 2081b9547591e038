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
    for e in prof.profiler.kineto_results.events():
        if str(e.device_type()).endswith("CPU") and e.name().startswith(("aten::", "<built", "torch/")):
            continue
        print(f"{str(e.device_type()):18s} corr={e.correlation_id():6d} link={e.linked_correlation_id():6d} "
              f"ua={int(e.is_user_annotation())} start={e.start_ns()} end={e.end_ns()} {e.name()[:120]}")
