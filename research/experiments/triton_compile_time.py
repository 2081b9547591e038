"""How long Triton takes to compile router_small_m's kernel, without a GPU: each kernel DeepSeek-V3's router
runs in a default sweep (the configurations of the shipped H100 tuning file per M bucket, M = 1 and
multiples of 16 compiled apart), with PDL and without, compiled for sm90 one after the other into an empty
cache. What the kernels cost a first sweep before `Backend.compile_ahead` (the C launcher Triton builds at a
kernel's first launch is not included: building it needs the CUDA driver).

Usage: python research/experiments/triton_compile_time.py [--arch 90]   (needs triton; no GPU)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# (what, M, BLOCK_M, BLOCK_N, BLOCK_K, K_SPLIT, on tensor cores): router_small_m_kernel._arguments for the
# H100 tuning file's DeepSeek-V3 configurations at M = 1, 2, 3-4, 5-8, 9-15, 16 and 32.
VARIANTS = [
    ("M=1, CUDA cores", 1, 1, 1, 2048, 8192, False),
    ("M=2, CUDA cores", 2, 2, 1, 2048, 8192, False),
    ("M=3-4, CUDA cores", 3, 4, 1, 2048, 8192, False),
    ("M=5-8, tensor cores 16x256/512", 5, 16, 16, 256, 512, True),
    ("M=9-15, tensor cores 32x256/256", 9, 16, 32, 256, 256, True),
    ("M=16, tensor cores 32x256/256", 16, 16, 32, 256, 256, True),
    ("M=32, tensor cores 16x256/512", 32, 32, 16, 256, 512, True),
]
DIVISIBLE = [["tt.divisibility", 16]]  # Triton's attribute for a pointer or int that 16 divides


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="the compute capability compiled for (90: Hopper)")
    return parser.parse_args(argv)


def source(kernel, m: int, block_m: int, block_n: int, block_k: int, k_split: int, tensor_cores: bool, pdl: bool):
    """The kernel's source as its launch at M specialises it (the int arguments N = 256, K = 7168 and the
    pointers divisible by 16)."""
    from triton.compiler import ASTSource

    names = ["x", "w", "out", "workspace", "arrivals", "M", "N", "K"]
    types = ["*bf16", "*bf16", "*fp32", "*fp32", "*i32", "constexpr" if m == 1 else "i32", "i32", "i32"]
    constants = {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "K_SPLIT": k_split}
    constants |= {"ON_TENSOR_CORES": tensor_cores, "PDL": pdl} | ({"M": 1} if m == 1 else {})
    signature = dict(zip(names, types, strict=True)) | {name: "constexpr" for name in constants if name != "M"}
    order = list(signature)
    attrs = {(index,): DIVISIBLE for index in (0, 1, 2, 3, 4, 6, 7)} | ({(5,): DIVISIBLE} if m % 16 == 0 else {})
    return ASTSource(kernel, signature, {(order.index(k),): v for k, v in constants.items()}, attrs)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="triton-compile-time-")  # an empty cache
    import triton
    from triton.backends.compiler import GPUTarget

    from gemmbench.backends.router_small_m_triton import gemmbench_router_small_m

    target, total = GPUTarget("cuda", args.arch, 32), 0.0
    print(f"triton {triton.__version__}, sm{args.arch}, {os.cpu_count()} CPUs\n")
    print("| kernel | PDL | compile s |\n| --- | --- | --- |")
    for what, *shape in VARIANTS:
        for pdl in (False, True):
            started = time.perf_counter()
            triton.compile(
                source(gemmbench_router_small_m, *shape, pdl),
                target=target,
                options={"num_warps": 4, "launch_pdl": pdl},
            )
            seconds = time.perf_counter() - started
            total += seconds
            print(f"| {what} | {pdl} | {seconds:.2f} |", flush=True)
    print(f"\n{2 * len(VARIANTS)} compilations one after the other: {total:.2f} s")


if __name__ == "__main__":
    main()
