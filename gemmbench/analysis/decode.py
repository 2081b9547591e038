"""Decode GPU kernel names into what they say: family, architecture, dtypes, tile, stages, cluster, split-K.

Pure string work, no torch: it reads names recorded on any GPU (sm70 ... sm120) on any machine. Each
family is read by its own grammar, written down with examples in docs/kernels.md; a field the name does
not state stays empty (never guessed), and a name of no known family is `recognised: false`.

Families: nvjet (cuBLASLt, CUDA 12+; the sm120 `_mma_` grammar too), xmma (cuBLAS), cutlass (2.x names
here; 3.x names, CUTLASS-profiler names without an arch, and templated kernels as torch.profiler prints
them in decode_cutlass.py),
cublas (the pre-nvjet names sm70-sm89 cards run: ampere_, volta_, ...), dsv3_router (TensorRT-LLM's
router GEMM for DeepSeek-V3-style routers, as FlashInfer and sgl-kernel build it), and the helpers a GEMM call
launches around its GEMM: cuBLASLt split-K reduce, gemv, PyTorch elementwise kernels, memset.
"""

from __future__ import annotations

import re

from gemmbench.analysis.decode_cutlass import cutlass3, cutlass_templated
from gemmbench.analysis.kernel_info import (
    ACCUMULATOR_LETTERS,
    CLUSTER,
    CUDA_ELEMENTS,
    DIMS2,
    DIMS3,
    FAMILIES,
    GEMMBENCH_KERNELS,
    GENERATIONS,
    LAYOUT_LOWER,
    LAYOUT_UPPER,
    NAMED_TYPES,
    NVJET_TYPES,
    SIMT_GEMMS,
    TF32,
    KernelInfo,
    says_split_k,
    storage_type,
    two_types,
)

# The decoder's API: what it reads a name into (kernel_info.py), and the readers.
__all__ = ["FAMILIES", "KernelInfo", "decode", "gemm_kernel", "short_name"]


def decode(name: str) -> KernelInfo:
    """Decode one kernel name; an unknown name gives family 'other' (not recognised), never an exception."""
    for decoder in (_nvjet, _xmma, cutlass3, cutlass_templated, _cutlass2, _cublas_legacy, _dsv3_router, _helper):
        info = decoder(name)
        if info is not None:
            return info
    return KernelInfo(name)


def _nvjet(name: str) -> KernelInfo | None:
    """nvjet_[smXX_]<types>[_tf32]_<TM>x<TN>_<TK>x<STAGES>_<CM>x<CN>[f][_2cta]_<v|h>_<flags>_<LAYOUT>, or on
    sm120 nvjet_sm120_<types>_mma_<TM>x<TN>x<TK>[_<STAGES>_<WM>x<WN>x<WK>]_<flags>_<LAYOUT>."""
    match = re.search(r"\bnvjet_\w+", name)
    if not match:
        return None
    tokens = match.group(0).split("_")[1:]
    fields: dict = {"split_k": "splitK" in tokens}
    if tokens and re.fullmatch(r"sm\d+[a-z]?", tokens[0]):
        fields["arch"] = tokens.pop(0)
    if tokens and re.fullmatch(r"[a-z]{3}|[a-z]{5}", tokens[0]) and all(c in NVJET_TYPES for c in tokens[0]):
        fields.update(_nvjet_types(tokens.pop(0)))
    if tokens and tokens[0] == TF32:
        fields["math"] = tokens.pop(0)
    if tokens and tokens[0] == "mma":
        tokens.pop(0)
        fields.update(_nvjet_sm120_tile(tokens))
    else:
        fields.update(_nvjet_tile(tokens))
    scale = next((m.group(1).lower() for t in tokens if (m := re.search(r"vec\d+(UE4M3|UE8M0)", t))), None)
    if scale:
        fields["scale_dtype"] = scale
    if tokens and LAYOUT_UPPER.match(tokens[-1]):
        fields["layout"] = tokens[-1]
    return KernelInfo(name, "nvjet", **fields)


def _nvjet_types(letters: str) -> dict:
    types = [NVJET_TYPES[c] for c in letters]
    if len(types) == 3:  # [A and B][compute][C and D]
        return {"a_dtype": types[0], "b_dtype": types[0], "compute_dtype": types[1], "out_dtype": types[2]}
    return {
        "a_dtype": types[0],
        "b_dtype": types[1],
        "compute_dtype": types[3],
        "out_dtype": types[4],
    }  # A B C compute D


def _nvjet_tile(tokens: list[str]) -> dict:
    """<TM>x<TN>_<TK>x<STAGES>_<CM>x<CN>[f] at the head of `tokens`."""
    if len(tokens) < 3:
        return {}
    tile, depth, cluster = DIMS2.match(tokens[0]), DIMS2.match(tokens[1]), CLUSTER.match(tokens[2])
    if not (tile and depth and cluster):
        return {}
    (tm, tn), (tk, stages), (cm, cn) = (tuple(map(int, m.groups())) for m in (tile, depth, cluster))
    return {"tile_m": tm, "tile_n": tn, "tile_k": tk, "stages": stages, "cluster_m": cm, "cluster_n": cn}


