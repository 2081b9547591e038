"""What a point computes on: random operands, the float64 reference and the relative error against it,
and the rotating input copies that keep the L2 cold.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import torch

from gemmbench.spec.cases import DTYPE_BYTES, Case

COLD = "cold"
HOT = "hot"
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# Cold L2: copies of (x, w, out) rotated so that the bytes between two uses of one copy exceed twice
# the L2 (docs/design.md, measurement rules), and never fewer than two, so consecutive calls never share
# buffers.
COLD_L2_FACTOR = 2
MIN_COLD_COPIES = 2
# Tiny cases (or groups) would need thousands of copies; this many already spans 2x L2 for inputs of >= 250 KB.
MAX_COLD_COPIES = 512
# The copies may take at most this share of the free device memory; fewer copies are used otherwise.
COLD_MEMORY_FRACTION = 0.5
# A spacer spans up to more than the largest Hopper L2 (60 MB, H200), so that two placements' offsets are
# unrelated across a whole L2's worth of sets; the small one shifts the allocator's pool of small blocks
# (below 1 MiB: an M = 1 router's x and out live there).
SPACER_MAX_BYTES = 64 << 20
SMALL_SPACER_MAX_BYTES = 1 << 20
SPACER_ALIGN = 512  # the allocator rounds blocks to 512 bytes: smaller steps would not move anything

# The float64 reference and the relative error work on row blocks of about this many bytes of float64:
# a whole float64 copy of x is 4x its bf16 size (172 GB for DeepSeek-V3's router at M = 3,000,000),
# while the reference itself, [M, N] in float64, is small beside x for every preset GEMM.
REFERENCE_BLOCK_BYTES = 256 << 20


@dataclass(frozen=True)
class GemmInputs:
    """Random operands of one case and the output buffer every backend must write into (plugin API,
    importable from gemmbench.backends).

    The sweep poisons `out` with NaN before the correctness check, so a backend that does not write
    its whole output fails instead of passing on a stale result.
    """

    x: torch.Tensor  # [M, K]
    w: torch.Tensor  # [N, K]
    out: torch.Tensor  # [M, N], fp32


def host_memory_available() -> int | None:
    """Bytes the host can still give without swapping (MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _checking_bytes(case: Case) -> int:
    """What checking one case holds at once: its operands and output, a pristine copy of the operands (to
    tell whether a backend wrote into them), w in float64 and the float64 reference with one row block of x
    (`reference`)."""
    operands = (case.m + case.n) * case.k * DTYPE_BYTES[case.in_dtype]
    float64 = 8 * (case.n * case.k + case.m * case.n) + REFERENCE_BLOCK_BYTES
    return case.bytes_moved + operands + float64


def _check_host_memory(case: Case) -> None:
    """On the CPU, refuse inputs that cannot fit before allocating them: where the kernel overcommits
    memory, an oversized allocation succeeds and the process is killed when it is written; where it does
    not, making the operands takes minutes before the float64 copy fails."""
    needed = _checking_bytes(case)
    available = host_memory_available()
    if available is not None and needed > available:
        raise MemoryError(f"checking it needs {needed / 1e9:,.1f} GB, the host has {available / 1e9:,.1f} GB available")


def make_inputs(case: Case, device: torch.device, seed: int) -> GemmInputs:
    """Random normal operands (never zeros: they run faster and hide unwritten outputs)."""
    if device.type == "cpu":
        _check_host_memory(case)
    generator = torch.Generator(device=device).manual_seed(seed)
    dtype = TORCH_DTYPES[case.in_dtype]
    x = torch.randn(case.m, case.k, device=device, dtype=dtype, generator=generator)
    w = torch.randn(case.n, case.k, device=device, dtype=dtype, generator=generator)
    out = torch.empty(case.m, case.n, device=device, dtype=TORCH_DTYPES[case.out_dtype])
    return GemmInputs(x, w, out)


def _row_blocks(rows: int, row_bytes: int) -> list[slice]:
    """Slices of about REFERENCE_BLOCK_BYTES each over `rows` rows of `row_bytes` bytes."""
    step = max(1, REFERENCE_BLOCK_BYTES // max(1, row_bytes))
    return [slice(start, start + step) for start in range(0, rows, step)]


def reference(inputs: GemmInputs) -> torch.Tensor:
    """x @ w.T in float64, on the same device, computed in row blocks of x."""
    x, w64 = inputs.x, inputs.w.double()
    ref = torch.empty(x.shape[0], w64.shape[0], dtype=torch.float64, device=x.device)
    for rows in _row_blocks(x.shape[0], x.shape[1] * 8):
        torch.mm(x[rows].double(), w64.t(), out=ref[rows])
    return ref


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64, in row blocks; NaN when any element of `out` is NaN (e.g. never
    written)."""
    diff_sq = ref_sq = torch.zeros((), dtype=torch.float64, device=ref.device)
    for rows in _row_blocks(ref.shape[0], ref.shape[1] * 8):
        block = ref[rows]
        diff_sq = diff_sq + (out[rows].double() - block).square().sum()
        ref_sq = ref_sq + block.square().sum()
    return (diff_sq / ref_sq).sqrt().item()


# What a backend's call that left its output unwritten is told.
OUT_CONTRACT = "a backend's call computes into inputs.out and returns it"


# What a backend's call that wrote into its inputs is told.
INPUTS_CONTRACT = "a backend must only write out"


def written_into(current: GemmInputs, pristine: GemmInputs, names: tuple[str, ...] = ("x", "w")) -> list[str]:
    """Which of the inputs `names` differ from their `pristine` copies: a call wrote into them."""
    return [name for name in names if not torch.equal(getattr(current, name), getattr(pristine, name))]


def unwritten(out: torch.Tensor, ref: torch.Tensor) -> str:
    """What of `out`, poisoned with NaN before the call, the call never wrote: the outputs still NaN where the
    reference is not (inputs with NaN, a producer writing NaN, give a NaN result there too), as "never wrote
    out" or "left N of T outputs unwritten"; '' where it wrote them all."""
    expected = ~ref.isnan()
    left, total = int((out.isnan() & expected).sum()), int(expected.sum())
    if not left:
        return ""
    return "never wrote out" if left == total else f"left {left} of {total} outputs unwritten (still NaN)"


def l2_mode(device: torch.device, requested: str) -> str | None:
    """The L2 mode of a sweep's rows; None on the CPU, where gemmbench does not manage caches."""
    return requested if device.type == "cuda" else None


def cold_copies(bytes_per_copy: int, l2_bytes: int, free_bytes: int, most: int = MAX_COLD_COPIES) -> tuple[int, int]:
    """(copies to use, copies wanted) of inputs of `bytes_per_copy` bytes (one case's, or a whole group's)
    so that rotating them keeps every call's inputs out of L2; at most `most`."""
    wanted = min(most, max(MIN_COLD_COPIES, math.ceil(COLD_L2_FACTOR * l2_bytes / bytes_per_copy)))
    fitting = max(1, int(COLD_MEMORY_FRACTION * free_bytes // bytes_per_copy))
    return min(wanted, fitting), wanted


def device_cold_copies(bytes_per_copy: int, device: torch.device, most: int = MAX_COLD_COPIES) -> tuple[int, int]:
    """`cold_copies` for this GPU's L2 and its free memory now."""
    l2_bytes = torch.cuda.get_device_properties(device).L2_cache_size
    return cold_copies(bytes_per_copy, l2_bytes, torch.cuda.mem_get_info(device)[0], most)


def cold_note(count: int, wanted: int) -> str:
    """A row's note where fewer copies than wanted fit in memory."""
    return "" if count == wanted else f"cold L2: only {count} of {wanted} input copies fit in memory"


# What makes one set of a case's inputs: random ones (make_inputs), or the user's where they fit.
MakeInputs = Callable[[Case, torch.device, int], GemmInputs]


def input_copies(
    case: Case, device: torch.device, seed: int, cold: bool, make: MakeInputs = make_inputs
) -> tuple[list[GemmInputs], str]:
    """One set of inputs, or (`cold`, on a GPU) enough rotating copies to keep L2 cold; and a note
    where fewer copies than wanted fit in memory. The first copy is the one the correctness check uses."""
    first = make(case, device, seed)
    if not cold or device.type != "cuda":
        return [first], ""
    count, wanted = device_cold_copies(case.bytes_moved, device)
    copies = [first] + [make(case, device, seed + i) for i in range(1, count)]
    return copies, cold_note(count, wanted)


Set = TypeVar("Set")  # what one placement holds: a point's copies, a group's calls


@dataclass
class Placements(Generic[Set]):
    """Sets of what a point computes on (its rotating copies), the first as made, each further one after
    spacers of random size, kept alive with them so that no set takes another's blocks."""

    sets: list[Set]
    spacers: list[torch.Tensor]
    note: str = ""  # where fewer copies, or fewer placements, than wanted fit in memory

    @property
    def first(self) -> Set:
        return self.sets[0]


def spacers(device: torch.device, rng: random.Random) -> list[torch.Tensor]:
    """A large and a small allocation of random sizes, so that what is allocated next lands elsewhere."""
    return [
        torch.empty(rng.randrange(SPACER_ALIGN, most, SPACER_ALIGN), dtype=torch.uint8, device=device)
        for most in (SPACER_MAX_BYTES, SMALL_SPACER_MAX_BYTES)
    ]


def placements_fitting(wanted: int, bytes_per_set: int, device: torch.device) -> int:
    """How many of `wanted` placements of `bytes_per_set` bytes and their spacers fit in the share of the
    free device memory that input copies may take (the first one made already); at least one."""
    if wanted <= 1 or device.type != "cuda":
        return max(1, wanted)
    per_set = bytes_per_set + SPACER_MAX_BYTES + SMALL_SPACER_MAX_BYTES
    return max(1, min(wanted, 1 + int(COLD_MEMORY_FRACTION * torch.cuda.mem_get_info(device)[0] // per_set)))


def placed(make_set: Callable[[], tuple[Set, str]], device: torch.device, wanted: int, seed: int) -> Placements[Set]:
    """`wanted` sets made by `make_set` (which returns a set and its note), as many as fit in memory: the
    first as made, each further one after spacers of random size (drawn from `seed`)."""
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    first, note = make_set()
    used = torch.cuda.memory_allocated(device) - before if device.type == "cuda" else 0
    count = placements_fitting(wanted, used, device)
    rng = random.Random(seed)
    placements = Placements([first], [], note)
    for _ in range(1, count):
        placements.spacers.extend(spacers(device, rng))
        placements.sets.append(make_set()[0])
    if count < wanted:
        placements.note = "; ".join(n for n in (note, f"placements: only {count} of {wanted} fit in memory") if n)
    return placements


def placed_copies(
    case: Case, device: torch.device, seed: int, cold: bool, placements: int, make: MakeInputs = make_inputs
) -> Placements:
    """`input_copies` in `placements` sets (fewer where memory is short), each set the same values."""
    return placed(lambda: input_copies(case, device, seed, cold, make), device, placements, seed)


def rotating(calls: list[Callable[[], object]]) -> Callable[[], object]:
    """One callable that runs the next of `calls` on each call, round-robin (cold-L2 timing)."""
    if len(calls) == 1:
        return calls[0]
    upcoming = itertools.cycle(calls)
    return lambda: next(upcoming)()
