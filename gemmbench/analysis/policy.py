"""The thresholds every judgement of gemmbench rests on, in one place, each with the measurement behind it:
when an output is fp32-accurate or wrong, when two times are the same, when a point is flagged, which of
tied backends is preferred, when a fleet's GPU is an outlier.

The thresholds the measurement applies as it goes (a wrong result is an error row; a throttled or unsteady
point is flagged) are the records' (records/flags.py): they say what a row's status and flags mean. Plain
constants: no torch.
"""

from __future__ import annotations

from collections.abc import Callable

from gemmbench.records.flags import RUN_TO_RUN_SPREAD
from gemmbench.records.record import PDL_SUFFIX

# fp32 accumulation over K = 7168 lands near 1e-6, bf16 rounding of the output near 1.5e-3: a relative
# error under 1e-4 means the backend delivers fp32-output semantics, with wide margins on both sides.
FP32_ACCURATE_REL_ERR = 1e-4

# A change within the run-to-run spread (3%, records/flags.py) is "same". Backends this close at one M are
# tied (recommend), and a fleet's GPU must be slower than this to count as slower.
SAME_TOLERANCE = RUN_TO_RUN_SPREAD
# A row flagged noisy or throttled in either run needs a change beyond this to be called faster or
# slower: throttled rows of those runs differed by up to 10.1% (11.0% in another pair), and one
# power-capped point's 100 ms window medians ranged 82-113 us around 93 us (docs/validation.md).
FLAGGED_TOLERANCE = 0.15

# Points a device must be slower at to be called an outlier: one is chance, three are a pattern (a clock
# stuck low slows every point, a bad link or memory the large ones).
OUTLIER_MIN_POINTS = 3

# The order in which tied backends are preferred: the plain PyTorch calls first (nothing to build or
# ship), then the cuBLAS extension's, then the engines' own kernels (the engine ships them), then
# gemmbench's own kernels (Triton's ships with torch); backends not listed (plugins) after them, by name.
PREFERENCE = (
    "mm_out_dtype",
    "linear_cast",
    "upcast",
    "cublas_ext",
    "cublaslt_ext",
    "cublaslt_tuned_ext",
    "flashinfer_router_gemm",
    "sglang_router_gemm",
    "router_small_m",
    "router_small_m_ext",
    "router_small_m_mma",
)


# What a choice saves is stated against the engine's fallback: the tier after a specialised first tier,
# torch.mm with out_dtype (vLLM's GateLinear; docs/design.md, the problem).
FALLBACK_BACKEND = "mm_out_dtype"
# The engines' own producers, in the order `recommend --python` dispatches by where a run holds several
# contexts: FlashInfer's fused residual add + RMSNorm (what precedes the router in DeepSeek-style layers in
# SGLang and vLLM) with PDL, as FlashInfer launches it by default on sm90+, then without, then its plain norm.
ENGINE_CONTEXTS = (
    "flashinfer_fused_add_rmsnorm_pdl",
    "flashinfer_fused_add_rmsnorm",
    "flashinfer_rmsnorm_pdl",
    "flashinfer_rmsnorm",
)


def preference_rank(label: str) -> tuple[int, bool, str]:
    """A backend's place in PREFERENCE; launched with PDL (`+pdl`), just after the same backend without."""
    backend = label.removesuffix(PDL_SUFFIX)
    return (PREFERENCE.index(backend) if backend in PREFERENCE else len(PREFERENCE), label != backend, label)


def tied_by_preference(candidates: list, time_us: Callable, label: Callable) -> list:
    """The `candidates` (rows of one point that qualify) within SAME_TOLERANCE of the fastest by `time_us`,
    in the order of preference of their `label`: the first is the choice, the others are tied with it."""
    if not candidates:
        return []
    fastest = min(map(time_us, candidates))
    tied = [c for c in candidates if time_us(c) <= fastest * (1 + SAME_TOLERANCE)]
    return sorted(tied, key=lambda c: preference_rank(label(c)))


def accurate(status: str, rel_err: float | None, tolerance: float = FP32_ACCURATE_REL_ERR) -> bool:
    """A timed-and-checked row whose relative error is within `tolerance` (default: fp32 output)."""
    return status == "ok" and rel_err is not None and rel_err <= tolerance
