"""What sizes to run: `--shape MxNxK` or `NxK`, M lists and ranges, and the cases they make. Pure parsing."""

from __future__ import annotations

import re

from gemmbench.errors import UsageError
from gemmbench.spec.cases import CUSTOM_ROLE, MAX_DIMENSION, Case, GemmSpec

# Token counts of a serving engine. Every M from 1 to 16: the decode batches, where a router's first tier runs;
# speculative decoding verifies its drafts plus one token per request, which makes M = 3, 6 or 12 (one, two or
# four requests with two drafts each) as common as the powers of two. Then powers of two from 32 to 16384, up to
# a long prefill chunk.
DEFAULT_M = (*range(1, 17), 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
# Without a GPU: a bf16 GEMM of K=7168 at M=64 takes ~10 ms on 2 CPU cores, so three M values keep
# a default sweep (and its float64 references) well under a minute.
CPU_DEFAULT_M = (1, 8, 64)
# Most values one range may expand to: a typo such as 1:100000:+1 would otherwise queue days of work.
MAX_RANGE_VALUES = 64

_TOO_LARGE = "cuBLAS takes GEMM dimensions as 32-bit integers; give smaller ones"
_SHAPE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$")


def parse_shape(text: str) -> Case | GemmSpec:
    """`MxNxK` -> a custom case, x [M, K] @ w [N, K].T, at its own M; `NxK` -> a custom GEMM, run at the
    M values of --m like a preset's."""
    match = _SHAPE.match(text)
    dims = tuple(int(g) for g in match.groups() if g is not None) if match else ()
    if not dims or min(dims) <= 0:
        raise UsageError(
            f"malformed shape '{text}'",
            "write it as MxNxK or NxK with positive integers, e.g. 16x256x7168 or 256x7168",
        )
    if max(dims) > MAX_DIMENSION:
        raise UsageError(f"shape '{text}' has a dimension above {MAX_DIMENSION}", _TOO_LARGE)
    if len(dims) == 2:
        n, k = dims
        return GemmSpec("custom", f"{n}x{k}", CUSTOM_ROLE, n, k)
    m, n, k = dims
    return Case("custom", f"{n}x{k}", CUSTOM_ROLE, m, n, k)


def parse_m_list(text: str) -> tuple[int, ...]:
    """`1,8,64`, a range `1:16384:x2` (geometric), `8:64:+8` (arithmetic) or `1:16` (every value), or a mix,
    comma-separated."""
    values: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if ":" in item:
            values.update(_parse_m_range(item, text))
        else:
            values.add(_parse_m_value(item, text))
    return tuple(sorted(values))


def _is_ascii_number(text: str) -> bool:
    """Digits 0-9 only: str.isdigit() also accepts '²' and other Unicode digits, which int() refuses."""
    return text.isascii() and text.isdigit()


def _parse_m_value(item: str, whole: str) -> int:
    if not _is_ascii_number(item) or int(item) <= 0:
        raise UsageError(f"bad M value '{item}' in '{whole}'", "give positive integers, e.g. 1,8,64 or 1:16384:x2")
    if int(item) > MAX_DIMENSION:
        raise UsageError(f"M value {item} is above {MAX_DIMENSION}", _TOO_LARGE)
    return int(item)


def _parse_m_range(item: str, whole: str) -> list[int]:
    parts = item.split(":")
    bad = UsageError(
        f"bad M range '{item}'",
        "write START:STOP (every M, e.g. 1:16), START:STOP:xFACTOR (e.g. 1:16384:x2) or START:STOP:+STEP "
        "(e.g. 8:64:+8)",
    )
    if len(parts) == 2:
        parts.append("+1")  # START:STOP: every M from START to STOP
    if len(parts) != 3 or len(parts[2]) < 2 or parts[2][0] not in "x+" or not _is_ascii_number(parts[2][1:]):
        raise bad
    start, stop = _parse_m_value(parts[0], whole), _parse_m_value(parts[1], whole)
    op, step = parts[2][0], int(parts[2][1:])
    if start > stop or (op == "x" and step < 2) or (op == "+" and step < 1):
        raise bad
    values = [start]
    while len(values) <= MAX_RANGE_VALUES:
        nxt = values[-1] * step if op == "x" else values[-1] + step
        if nxt > stop:
            return values
        values.append(nxt)
    raise UsageError(
        f"M range '{item}' expands to more than {MAX_RANGE_VALUES} values", "use a larger step or a smaller range"
    )


def build_cases(gemms: list[GemmSpec], shapes: list[Case], m_values: tuple[int, ...]) -> list[Case]:
    """Every GEMM at every M, then the explicit shapes (which carry their own M); duplicates dropped."""
    cases = [g.case(m) for g in gemms for m in m_values] + list(shapes)
    return list(dict.fromkeys(cases))