def _nvjet_sm120_tile(tokens: list[str]) -> dict:
    """<TM>x<TN>x<TK>[_<STAGES>_<WM>x<WN>x<WK>] at the head of `tokens` (the warp tile is not a field)."""
    tile = DIMS3.match(tokens[0]) if tokens else None
    if not tile:
        return {}
    fields = dict(zip(("tile_m", "tile_n", "tile_k"), map(int, tile.groups()), strict=True))
    if len(tokens) > 2 and tokens[1].isdigit() and DIMS3.match(tokens[2]):
        fields["stages"] = int(tokens[1])
    return fields


def _xmma(name: str) -> KernelInfo | None:
    """smXX_xmma_gemm_<A/B><C>_<MMA input><accumulator>_<epilogue scalar>_<layout>_..._tilesize<TM>x<TN>x<TK>
    [_stage<S>]_..."""
    match = re.search(r"\b(sm\d+[a-z]?)_xmma_gemm_(\w+)", name)
    if not match:
        return None
    fields: dict = {"arch": match.group(1), "split_k": says_split_k(name)}
    tokens = match.group(2).split("_")
    storage, mma = (two_types(t) for t in (tokens + ["", ""])[:2])
    if storage:
        fields.update(
            a_dtype=storage_type(storage[0]), b_dtype=storage_type(storage[0]), out_dtype=storage_type(storage[1])
        )
    if mma:
        fields["compute_dtype"] = storage_type(mma[1])
        if TF32 in (storage or ())[:1] + mma[:1]:
            fields["math"] = TF32
    layout = next((t for t in tokens[2:] if re.fullmatch(r"[tn]{2}", t)), None)
    if layout:
        fields["layout"] = layout
    tile = re.search(r"tilesize(\d+)x(\d+)(?:x(\d+))?", name)  # a name cut short may end after TN
    if tile:
        fields["tile_m"], fields["tile_n"] = int(tile.group(1)), int(tile.group(2))
        if tile.group(3):
            fields["tile_k"] = int(tile.group(3))
    stage = re.search(r"_stage(\d+)", name)
    if stage:
        fields["stages"] = int(stage.group(1))
    cluster = re.search(r"clustersize(\d+)x(\d+)", name)
    if cluster:
        fields["cluster_m"], fields["cluster_n"] = map(int, cluster.groups())
    return KernelInfo(name, "xmma", **fields)


def _cutlass2(name: str) -> KernelInfo | None:
    """cutlass_[<XX>_]<op>_[<C>_]<acc letter><instr>gemm_[<A>_]<TM>x<TN>_<TK>x<STAGES>_<layout>_align<N>: a type
    before the instruction is the output, one after it is input A (and B); left-out types are the
    accumulator's. `cutlass_tensorop_...` (the CUTLASS profiler's names) carry no arch."""
    match = re.search(r"\bcutlass_(?:(\d+)_)?((?:wmma_)?tensorop|simt|wmma)_(\w+)", name)
    if not match:
        return None
    arch = f"sm{match.group(1)}" if match.group(1) else None
    fields = _read_legacy_gemm(match.group(3).split("_"), simt=match.group(2) == "simt")
    return KernelInfo(name, "cutlass", arch=arch, split_k=says_split_k(name), **fields)


def _cublas_legacy(name: str) -> KernelInfo | None:
    """<generation>_[<C>_]<acc letter><instr>gemm_[<A>_]<TM>x<TN>_..._[stages_<TK>x<STAGES>_]<layout>: the
    names cuBLAS gave its kernels before nvjet (ampere_bf16_s16816gemm_bf16_128x256_ldg8_f2f_stages_64x3_tn)."""
    match = re.search(rf"\b({'|'.join(GENERATIONS)})_(\w*gemm\w*)", name)
    if not match:
        return None
    fields = _read_legacy_gemm(match.group(2).split("_"), simt=True)
    return KernelInfo(name, "cublas", arch=match.group(1), split_k=says_split_k(name), **fields)


