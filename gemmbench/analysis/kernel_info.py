"""What a decoded kernel name says (`KernelInfo`), and the type vocabulary every grammar of decode.py
shares. Pure string work, no torch."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

FAMILIES = (
    "nvjet",
    "xmma",
    "cutlass",
    "cublas",
    "gemmbench",
    "dsv3_router",
    "splitk_reduce",
    "gemv",
    "elementwise",
    "memset",
    "other",
)
GEMM_FAMILIES = ("nvjet", "xmma", "cutlass", "cublas", "gemmbench", "dsv3_router", "gemv")
# gemmbench's own kernels (backends/router_small_m.py, and ext/router_small_m.cu and router_small_m_mma.cu,
# whose templated kernels the profiler names `void gemmbench_router_small_m_ext<M>(...)` and
# `void gemmbench_router_small_m_mma<W, C, T>(...)`): the name says which kernel it is.
GEMMBENCH_KERNELS = ("gemmbench_router_small_m",)

# nvjet type letters, as cuBLASLt spells them.
NVJET_TYPES = {
    "h": "fp16",
    "s": "fp32",
    "t": "bf16",
    "d": "fp64",
    "q": "fp8_e4m3",
    "r": "fp8_e5m2",
    "o": "fp4_e2m1",
    "b": "int8",
    "i": "int32",
}
# Type tokens of xmma, CUTLASS and pre-nvjet cuBLAS names. `tf32` is a math mode on fp32 storage, handled
# apart; `f8`, `f6`, `f4` are CUTLASS's run-time-typed formats, whose exact format the name leaves open.
NAMED_TYPES = {
    "bf16": "bf16",
    "f16": "fp16",
    "fp16": "fp16",
    "f32": "fp32",
    "fp32": "fp32",
    "f64": "fp64",
    "fp64": "fp64",
    "e4m3": "fp8_e4m3",
    "e5m2": "fp8_e5m2",
    "e2m1": "fp4_e2m1",
    "e3m2": "fp6_e3m2",
    "e2m3": "fp6_e2m3",
    "f8": "fp8",
    "f6": "fp6",
    "f4": "fp4",
    "s8": "int8",
    "i8": "int8",
    "int8": "int8",
    "u8": "uint8",
    "s4": "int4",
    "u4": "uint4",
    "s32": "int32",
    "i32": "int32",
    "int32": "int32",
}
TF32 = "tf32"
# CUTLASS 2.x and pre-nvjet cuBLAS: the letter before an instruction shape is the accumulator's type.
ACCUMULATOR_LETTERS = {"s": "fp32", "h": "fp16", "d": "fp64", "i": "int32"}
# SIMT kernels name the whole GEMM's type (igemm: int8 operands, int32 accumulator and output).
SIMT_GEMMS = {
    "sgemm": ("fp32", "fp32"),
    "hgemm": ("fp16", "fp16"),
    "dgemm": ("fp64", "fp64"),
    "igemm": ("int8", "int32"),
}
# Pre-nvjet cuBLAS names start with the GPU generation; the name says no more than that.
GENERATIONS = ("maxwell", "pascal", "volta", "turing", "ampere", "ada", "hopper")
# Element types of templated CUTLASS kernels.
CUTLASS_ELEMENTS = {
    "cutlass::bfloat16_t": "bf16",
    "cutlass::half_t": "fp16",
    "cutlass::tfloat32_t": "fp32",
    "cutlass::float_e4m3_t": "fp8_e4m3",
    "cutlass::float_e5m2_t": "fp8_e5m2",
    "cutlass::float_e2m1_t": "fp4_e2m1",
    "float": "fp32",
    "double": "fp64",
    "signed char": "int8",
    "int8_t": "int8",
}

# Element types of CUDA C++ kernels' template arguments (TensorRT-LLM's and its ports').
CUDA_ELEMENTS = {"__nv_bfloat16": "bf16", "__half": "fp16", "float": "fp32"}

DIMS2 = re.compile(r"^(\d+)x(\d+)$")
DIMS3 = re.compile(r"^(\d+)x(\d+)x(\d+)$")
CLUSTER = re.compile(r"^(\d+)x(\d+)f?$")  # sm100/sm103 nvjet names may end a cluster in `f`
LAYOUT_UPPER = re.compile(r"^[TN]{2,4}$")
LAYOUT_LOWER = re.compile(r"^[tn]{2,3}$")


@dataclass(frozen=True)
class KernelInfo:
    name: str
    family: str = "other"
    arch: str | None = None
    a_dtype: str | None = None
    b_dtype: str | None = None
    out_dtype: str | None = None  # C and D storage (D where they differ)
    compute_dtype: str | None = None  # the accumulator
    math: str | None = None  # "tf32" where fp32 operands run on tf32 tensor cores
    scale_dtype: str | None = None  # block scales of block-scaled operands (ue4m3, ue8m0)
    tile_m: int | None = None
    tile_n: int | None = None
    tile_k: int | None = None
    stages: int | None = None
    cluster_m: int | None = None
    cluster_n: int | None = None
    split_k: bool | None = None
    layout: str | None = None
    conv: str | None = None  # fprop, dgrad or wgrad where the kernel is a convolution run as an implicit GEMM
    schedule: str | None = None  # the kernel schedule, as the name writes it (CUTLASS 3.x)
    epilogue: str | None = None  # the epilogue schedule and fusion, as the name writes them (CUTLASS 3.x)

    def to_dict(self) -> dict:
        return asdict(self) | {"recognised": self.recognised}

    @property
    def recognised(self) -> bool:
        """False for a name of no family the decoder knows: then no field was read from it."""
        return self.family != "other"

    @property
    def is_gemm(self) -> bool:
        return self.family in GEMM_FAMILIES

    @property
    def dtypes(self) -> str:
        """`bf16·bf16→fp32 (acc fp32)`, or '' when the name says nothing about types."""
        if not (self.a_dtype or self.out_dtype):
            return ""
        text = f"{self.a_dtype or '?'}·{self.b_dtype or '?'}→{self.out_dtype or '?'}"
        extras = [f"acc {self.compute_dtype}"] if self.compute_dtype else []
        extras += [f"{self.math} math"] if self.math else []
        extras += [f"scales {self.scale_dtype}"] if self.scale_dtype else []
        return f"{text} ({', '.join(extras)})" if extras else text

    @property
    def tile(self) -> str:
        if self.tile_m is None:
            return ""
        return f"{self.tile_m}x{self.tile_n}" + (f"x{self.tile_k}" if self.tile_k else "")

    @property
    def cluster(self) -> str:
        return "" if self.cluster_m is None else f"{self.cluster_m}x{self.cluster_n}"


TYPE_WORD = "bf16|tf32|f16|f32|f64|e4m3|e5m2|i8|i32|s8|s32|u8"


def two_types(token: str) -> tuple[str, str] | None:
    match = re.fullmatch(rf"({TYPE_WORD})({TYPE_WORD})", token)
    return (match.group(1), match.group(2)) if match else None


def storage_type(word: str) -> str:
    """A type word as a storage type: tf32 operands are fp32 in memory."""
    return "fp32" if word == TF32 else NAMED_TYPES[word]


def says_split_k(name: str) -> bool | None:
    """xmma and CUTLASS names mention split-K only when they use it ("splitK", or cuBLAS's xmma
    "execute_split_k_kernel"); silence is not a 'no'."""
    lowered = name.lower()
    return True if "splitk" in lowered or "split_k" in lowered else None
