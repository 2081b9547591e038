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

# Eager latency: windows per point and backend (at least, and at most where the host moved), and each
# window's sampling time (timers.EAGER_WINDOWS).
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
