"""What a layer's time is made of: the kernels torch.profiler sees in a CUDA-graph replay of cold layers.

For each chain (a producer, then a router GEMM), one CUDA graph of L layers, each with its own hidden
state, norm weight, GEMM weight and output (L spans twice the L2, as gemmbench's cold layers do), is
replayed once under torch.profiler. Per layer it reports each kernel's mean duration, the kernels' sum,
and the span of the layer (from its first kernel's start to the next layer's first kernel's start): the
span minus the kernels' sum is the time no kernel of the chain ran. docs/context.md reads its table.

Usage: python scripts/checks/layer_kernels.py OUT_DIR   (on a GPU machine; prints a table, writes JSON)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

EPS = 1e-6
SHAPE = (256, 7168)  # DeepSeek-V3's router: N, K
M_VALUES = (1, 16)
# Twice the L2 of the largest card here (H200: 60 MB) over one layer's GEMM weight (3.7 MB), rounded up.
LAYERS = 40
PRODUCERS = ("norm", "flashinfer_fused_add_rmsnorm")
GEMMS = ("mm_out_dtype", "router_small_m_ext")


def gemm_call(name: str, x: torch.Tensor, w: torch.Tensor, out: torch.Tensor):
    if name == "mm_out_dtype":
        return lambda x=x: torch.mm(x, w.t(), out_dtype=torch.float32, out=out)
    return lambda x=x: torch.ops.gemmbench.router_small_m_out(x, w, out, False)


def producer_call(name: str, h: torch.Tensor, g: torch.Tensor, x: torch.Tensor):
    if name == "norm":
        return lambda: F.rms_norm(h, (h.shape[1],), g, EPS)
    import flashinfer.norm

    residual = h.roll(1, dims=-1)
    x.copy_(h)

    def call() -> torch.Tensor:
        flashinfer.norm.fused_add_rmsnorm(x, residual, g, EPS, enable_pdl=False)
        return x

    return call


def layers(producer: str, gemm: str, m: int) -> list:
    n, k = SHAPE
    calls = []
    for _ in range(LAYERS):
        h = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        g = (1 + 0.1 * torch.randn(k, device="cuda")).to(torch.bfloat16)
        x = torch.empty(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(m, n, device="cuda", dtype=torch.float32)
        produce = producer_call(producer, h, g, x)

        def layer(produce=produce, w=w, out=out) -> None:
            gemm_call(gemm, produce(), w, out)()

        calls.append(layer)
    return calls


def chain_kernels(producer: str, gemm: str, m: int) -> dict:
    calls = layers(producer, gemm, m)
    for call in calls:
        call()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        graph.replay()
        torch.cuda.synchronize()
    kernels = sorted(
        (e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time > 0),
        key=lambda e: e.time_range.start,
    )
    per_layer = len(kernels) // LAYERS
    names: dict[str, list[float]] = {}
    for event in kernels:
        names.setdefault(event.name[:90], []).append(event.device_time)
    starts = [kernels[i * per_layer].time_range.start for i in range(LAYERS)]
    spans = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    return {
        "producer": producer,
        "gemm": gemm,
        "m": m,
        "kernels_per_layer": per_layer,
        "kernels": {name: statistics.mean(times) for name, times in names.items()},
        "kernel_sum_us": sum(e.device_time for e in kernels) / LAYERS,
        "layer_span_us": statistics.median(spans),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    out_dir = parse_args(argv).out_dir
    from gemmbench.backends import ext

    ext.ensure_loaded()
    results = []
    for m in M_VALUES:
        for producer in PRODUCERS:
            for gemm in GEMMS:
                try:
                    results.append(chain_kernels(producer, gemm, m))
                except ImportError as exc:
                    print(f"skipped {producer} -> {gemm}: {exc}")
                torch.cuda.empty_cache()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "layer_kernels.json").write_text(json.dumps(results, indent=1))
    for r in results:
        print(
            f"\n{r['producer']} -> {r['gemm']}, M = {r['m']}: span {r['layer_span_us']:.2f} us per layer, "
            f"kernels {r['kernel_sum_us']:.2f} us ({r['kernels_per_layer']} a layer)"
        )
        for name, us in r["kernels"].items():
            print(f"  {us:7.2f} us  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