def _read_legacy_gemm(tokens: list[str], simt: bool) -> dict:
    """Types, tile and layout of a CUTLASS 2.x or pre-nvjet cuBLAS name, from its tokens after the op."""
    fields: dict = {}
    instr_at = next((i for i, t in enumerate(tokens) if re.fullmatch(r"[a-z]*\d*gemm", t)), None)
    if instr_at is None:
        return fields
    instr = tokens[instr_at]
    letter = instr[0] if instr[0] in ACCUMULATOR_LETTERS else None
    if simt and instr in SIMT_GEMMS:
        operand, accumulator = SIMT_GEMMS[instr]
        fields.update(a_dtype=operand, b_dtype=operand, compute_dtype=accumulator, out_dtype=accumulator)
    elif letter:
        accumulator = ACCUMULATOR_LETTERS[letter]
        before = [t for t in tokens[:instr_at] if t in NAMED_TYPES or t == TF32]
        tile_at = next((i for i, t in enumerate(tokens) if DIMS2.match(t)), len(tokens))
        after = [t for t in tokens[instr_at + 1 : tile_at] if t in NAMED_TYPES or t == TF32]
        out = storage_type(before[-1]) if before else accumulator
        a = storage_type(after[0]) if after else accumulator
        b = storage_type(after[1]) if len(after) > 1 else a
        fields.update(a_dtype=a, b_dtype=b, compute_dtype=accumulator, out_dtype=out)
        if TF32 in before + after:
            fields["math"] = TF32
    dims = [tuple(map(int, m.groups())) for t in tokens[instr_at + 1 :] if (m := DIMS2.match(t))]
    if dims:
        fields["tile_m"], fields["tile_n"] = dims[0]
    if len(dims) > 1:
        fields["tile_k"], fields["stages"] = dims[1]
    layout = next((t for t in reversed(tokens) if LAYOUT_LOWER.match(t)), None)
    if layout:
        fields["layout"] = layout
    return fields


# TensorRT-LLM's dsv3RouterGemm, as its builds name it: FlashInfer's and sgl-kernel's JIT build
# `router_gemm_kernel<In, Out, BLOCK, VPT, TOKENS, EXPERTS, HIDDEN[, PDL]>`; TensorRT-LLM's own, sgl-kernel's
# `dsv3_router_gemm` op and vLLM's `_moe_C.dsv3_router_gemm` `router_gemm_kernel_<float|bf16>_output<In, BLOCK,
# VPT, TOKENS, EXPERTS, HIDDEN>`, the output type in the name.
DSV3_ROUTER = (
    re.compile(
        r"\brouter_gemm_kernel<(?P<a>[\w ]+), (?P<out>[\w ]+), (?P<block>\d+), (?P<vpt>\d+), (?P<tokens>\d+), "
        r"\d+, \d+(?:, (?:true|false))?>"
    ),
    re.compile(
        r"\brouter_gemm_kernel_(?P<out>float|bf16)_output<(?P<a>[\w ]+), (?P<block>\d+), (?P<vpt>\d+), "
        r"(?P<tokens>\d+), \d+, \d+>"
    ),
)
DSV3_ROUTER_OUTPUTS = {"bf16": "__nv_bfloat16"}  # the suffix's word for a type, as CUDA_ELEMENTS spells it


def _dsv3_router(name: str) -> KernelInfo | None:
    """One CTA per expert over every token and the whole K, VPT elements a thread per step: the CTA's tile
    is the tokens by one expert, its K step VPT x BLOCK; one type for x and w. The accumulator is not in
    the name. Other kernels of these names with other arguments (vLLM's fp32-weight
    `router_gemm_kernel<B, M, EPB, TG>`) stay unrecognised."""
    match = next((m for pattern in DSV3_ROUTER if (m := pattern.search(name))), None)
    if match is None:
        return None
    out_word = DSV3_ROUTER_OUTPUTS.get(match["out"], match["out"])
    if not {match["a"], out_word} <= CUDA_ELEMENTS.keys():
        return None
    a, out = CUDA_ELEMENTS[match["a"]], CUDA_ELEMENTS[out_word]
    step = int(match["vpt"]) * int(match["block"])
    tokens = int(match["tokens"])
    return KernelInfo(name, "dsv3_router", a_dtype=a, b_dtype=a, out_dtype=out, tile_m=tokens, tile_n=1, tile_k=step)


def _helper(name: str) -> KernelInfo | None:
    if name.removeprefix("void ").startswith(GEMMBENCH_KERNELS):
        return KernelInfo(name, "gemmbench")
    lowered = name.lower()
    if "splitkreduce" in lowered or "reducesplitk" in lowered:
        return KernelInfo(name, "splitk_reduce", split_k=True)
    if re.search(r"gemv", lowered):
        return KernelInfo(name, "gemv")
    if "memset" in lowered:
        return KernelInfo(name, "memset")
    if "elementwise_kernel" in lowered or ("at::native::" in name and "copy" in lowered):
        return KernelInfo(name, "elementwise")
    return None


def short_name(name: str, width: int = 72) -> str:
    """A kernel name for tables: return type and template arguments of C++ names elided, long names cut.

    `std::enable_if<...>::type internal::gemvx::kernel<int, ...>(...)` -> `internal::gemvx::kernel<…>`.
    """
    if "<" in name and not name.startswith(("nvjet", "sm", "cutlass")):
        name = re.sub(r"^(void\s+|std::enable_if<.*?>::type\s+)", "", name)
        head = name.split("<", 1)[0]
        inner = re.search(r"(direct_copy_kernel_cuda|copy_kernel|fill_kernel|cutlass_\w+|GemmUniversal)", name)
        name = f"{head}<{inner.group(1)}…>" if inner else f"{head}<…>"
    return name if len(name) <= width else name[: width - 1] + "…"


def gemm_kernel(names: list[str]) -> str | None:
    """The GEMM kernel among a call's kernels (the first of a GEMM family), if any."""
    return next((n for n in names if decode(n).is_gemm), None)
