"""`recommend --python`: the recommendation as a dispatch function to paste into serving code."""

from __future__ import annotations

import json
import re
import textwrap

from gemmbench.analysis.policy import (
    FP32_ACCURATE_REL_ERR,
    PREFERENCE,
    SAME_TOLERANCE,
)
from gemmbench.analysis.recommend import ShapeRecommendation
from gemmbench.output.recommend import throttle_caveat
from gemmbench.records import Provenance

# Lines of the generated code are wrapped at this width: well inside the line length of common linters
# (this project's ruff allows 120, black 88 for code, not docstrings).
GENERATED_WIDTH = 100


def _identifier(text: str) -> str:
    """`DeepSeek-V3 router` -> `deepseek_v3_router`: a Python name for a GEMM."""
    name = re.sub(r"\W+", "_", text).strip("_").lower()
    return name if name and not name[0].isdigit() else f"gemm_{name}"


def recommendation_python(recommendations: list[ShapeRecommendation], provenance: Provenance, source: str) -> str:
    """A dispatch function per GEMM shape and one by (N, K), as Python to paste into serving code: the M
    thresholds as named constants, a docstring naming the run, GPU and software they were measured on."""
    lines = _module_docstring(recommendations, provenance, source)
    table: list[str] = []
    seen_shapes: dict[tuple[int, int], str] = {}
    for rec in recommendations:
        function = f"{_identifier(f'{rec.model} {rec.gemm}')}_backend"
        lines += _shape_function(rec, function)
        shape = (rec.n, rec.k)
        if shape in seen_shapes:
            table.append(f"    # {shape}: also {function}, measured separately; {seen_shapes[shape]} is used")
        else:
            seen_shapes[shape] = function
            table.append(f"    {shape}: {function},")
    lines += [
        "# (N, K) -> the dispatch function of that GEMM shape",
        "BACKEND_BY_SHAPE = {",
        *table,
        "}",
        "",
        "",
        "def choose_backend(n: int, k: int, m: int) -> str | None:",
        '    """The backend to dispatch for x[m, k] @ w[n, k].T, or None for a shape not measured."""',
        "    if m < 1:",
        '        raise ValueError(f"m is a token count, at least 1: got {m}")',
        "    pick = BACKEND_BY_SHAPE.get((n, k))",
        "    return pick(m) if pick else None",
    ]
    return "\n".join(lines) + "\n"


def _module_docstring(recommendations: list[ShapeRecommendation], provenance: Provenance, source: str) -> list[str]:
    """The generated module's docstring: where and how the thresholds were measured, and how to read them."""
    gpu = provenance.device_name or "unknown device"
    arch = f" ({provenance.arch})" if provenance.arch else ""
    software = ", ".join(
        f"{label} {version}"
        for version, label in (
            (provenance.torch, "torch"),
            (provenance.cuda, "CUDA"),
            (provenance.cublas, "cuBLAS"),
            (provenance.gemmbench, "gemmbench"),
        )
        if version
    )
    tolerance = recommendations[0].tolerance if recommendations else FP32_ACCURATE_REL_ERR
    measured = ", ".join(part for part in (f"{gpu}{arch}", software, provenance.started or "date not recorded") if part)
    paragraphs = [
        f"Measured in {source}: {measured}."
        + (f" Chosen by the {recommendations[0].figure}." if recommendations else "")
        + f" The fastest backend with rel_err <= {tolerance:g} at each measured M; ties within "
        f"{SAME_TOLERANCE:.0%} go to the first of {', '.join(PREFERENCE)}.",
        "Each threshold is the largest M measured in its tier; an M between two measured values gets the "
        "backend of the next tier up, the one measured at the next M; an M above the largest measured gets "
        "None (not measured: a specialised backend may not even run there).",
    ]
    return [
        '"""Which backend to dispatch for each bf16 x bf16 -> fp32 GEMM, by token count M.',
        "",
        *(
            line
            for index, paragraph in enumerate(paragraphs)
            for line in ([""] if index else [])
            + textwrap.fill(
                _docstring_safe(paragraph), GENERATED_WIDTH, break_on_hyphens=False, break_long_words=False
            ).splitlines()
        ),
        '"""',
        "",
    ]


def _docstring_safe(text: str) -> str:
    """`text` (from a run file: its path, its GPU's name) as it may stand in a docstring: backslashes
    doubled (`C:\\Users`, `\\N`), no closing quotes."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _shape_function(rec: ShapeRecommendation, function: str) -> list[str]:
    """One shape's thresholds as named constants and its dispatch function."""
    prefix = function.removesuffix("_backend").upper()
    lines = [f"# {rec.model} {rec.gemm}: x[M, {rec.k}] @ w[{rec.n}, {rec.k}].T"]
    if rec.throttled:
        lines += [f"# {line}" for line in textwrap.wrap(throttle_caveat(rec.throttled), GENERATED_WIDTH - 2)]
    for tier, mrange in enumerate(rec.ranges[:-1], start=1):
        lines.append(f"{prefix}_TIER_{tier}_MAX_M = {mrange.last_m}  # {mrange.backend}")
    if rec.ranges:
        lines.append(f"{prefix}_MAX_MEASURED_M = {rec.ranges[-1].last_m}")
    lines += ["", "", f"def {function}(m: int) -> str | None:"]
    if not rec.ranges:
        lines.append("    return None  # no backend qualified in this run")
    else:
        lines += [f"    if m > {prefix}_MAX_MEASURED_M:", "        return None  # not measured"]
    for tier, mrange in enumerate(rec.ranges[:-1], start=1):
        lines += [f"    if m <= {prefix}_TIER_{tier}_MAX_M:", f"        return {json.dumps(mrange.backend)}"]
    if rec.ranges:
        lines.append(f"    return {json.dumps(rec.ranges[-1].backend)}")
    return lines + ["", ""]
