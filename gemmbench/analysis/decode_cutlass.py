"""The grammars of CUTLASS 3.x kernel names (`cutlass3x_sm90_...`, convolutions run as implicit GEMMs) and
of templated CUTLASS kernels as torch.profiler prints them (`cutlass::device_kernel<...>`): docs/kernels.md.
"""

from __future__ import annotations

import re

from gemmbench.analysis.kernel_info import (
    CUTLASS_ELEMENTS,
    DIMS3,
    LAYOUT_LOWER,
    NAMED_TYPES,
    TF32,
    KernelInfo,
    says_split_k,
)

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


def cutlass3(name: str) -> KernelInfo | None:
    """cutlass3x_smXX_<op>_[<instr>]gemm_<A>_<B>_<acc>_<C>_<D>_<TM>x<TN>x<TK>_<CM>x<CN>x<CK>_<STAGES>_<layout>
    _align<N>_<schedule>_<epilogue>: five types by position (C may be `void`), stage count 0 = chosen by
    CUTLASS; block-scaled types `ue4m3xf4` (fp4 data, ue4m3 scales); epilogue tokens (`bias_f16`) come
    after the layout and are not operand types. Convolutions write their kind where GEMMs write `gemm`:
    `<instr>implicit_gemm_fprop_` (cuDNN), `<instr>_conv3d_fprop_<variant>_` (cuDNN), `fprop_` (the CUTLASS
    profiler, its types glued to tensor layouts: `f16nhwc`)."""
    match = re.search(r"\bcutlass3x_(sm\d+[a-z]?)_[a-z]+_(\w*)", name)
    if not match:
        return None
    fields: dict = {"arch": match.group(1), "split_k": says_split_k(name)}
    tokens = match.group(2).split("_")
    if name.rstrip().endswith(_CUT_MARKS) or name[match.end() :].startswith(_CUT_MARKS):
        tokens = tokens[:-1]  # a name cut short: its last token may be cut too
    head_end = next((i for i, t in enumerate(tokens) if _cutlass3_type(t) is not None), len(tokens))
    head = "_".join(tokens[:head_end])  # s64x256x32gemm, s256x256x16implicit_gemm_fprop, tf32gemm, fprop
    if TF32 in head:
        fields["math"] = TF32
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
    layout = next((t for t in rest[: min(tail_at, len(rest) - 1)] if LAYOUT_LOWER.match(t)), None)
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
    if len(rest) < 2 or not (tile := DIMS3.match(rest[0])):
        return fields
    fields["tile_m"], fields["tile_n"], fields["tile_k"] = map(int, tile.groups())
    at = 1
    if len(rest) > 2 and (cluster := DIMS3.match(rest[1])):
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
        DIMS3.match(token)
        or token.isdigit()
        or token in ("dyn", "cga", *_TENSOR_LAYOUTS)
        or LAYOUT_LOWER.match(token)
        or re.fullmatch(r"align\d+", token)
    )


def _cutlass3_type(token: str) -> tuple[str | None, str | None] | None:
    """(data type, block-scale type) of one CUTLASS 3.x type token; None where the token is no type."""
    layout = next((lay for lay in _TENSOR_LAYOUTS if token.endswith(lay) and token != lay), None)
    if layout:  # f16nhwc: the CUTLASS profiler's convolution types carry their tensor layout
        token = token[: -len(layout)]
    scaled = re.fullmatch(r"ue(4m3|8m0)x(\w+)", token)
    if scaled and scaled.group(2) in NAMED_TYPES:
        return NAMED_TYPES[scaled.group(2)], f"ue{scaled.group(1)}"
    blockwise = re.fullmatch(r"\d+x\d+(\w+?)x(\w+)", token)  # 64x128f32xe4m3: scale blocks 64x128 of f32
    if blockwise and blockwise.group(1) in NAMED_TYPES and blockwise.group(2) in NAMED_TYPES:
        return NAMED_TYPES[blockwise.group(2)], NAMED_TYPES[blockwise.group(1)]
    if token == "void":
        return None, None
    if token == TF32:
        return "fp32", None
    return (NAMED_TYPES[token], None) if token in NAMED_TYPES else None


# A cute compile-time integer as profilers print it: `cute::C<(int)128>` (torch.profiler) or `cute::C<128>`.
_CUTE_INT = r"cute::C<(?:\(int\))?(\d+)>"
_CUTE_TUPLE = r"cute::tuple<(?:cute::C<(?:\(int\))?\d+>(?:, )?)+\s*>"
_INT_ARG = r"(?:\(int\))?(\d+)"
# GMMA atoms of the TiledMma name the accumulator first: SM90_64x128x16_F32BF16BF16_SS.
_GMMA_ACCUMULATORS = {"F32": "fp32", "F16": "fp16", "S32": "int32"}


def cutlass_templated(name: str) -> KernelInfo | None:
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
    fields: dict = {"split_k": says_split_k(name)}
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
        fields["a_dtype"] = CUTLASS_ELEMENTS[elements[0]]
        if len(elements) > 1:
            fields["b_dtype"] = CUTLASS_ELEMENTS[elements[1]]
        if "cutlass::tfloat32_t" in elements[:2]:
            fields["math"] = TF32
    return KernelInfo(name, "cutlass", **fields)
