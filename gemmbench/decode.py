"""Decode GPU kernel names into what they say: family, architecture, dtypes, tile, cluster, split-K.

Pure string work, no torch: it reads names recorded on any GPU (sm90, sm100, ...) on any machine.

Forms handled (examples in docs/design.md, what was measured, and tests/test_decode.py):
- nvjet (cuBLASLt): nvjet_[smXX_]<types>_<TM>x<TN>_<TK>x<STAGES>_<CM>x<CN>[_2cta]_<v|h>_<flags...>_<layout>
  with <types> of 3 letters ([A and B][compute][C and D]) or 5 ([A][B][C][compute][D]).
- cuBLAS xmma: smXX_xmma_gemm_<A><B>_<out><acc>_<scale>_<layout>_..._tilesize<TM>x<TN>x<TK>_stage<S>_...
- CUTLASS 2.x: cutlass_<XX>_<tensorop|simt|wmma_tensorop>_[<in>_]<instr>gemm[_<epilogue>][_<out>]
  _<TM>x<TN>_<TK>x<S>_<layout>_align<A>,
  also inside templates (void cutlass::Kernel2<cutlass_80_simt_sgemm_...>(...)); CUTLASS 3.x cutlass3x_smXX_... names.
- helpers: cuBLASLt split-K reduce, cuBLAS gemv, PyTorch elementwise kernels (copies, casts), memset.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

FAMILIES = ("nvjet", "xmma", "cutlass", "splitk_reduce", "gemv", "elementwise", "memset", "other")
GEMM_FAMILIES = ("nvjet", "xmma", "cutlass", "gemv")

# nvjet type letters (cuBLASLt's naming).
_NVJET_TYPES = {"h": "fp16", "s": "fp32", "t": "bf16", "q": "fp8_e4m3", "o": "fp4_e2m1"}
# dtype spellings in xmma and CUTLASS names.
_NAMED_TYPES = {
    "bf16": "bf16",
    "f16": "fp16",
    "fp16": "fp16",
    "f32": "fp32",
    "fp32": "fp32",
    "tf32": "tf32",
    "e4m3": "fp8_e4m3",
}
# CUTLASS 2.x instruction prefixes: the letter is the accumulator type.
_INSTR_ACC = {"s": "fp32", "h": "fp16", "d": "fp64", "i": "int32"}
# CUTLASS SIMT kernels name the whole GEMM's type: sgemm is fp32 throughout, and so on.
_SIMT_GEMM = {"sgemm": "fp32", "hgemm": "fp16", "dgemm": "fp64"}

_DIMS2 = re.compile(r"^(\d+)x(\d+)$")
_LAYOUT = re.compile(r"^[TN]{2,4}$")


@dataclass(frozen=True)
class KernelInfo:
    name: str
    family: str = "other"
    arch: str | None = None
    a_dtype: str | None = None
    b_dtype: str | None = None
    out_dtype: str | None = None
    compute_dtype: str | None = None
    tile_m: int | None = None
    tile_n: int | None = None
    tile_k: int | None = None
    stages: int | None = None
    cluster_m: int | None = None
    cluster_n: int | None = None
    split_k: bool | None = None
    layout: str | None = None

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
        return f"{text} (acc {self.compute_dtype})" if self.compute_dtype else text

    @property
    def tile(self) -> str:
        if self.tile_m is None:
            return ""
        return f"{self.tile_m}x{self.tile_n}" + (f"x{self.tile_k}" if self.tile_k else "")

    @property
    def cluster(self) -> str:
        return "" if self.cluster_m is None else f"{self.cluster_m}x{self.cluster_n}"


def decode(name: str) -> KernelInfo:
    """Decode one kernel name; unknown names give family 'other', never an exception."""
    for decoder in (_nvjet, _xmma, _cutlass, _helper):
        info = decoder(name)
        if info is not None:
            return info
    return KernelInfo(name)


def _nvjet(name: str) -> KernelInfo | None:
    match = re.search(r"\bnvjet_\w+", name)
    if not match:
        return None
    tokens = match.group(0).split("_")[1:]
    fields: dict = {"split_k": "splitK" in tokens}
    if tokens and re.fullmatch(r"sm\d+[a-z]?", tokens[0]):
        fields["arch"] = tokens.pop(0)
    if tokens and re.fullmatch(r"[a-z]{3}|[a-z]{5}", tokens[0]):
        letters = [_NVJET_TYPES.get(c) for c in tokens.pop(0)]
        if len(letters) == 3:
            fields.update(a_dtype=letters[0], b_dtype=letters[0], compute_dtype=letters[1], out_dtype=letters[2])
        else:
            fields.update(a_dtype=letters[0], b_dtype=letters[1], compute_dtype=letters[3], out_dtype=letters[4])
    dims = [tuple(map(int, m.groups())) for t in tokens[:3] if (m := _DIMS2.match(t))]
    if len(dims) == 3:
        (
            (fields["tile_m"], fields["tile_n"]),
            (fields["tile_k"], fields["stages"]),
            (fields["cluster_m"], fields["cluster_n"]),
        ) = dims
    if tokens and _LAYOUT.match(tokens[-1]):
        fields["layout"] = tokens[-1]
    return KernelInfo(name, "nvjet", **fields)


def _xmma(name: str) -> KernelInfo | None:
    match = re.search(r"\b(sm\d+)_xmma_gemm_(\w+)", name)
    if not match:
        return None
    fields: dict = {"arch": match.group(1), "split_k": _says_split_k(name)}
    tokens = match.group(2).split("_")
    # <A><B>_<out><acc>_<scale>: each group is two dtype names run together (bf16bf16, f32f32).
    type_pairs = [_two_types(t) for t in tokens[:2]]
    if all(type_pairs):
        (fields["a_dtype"], fields["b_dtype"]), (fields["out_dtype"], fields["compute_dtype"]) = type_pairs
    layouts = [t for t in tokens if re.fullmatch(r"[tn]{2}", t)]
    if layouts:
        fields["layout"] = layouts[0]
    tile = re.search(r"tilesize(\d+)x(\d+)x(\d+)", name)
    if tile:
        fields["tile_m"], fields["tile_n"], fields["tile_k"] = map(int, tile.groups())
    stage = re.search(r"_stage(\d+)", name)
    if stage:
        fields["stages"] = int(stage.group(1))
    return KernelInfo(name, "xmma", **fields)


def _says_split_k(name: str) -> bool | None:
    """xmma and CUTLASS names mention split-K only when they use it; silence is not a 'no'."""
    return True if "splitk" in name.lower() else None


def _two_types(token: str) -> tuple[str, str] | None:
    match = re.fullmatch(r"(bf16|tf32|f16|f32|e4m3)(bf16|tf32|f16|f32|e4m3)", token)
    return (_NAMED_TYPES[match.group(1)], _NAMED_TYPES[match.group(2)]) if match else None


def _cutlass(name: str) -> KernelInfo | None:
    match = re.search(r"\bcutlass3x_(sm\d+)_\w+", name)
    if match:
        return _cutlass3(name, match.group(0), match.group(1))
    match = re.search(r"\bcutlass_(\d+)_(\w+)", name)
    if not match:
        return None
    fields: dict = {"arch": f"sm{match.group(1)}", "split_k": _says_split_k(name)}
    tokens = match.group(2).split("_")
    instr_index = next((i for i, t in enumerate(tokens) if t.endswith("gemm")), None)
    if instr_index is not None:
        instr = re.sub(r"\d+", "", tokens[instr_index])  # s16816gemm -> sgemm
        before = [_NAMED_TYPES[t] for t in tokens[:instr_index] if t in _NAMED_TYPES]
        after = [_NAMED_TYPES[t] for t in tokens[instr_index + 1 :] if t in _NAMED_TYPES]
        if "simt" in tokens[:instr_index] and instr in _SIMT_GEMM:
            dtype = _SIMT_GEMM[instr]
            fields.update(a_dtype=dtype, b_dtype=dtype, out_dtype=dtype, compute_dtype=dtype)
        else:
            fields["compute_dtype"] = _INSTR_ACC.get(instr[0])
            if before:
                fields["a_dtype"] = fields["b_dtype"] = before[0]
            if after:
                fields["out_dtype"] = after[-1]
    dims = [tuple(map(int, m.groups())) for t in tokens if (m := _DIMS2.match(t))]
    if len(dims) >= 2:
        (fields["tile_m"], fields["tile_n"]), (fields["tile_k"], fields["stages"]) = dims[:2]
    layouts = [t for t in tokens if re.fullmatch(r"[tn]{2,3}", t)]
    if layouts:
        fields["layout"] = layouts[0]
    return KernelInfo(name, "cutlass", **fields)


def _cutlass3(name: str, body: str, arch: str) -> KernelInfo:
    """CUTLASS 3.x: ..._<A>_<B>_<acc>_<C>_<D>_<TM>x<TN>x<TK>_<CM>x<CN>x<CK>_..._<layout>_align<A>..."""
    fields: dict = {"arch": arch, "split_k": _says_split_k(name)}
    tokens = body.split("_")
    types = [_NAMED_TYPES[t] for t in tokens if t in _NAMED_TYPES]
    if len(types) >= 3:
        fields.update(a_dtype=types[0], b_dtype=types[1], compute_dtype=types[2], out_dtype=types[-1])
    dims3 = [tuple(map(int, t.split("x"))) for t in tokens if re.fullmatch(r"\d+x\d+x\d+", t)]
    if dims3:
        fields["tile_m"], fields["tile_n"], fields["tile_k"] = dims3[0]
    if len(dims3) > 1:
        fields["cluster_m"], fields["cluster_n"] = dims3[1][:2]
    layouts = [t for t in tokens if re.fullmatch(r"[tn]{2,3}", t)]
    if layouts:
        fields["layout"] = layouts[0]
    return KernelInfo(name, "cutlass", **fields)


def _helper(name: str) -> KernelInfo | None:
    lowered = name.lower()
    if "splitkreduce" in lowered:
        return KernelInfo(name, "splitk_reduce", split_k=True)
    if re.search(r"gemv|gemvx|gemvn", lowered):
        return KernelInfo(name, "gemv")
    if "memset" in lowered:
        return KernelInfo(name, "memset")
    if "elementwise_kernel" in lowered or "at::native::" in name and "copy" in lowered:
        return KernelInfo(name, "elementwise")
    return None


def short_name(name: str, width: int = 72) -> str:
    """A kernel name for tables: return type and template arguments of C++ names elided, long names cut.

    `std::enable_if<...>::type internal::gemvx::kernel<int, ...>(...)` -> `internal::gemvx::kernel<…>`.
    """
    if "<" in name and not name.startswith(("nvjet", "sm", "cutlass")):
        name = re.sub(r"^(void\s+|std::enable_if<.*?>::type\s+)", "", name)
        head = name.split("<", 1)[0]
        inner = re.search(r"(direct_copy_kernel_cuda|copy_kernel|fill_kernel|cutlass_\w+)", name)
        name = f"{head}<{inner.group(1)}…>" if inner else f"{head}<…>"
    return name if len(name) <= width else name[: width - 1] + "…"


def gemm_kernel(names: list[str]) -> str | None:
    """The GEMM kernel among a call's kernels (the first of a GEMM family), if any."""
    return next((n for n in names if decode(n).is_gemm), None)
