"""Where torch's norm finds its input in a layer: the chain of layer_check.py, eagerly, for Nsight Compute.

In the kernels the profiler sees (layer_kernels.py, an H100, DeepSeek-V3's router, M = 1, 29 cold layers),
torch's RMSNorm kernel took 12.6 us before mm_out_dtype and 6.2 us before router_small_m_ext: the same
kernel on the same bytes. This runs that chain (torch's norm, then the GEMM, layer after layer) for a few
rotations of its layers, eagerly, so that `ncu --cache-control none` can read each norm's L2 hit rate and
DRAM traffic in the cache state the chain leaves it.

Usage (on a GPU, the last rotation's norms):
  ncu --cache-control none --clock-control none --replay-mode application -k regex:layer_norm \
      --launch-skip 58 --launch-count 29 --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum,\
lts__t_sector_hit_rate.pct python research/experiments/layer_norm_l2.py BACKEND [--layers 29]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from gemmbench.backends import ext

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "checks" / "layer_check.py"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["mm_out_dtype", "router_small_m_ext", "router_small_m_mma"])
    parser.add_argument("--layers", type=int, default=29, help="gemmbench's l2_copies at this point (H100)")
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--m", type=int, default=1)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    spec = importlib.util.spec_from_file_location("layer_check", CHECK)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    ext.ensure_loaded()
    row = {"m": args.m, "n": 256, "k": 7168, "context": "norm", "backend": args.backend, "pdl": False}
    generator = torch.Generator(device="cuda").manual_seed(0)
    layers = [check.new_layer(row, generator) for _ in range(args.layers)]
    for _ in range(args.rotations):
        for t in layers:
            check.gemm(check.produce(t, "norm"), t, args.backend, False)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
