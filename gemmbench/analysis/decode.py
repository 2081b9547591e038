"""Decode GPU kernel names into what they say: family, architecture, dtypes, tile, stages, cluster, split-K.

Pure string work, no torch: it reads names recorded on any GPU (sm70 ... sm120) on any machine. Each
family is read by its own grammar, written down with examples in docs/kernels.md; a field the name does
not state stays empty (never guessed), and a name of no known family is `recognised: false`.

Families: nvjet (cuBLASLt, CUDA 12+; the sm120 `_mma_` grammar too), xmma (cuBLAS), cutlass (2.x and 3.x
names, CUTLASS-profiler names without an arch, and templated kernels as torch.profiler prints them),
cublas (the pre-nvjet names sm70-sm89 cards run: ampere_, volta_, ...), and the helpers a GEMM call
launches around its GEMM: cuBLASLt split-K reduce, gemv, PyTorch elementwise kernels, memset.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

FAMILIES = (
    "nvjet",
    "xmma",
    "cutlass",
    "cublas",
    "gemmbench",
    "splitk_reduce",
    "gemv",
    "elementwise",
    "memset",
    "other",
)
GEMM_FAMILIES = ("nvjet", "xmma", "cutlass", "cublas", "gemmbench", "gemv")
# gemmbench's own kernels (backends/router_small_m.py, and ext/router_small_m.cu and router_small_m_mma.cu,
# whose templated kernels the profiler names `void gemmbench_router_small_m_ext<M>(...)` and
# `void gemmbench_router_small_m_mma<W, C, T>(...)`): the name says which kernel it is.
_GEMMBENCH_KERNELS = ("gemmbench_router_small_m",)

# nvjet type letters, as cuBLASLt spells them.
_NVJET_TYPES = {
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
_NAMED_TYPES = {
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
_TF32 = "tf32"
# CUTLASS 2.x and pre-nvjet cuBLAS: the letter before an instruction shape is the accumulator's type.
_ACCUMULATOR_LETTERS = {"s": "fp32", "h": "fp16", "d": "fp64", "i": "int32"}
# SIMT kernels name the whole GEMM's type (igemm: int8 operands, int32 accumulator and output).
_SIMT_GEMMS = {
    "sgemm": ("fp32", "fp32"),
    "hgemm": ("fp16", "fp16"),
    "dgemm": ("fp64", "fp64"),
    "igemm": ("int8", "int32"),
}
# Pre-nvjet cuBLAS names start with the GPU generation; the name says no more than that.
_GENERATIONS = ("maxwell", "pascal", "volta", "turing", "ampere", "ada", "hopper")
# Element types of templated CUTLASS kernels.
_CUTLASS_ELEMENTS = {
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

_DIMS2 = re.compile(r"^(\d+)x(\d+)$")
_DIMS3 = re.compile(r"^(\d+)x(\d+)x(\d+)$")
_CLUSTER = re.compile(r"^(\d+)x(\d+)f?$")  # sm100/sm103 nvjet names may end a cluster in `f`
_LAYOUT_UPPER = re.compile(r"^[TN]{2,4}$")
_LAYOUT_LOWER = re.compile(r"^[tn]{2,3}$")


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


def decode(name: str) -> KernelInfo:
    """Decode one kernel name; an unknown name gives family 'other' (not recognised), never an exception."""
    for decoder in (_nvjet, _xmma, _cutlass3, _cutlass_templated, _cutlass2, _cublas_legacy, _helper):
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
    if tokens and re.fullmatch(r"[a-z]{3}|[a-z]{5}", tokens[0]) and all(c in _NVJET_TYPES for c in tokens[0]):
        fields.update(_nvjet_types(tokens.pop(0)))
    if tokens and tokens[0] == _TF32:
        fields["math"] = tokens.pop(0)
    if tokens and tokens[0] == "mma":
        tokens.pop(0)
        fields.update(_nvjet_sm120_tile(tokens))
    else:
        fields.update(_nvjet_tile(tokens))
    scale = next((m.group(1).lower() for t in tokens if (m := re.search(r"vec\d+(UE4M3|UE8M0)", t))), None)
    if scale:
        fields["scale_dtype"] = scale
    if tokens and _LAYOUT_UPPER.match(tokens[-1]):
        fields["layout"] = tokens[-1]
    return KernelInfo(name, "nvjet", **fields)


def _nvjet_types(letters: str) -> dict:
    types = [_NVJET_TYPES[c] for c in letters]
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
    tile, depth, cluster = _DIMS2.match(tokens[0]), _DIMS2.match(tokens[1]), _CLUSTER.match(tokens[2])
    if not (tile and depth and cluster):
        return {}
    (tm, tn), (tk, stages), (cm, cn) = (tuple(map(int, m.groups())) for m in (tile, depth, cluster))
    return {"tile_m": tm, "tile_n": tn, "tile_k": tk, "stages": stages, "cluster_m": cm, "cluster_n": cn}


def _nvjet_sm120_tile(tokens: list[str]) -> dict:
    """<TM>x<TN>x<TK>[_<STAGES>_<WM>x<WN>x<WK>] at the head of `tokens` (the warp tile is not a field)."""
    tile = _DIMS3.match(tokens[0]) if tokens else None
    if not tile:
        return {}
    fields = dict(zip(("tile_m", "tile_n", "tile_k"), map(int, tile.groups()), strict=True))
    if len(tokens) > 2 and tokens[1].isdigit() and _DIMS3.match(tokens[2]):
        fields["stages"] = int(tokens[1])
    return fields


def _xmma(name: str) -> KernelInfo | None:
    """smXX_xmma_gemm_<A/B><C>_<MMA input><accumulator>_<epilogue scalar>_<layout>_..._tilesize<TM>x<TN>x<TK>
    [_stage<S>]_..."""
    match = re.search(r"\b(sm\d+[a-z]?)_xmma_gemm_(\w+)", name)
    if not match:
        return None
    fields: dict = {"arch": match.group(1), "split_k": _says_split_k(name)}
    tokens = match.group(2).split("_")
    storage, mma = (_two_types(t) for t in (tokens + ["", ""])[:2])
    if storage:
        fields.update(a_dtype=_storage(storage[0]), b_dtype=_storage(storage[0]), out_dtype=_storage(storage[1]))
    if mma:
        fields["compute_dtype"] = _storage(mma[1])
        if _TF32 in (storage or ())[:1] + mma[:1]:
            fields["math"] = _TF32
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


_TYPE_WORD = "bf16|tf32|f16|f32|f64|e4m3|e5m2|i8|i32|s8|s32|u8"


def _two_types(token: str) -> tuple[str, str] | None:
    match = re.fullmatch(rf"({_TYPE_WORD})({_TYPE_WORD})", token)
    return (match.group(1), match.group(2)) if match else None


def _storage(word: str) -> str:
    """A type word as a storage type: tf32 operands are fp32 in memory."""
    return "fp32" if word == _TF32 else _NAMED_TYPES[word]


def _says_split_k(name: str) -> bool | None:
    """xmma and CUTLASS names mention split-K only when they use it; silence is not a 'no'."""
    return True if "splitk" in name.lower() else None


def _cutlass2(name: str) -> KernelInfo | None:
    """cutlass_[<XX>_]<op>_[<C>_]<acc letter><instr>gemm_[<A>_]<TM>x<TN>_<TK>x<STAGES>_<layout>_align<N>: a type
    before the instruction is the output, one after it is input A (and B); left-out types are the
    accumulator's. `cutlass_tensorop_...` (the CUTLASS profiler's names) carry no arch."""
    match = re.search(r"\bcutlass_(?:(\d+)_)?((?:wmma_)?tensorop|simt|wmma)_(\w+)", name)
    if not match:
        return None
    arch = f"sm{match.group(1)}" if match.group(1) else None
    fields = _read_legacy_gemm(match.group(3).split("_"), simt=match.group(2) == "simt")
    return KernelInfo(name, "cutlass", arch=arch, split_k=_says_split_k(name), **fields)


def _cublas_legacy(name: str) -> KernelInfo | None:
    """<generation>_[<C>_]<acc letter><instr>gemm_[<A>_]<TM>x<TN>_..._[stages_<TK>x<STAGES>_]<layout>: the
    names cuBLAS gave its kernels before nvjet (ampere_bf16_s16816gemm_bf16_128x256_ldg8_f2f_stages_64x3_tn)."""
    match = re.search(rf"\b({'|'.join(_GENERATIONS)})_(\w*gemm\w*)", name)
    if not match:
        return None
    fields = _read_legacy_gemm(match.group(2).split("_"), simt=True)
    return KernelInfo(name, "cublas", arch=match.group(1), split_k=_says_split_k(name), **fields)


def _read_legacy_gemm(tokens: list[str], simt: bool) -> dict:
    """Types, tile and layout of a CUTLASS 2.x or pre-nvjet cuBLAS name, from its tokens after the op."""
    fields: dict = {}
    instr_at = next((i for i, t in enumerate(tokens) if re.fullmatch(r"[a-z]*\d*gemm", t)), None)
    if instr_at is None:
        return fields
    instr = tokens[instr_at]
    letter = instr[0] if instr[0] in _ACCUMULATOR_LETTERS else None
    if simt and instr in _SIMT_GEMMS:
        operand, accumulator = _SIMT_GEMMS[instr]
        fields.update(a_dtype=operand, b_dtype=operand, compute_dtype=accumulator, out_dtype=accumulator)
    elif letter:
        accumulator = _ACCUMULATOR_LETTERS[letter]
        before = [t for t in tokens[:instr_at] if t in _NAMED_TYPES or t == _TF32]
        tile_at = next((i for i, t in enumerate(tokens) if _DIMS2.match(t)), len(tokens))
        after = [t for t in tokens[instr_at + 1 : tile_at] if t in _NAMED_TYPES or t == _TF32]
        out = _storage(before[-1]) if before else accumulator
        a = _storage(after[0]) if after else accumulator
        b = _storage(after[1]) if len(after) > 1 else a
        fields.update(a_dtype=a, b_dtype=b, compute_dtype=accumulator, out_dtype=out)
        if _TF32 in before + after:
            fields["math"] = _TF32
    dims = [tuple(map(int, m.groups())) for t in tokens[instr_at + 1 :] if (m := _DIMS2.match(t))]
    if dims:
        fields["tile_m"], fields["tile_n"] = dims[0]
    if len(dims) > 1:
        fields["tile_k"], fields["stages"] = dims[1]
    layout = next((t for t in reversed(tokens) if _LAYOUT_LOWER.match(t)), None)
    if layout:
        fields["layout"] = layout
    return fields


# The convolution kinds CUTLASS 3.x runs as implicit GEMMs: forward, data gradient, weight gradient.
_CONVOLUTIONS = ("fprop", "dgrad", "wgrad")
# Tensor layouts of convolution names: glued to a type in the CUTLASS profiler's (`f16nhwc`), tokens of
# their own in cuDNN's (`ndhwc_ndhwc_ndhwc`).
_TENSOR_LAYOUTS = ("ndhwc", "nhwc", "nwc", "kcsrt", "kcsr", "kcs", "nchw")
# Words of a CUTLASS 3.x kernel schedule (and tile scheduler) suffix: `warpspecialized_cooperative`,
# `2sm`, `o_vs16_2sm`, `stream_k`; what follows them is the epilogue (`epi_tma`, `bias_f16_relu`).
_SCHEDULE_WORDS = frozenset(
    "cpasync warpspecialized pingpong cooperative fp8 fastaccum unspecialized 1sm 2sm mixed q o vs16 vs32 "
    "ultra nopf tmapf stream k".split()
)
_CUT_MARKS = ("...", "…")


def _cutlass3(name: str) -> KernelInfo | None:
    """cutlass3x_smXX_<op>_[<instr>]gemm_<A>_<B>_<acc>_<C>_<D>_<TM>x<TN>x<TK>_<CM>x<CN>x<CK>_<STAGES>_<layout>
    _align<N>_<schedule>_<epilogue>: five types by position (C may be `void`), stage count 0 = chosen by
    CUTLASS; block-scaled types `ue4m3xf4` (fp4 data, ue4m3 scales); epilogue tokens (`bias_f16`) come
    after the layout and are not operand types. Convolutions write their kind where GEMMs write `gemm`:
    `<instr>implicit_gemm_fprop_` (cuDNN), `<instr>_conv3d_fprop_<variant>_` (cuDNN), `fprop_` (the CUTLASS
    profiler, its types glued to tensor layouts: `f16nhwc`)."""
    match = re.search(r"\bcutlass3x_(sm\d+[a-z]?)_[a-z]+_(\w*)", name)
    if not match:
        return None
    fields: dict = {"arch": match.group(1), "split_k": _says_split_k(name)}
    tokens = match.group(2).split("_")
    if name.rstrip().endswith(_CUT_MARKS) or name[match.end() :].startswith(_CUT_MARKS):
        tokens = tokens[:-1]  # a name cut short: its last token may be cut too
    head_end = next((i for i, t in enumerate(tokens) if _cutlass3_type(t) is not None), len(tokens))
    head = "_".join(tokens[:head_end])  # s64x256x32gemm, s256x256x16implicit_gemm_fprop, tf32gemm, fprop
    if _TF32 in head:
        fields["math"] = _TF32
    conv = re.search(rf"(?<![a-z])(?:tf32)?({'|'.join(_CONVOLUTIONS)})(?![a-z])", head)
    if conv:
        fields["conv"] = conv.group(1)
    types = []
    for token in tokens[head_end:]:
        read = _cutlass3_type(token)
        if read is None:
            break
        types.append(read)
    rest = tokens[head_end + len(types) :]
    if len(types) >= 5 and rest:  # a sixth, where written, is the epilogue's compute type (convolutions)
        (a, scale_a), (b, _), (acc, _), _, (d, _) = types[:5]
        fields.update(a_dtype=a, b_dtype=b, compute_dtype=acc, out_dtype=d)
        if scale_a:
            fields["scale_dtype"] = scale_a
    while len(rest) > 1 and re.fullmatch(r"[a-z]\d+(?:x[a-z]\d+)+", rest[0]):  # t3xr3xs3: the filter's extent
        rest = rest[1:]
    fields.update(_cutlass3_shape(rest))
    tail_at = max((i + 1 for i, t in enumerate(rest) if _cutlass3_structural(t)), default=0)
    layout = next((t for t in rest[: min(tail_at, len(rest) - 1)] if _LAYOUT_LOWER.match(t)), None)
    if layout:
        fields["layout"] = layout
    tail = rest[tail_at:] if tail_at and fields.get("tile_m") else []
    schedule_end = next((i for i, t in enumerate(tail) if t not in _SCHEDULE_WORDS), len(tail))
    if schedule_end == len(tail) - 1 and any(w.startswith(tail[-1]) for w in _SCHEDULE_WORDS):
        tail = tail[:-1]  # `..._warpspecialized_coop`: the name cut inside a schedule word
    if schedule_end:
        fields["schedule"] = "_".join(tail[:schedule_end])
    if tail[schedule_end:]:
        fields["epilogue"] = "_".join(tail[schedule_end:])
    return KernelInfo(name, "cutlass", **fields)


def _cutlass3_shape(rest: list[str]) -> dict:
    """Tile, cluster and stages at the head of `rest`; each only where a token follows it, so that the last
    token of a name cut short (`..._128x128x6`) is never read."""
    fields: dict = {}
    if len(rest) < 2 or not (tile := _DIMS3.match(rest[0])):
        return fields
    fields["tile_m"], fields["tile_n"], fields["tile_k"] = map(int, tile.groups())
    at = 1
    if len(rest) > 2 and (cluster := _DIMS3.match(rest[1])):
        fields["cluster_m"], fields["cluster_n"] = map(int, cluster.groups()[:2])
        at = 2
    elif rest[1:3] == ["dyn", "cga"]:  # a cluster chosen at launch: nothing to read
        at = 3
    if len(rest) > at + 1 and rest[at].isdigit() and int(rest[at]) > 0:
        fields["stages"] = int(rest[at])
    return fields


def _cutlass3_structural(token: str) -> bool:
    """Tile, cluster, stages, layout and alignment tokens, which come before the schedule and epilogue."""
    return bool(
        _DIMS3.match(token)
        or token.isdigit()
        or token in ("dyn", "cga", *_TENSOR_LAYOUTS)
        or _LAYOUT_LOWER.match(token)
        or re.fullmatch(r"align\d+", token)
    )


def _cutlass3_type(token: str) -> tuple[str | None, str | None] | None:
    """(data type, block-scale type) of one CUTLASS 3.x type token; None where the token is no type."""
    layout = next((lay for lay in _TENSOR_LAYOUTS if token.endswith(lay) and token != lay), None)
    if layout:  # f16nhwc: the CUTLASS profiler's convolution types carry their tensor layout
        token = token[: -len(layout)]
    scaled = re.fullmatch(r"ue(4m3|8m0)x(\w+)", token)
    if scaled and scaled.group(2) in _NAMED_TYPES:
        return _NAMED_TYPES[scaled.group(2)], f"ue{scaled.group(1)}"
    blockwise = re.fullmatch(r"\d+x\d+(\w+?)x(\w+)", token)  # 64x128f32xe4m3: scale blocks 64x128 of f32
    if blockwise and blockwise.group(1) in _NAMED_TYPES and blockwise.group(2) in _NAMED_TYPES:
        return _NAMED_TYPES[blockwise.group(2)], _NAMED_TYPES[blockwise.group(1)]
    if token == "void":
        return None, None
    if token == _TF32:
        return "fp32", None
    return (_NAMED_TYPES[token], None) if token in _NAMED_TYPES else None


# A cute compile-time integer as profilers print it: `cute::C<(int)128>` (torch.profiler) or `cute::C<128>`.
_CUTE_INT = r"cute::C<(?:\(int\))?(\d+)>"
_CUTE_TUPLE = r"cute::tuple<(?:cute::C<(?:\(int\))?\d+>(?:, )?)+\s*>"
_INT_ARG = r"(?:\(int\))?(\d+)"
# GMMA atoms of the TiledMma name the accumulator first: SM90_64x128x16_F32BF16BF16_SS.
_GMMA_ACCUMULATORS = {"F32": "fp32", "F16": "fp16", "S32": "int32"}


def _cutlass_templated(name: str) -> KernelInfo | None:
    """Templated CUTLASS GEMMs as torch.profiler and nsys print them, possibly cut short:
    cutlass::device_kernel<[guard<]cutlass::gemm::kernel::GemmUniversal<..., CollectiveMma<MainloopSm90...<STAGES,
    [more ints,] cute::tuple<cute::C<CM>, ...>, cutlass::gemm::<KernelSchedule>>, cute::tuple<cute::C<TM>, ...>,
    ElementA, StrideA, ElementB, ..., TiledMma<...SM90_..._<ACC>..._SS...>, ...>, CollectiveEpilogue<...
    cutlass::epilogue::<EpilogueSchedule>...> (CUTLASS 3.x; `(int)` before each integer where torch.profiler
    prints it), or cutlass::Kernel<cutlass::gemm::kernel::Gemm...<...GemmShape<TM, TN, TK>...> (2.x)."""
    gemm_kernel_types = (
        r"cutlass::gemm::kernel::\w*Gemm",  # CUTLASS's own GEMM kernels
        r"cutlass::device_kernel<[\w:]*gemm",  # GEMMs built on CUTLASS (vllm::cutlass_3x_gemm_fp8...)
        # a CUTLASS GEMM kernel inside an arch guard (torch's at::cuda::detail::enable_3x_kernel_for_sm9x<...>)
        r"cutlass::device_kernel<[\w:]*<cutlass::gemm",
        r"_ZN7cutlass\w*4gemm6kernel",  # the same, as a mangled name
    )
    if not any(re.search(pattern, name, re.IGNORECASE) for pattern in gemm_kernel_types):
        return None
    fields: dict = {"split_k": _says_split_k(name)}
    # each read only where the name goes on after it: `MainloopSm9` of a name cut short is no sm9
    arch = re.search(r"(?:Mainloop|arch::)Sm(\d+)(?=[A-Za-z_,> ])", name)
    guard = re.search(r"enable_\dx_kernel_for_(sm\d+x?)(?=[<_])", name)  # sm9x: the guard admits any sm90 variant
    if arch:
        fields["arch"] = f"sm{arch.group(1)}"
    elif guard:
        fields["arch"] = guard.group(1)
    elements_from = 0
    mainloop = re.search(rf"Mainloop\w*<{_INT_ARG}, (?:{_INT_ARG}, )*({_CUTE_TUPLE})?", name)
    if mainloop:
        fields["stages"] = int(mainloop.group(1))
        if mainloop.group(3):
            fields["cluster_m"], fields["cluster_n"] = map(int, re.findall(_CUTE_INT, mainloop.group(3))[:2])
            tile = re.compile(_CUTE_TUPLE).search(name, mainloop.end())
            values = re.findall(_CUTE_INT, tile.group(0)) if tile else []
            if len(values) == 3:
                fields["tile_m"], fields["tile_n"], fields["tile_k"] = map(int, values)
                elements_from = tile.end()
    shape = re.search(r"GemmShape<(\d+), (\d+), (\d+)>", name)
    if "tile_m" not in fields and shape:
        fields["tile_m"], fields["tile_n"], fields["tile_k"] = map(int, shape.groups())
    schedule = re.search(r"cutlass::gemm::(Kernel\w+)(?=[,>\s])", name)
    if schedule:
        fields["schedule"] = schedule.group(1)
    epilogue = re.search(r"cutlass::epilogue::(?!collective::|fusion::|thread::)(\w+)(?=[<,>\s])", name)
    if epilogue:
        fields["epilogue"] = epilogue.group(1)
    accumulator = re.search(r"SM\d+_\d+x\d+x\d+_(F32|F16|S32)[A-Z0-9]*_[RS]S", name)
    if accumulator:
        fields["compute_dtype"] = _GMMA_ACCUMULATORS[accumulator.group(1)]
    # whole element types only (followed by `,`, `>`, a space or the end), so that a name cut inside one is not
    # misread (`cutlass::float` of a cut `cutlass::float_e4m3_t` is no `float`)
    element = r"(cutlass::(?:bfloat16_t|half_t|tfloat32_t|float_e\dm\d_t)|(?<!::)\b(?:float|double))(?=[,> .…]|$)"
    elements = re.findall(element, name[elements_from:])
    if elements:
        fields["a_dtype"] = _CUTLASS_ELEMENTS[elements[0]]
        if len(elements) > 1:
            fields["b_dtype"] = _CUTLASS_ELEMENTS[elements[1]]
        if "cutlass::tfloat32_t" in elements[:2]:
            fields["math"] = _TF32
    return KernelInfo(name, "cutlass", **fields)


def _helper(name: str) -> KernelInfo | None:
    if name.removeprefix("void ").startswith(_GEMMBENCH_KERNELS):
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
