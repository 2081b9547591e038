"""How long the timers sample by default: plain constants (no torch), so that the command line can state
them in its help and take its defaults from here. timers.py says why each is what it is."""

from __future__ import annotations

# Per point and backend: calls before timing, so that lazy initialisation (workspaces, a Triton kernel's
# first launch) and caches settle; the device's clocks are warmed once per session before the first
# point (clocks.warm_device), and every call has run once for the correctness check before this.
POINT_WARMUP_S = 0.005

# Device time (CUDA graphs): the target half-width of the median's 95% interval, relative; the sampling
# budget per point; the least sampling time (timers.Target).
DEVICE_TARGET_CI_REL = 0.01
DEVICE_BUDGET_S = 0.2
DEVICE_MIN_TIME_S = 0.01
# ...as the options give them (--target-ci, --budget-ms; target_ci_pct, budget_ms).
DEFAULT_TARGET_CI_PCT = DEVICE_TARGET_CI_REL * 100
DEFAULT_BUDGET_MS = DEVICE_BUDGET_S * 1e3

# Eager latency: at least this many windows per point and backend, each sampling for about this long.
# Window medians of eager mm_out_dtype at M = 2 on one H200 host ranged 22.7-40.9 us over 15 s (the
# host's state moves), so samples of one window are not independent of each other, but windows spread
# over the point are closer to it: the range of 6 independent window medians covers their median with
# probability 1 - 2 * 0.5**6 = 96.9%. A call whose interval is still wider than the steadiness target
# then gets more windows, up to MAX_EAGER_WINDOWS (the 60 ms that six 10 ms windows took before), and
# its interval narrows to the order statistics of more medians (`median_ci_ranks`). A window of a few
# milliseconds holds about a hundred calls of a host-bound GEMM (20-40 us each). stopping.EagerWindows
# applies them.
EAGER_WINDOWS = 6
MAX_EAGER_WINDOWS = 20
EAGER_WINDOW_S = 0.003

# Placements: a point's timers sample several sets of its rotating input copies, each allocated after
# spacers of random size (timing/inputs.py), so that where the buffers land varies between the sets as it
# does between processes, and shows in the interval. On an H100, mm_out_dtype at DeepSeek-V3's router,
# M = 1, once read 6.94 to 7.70 us as one process allocated its copies afresh eight times, where the
# interval of one placement was +-0.1%. Six: the range of six placement medians covers their median with
# probability 1 - 2 * 0.5**6 = 96.9% (timers.median_ci_ranks); three default sweeps on an H100 with six
# had no row faster or slower in any pair (docs/measurement.md). Three, tried in smaller batches, let one
# pair call 3 rows faster and flagged up to 137 of 254 rows noisy. A GPU's default; one on the CPU.
PLACEMENTS = 6
MAX_PLACEMENTS = 64  # more only multiplies the graphs a point captures (each placement's)

# The bounds of the device timer's options, for the command line and the Python API alike: an interval
# from ±0.01% (tighter than any device time holds run to run) to ±100% (as wide as the median itself);
# a budget from 1 ms (a few samples of the slowest rows) to one minute per row, and a warm-up of at most
# ten seconds per point (2000 times the default: beyond, a value is a typo or infinity, which hung a sweep).
MIN_TARGET_CI_PCT, MAX_TARGET_CI_PCT = 0.01, 100.0
MIN_BUDGET_MS, MAX_BUDGET_MS = 1.0, 60_000.0
MAX_WARMUP_MS = 10_000.0
