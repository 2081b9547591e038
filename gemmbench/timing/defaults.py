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
