"""What a row's status and flags mean: the thresholds the measurement applies as it sets them (an error
row for a wrong result, `throttled`, `noisy`, the routing check's size), which the tables' legends state.
Plain constants, below both the measurement and the analysis that read them.
"""

from __future__ import annotations

# Two back-to-back runs of the same sweep on an H200: the rows that kept their clocks differed by at most
# 2.95% (95th percentile 1.7%; docs/validation.md). What a rerun reads within this is the same figure
# (analysis/policy.py SAME_TOLERANCE), and a clock within it of its maximum is not a throttle.
RUN_TO_RUN_SPREAD = 0.03

# A relative error above this is not rounding (bf16 rounding of the output gives ~1.5e-3): the output
# was not written, or is wrong. Such a row is an error and is not timed.
WRONG_RESULT_REL_ERR = 1e-2

# A point whose SM clock fell below this fraction of the maximum SM clock is throttled. A time moves at most
# in proportion to the SM clock, so a clock within the run-to-run spread (RUN_TO_RUN_SPREAD) of its maximum
# cannot move a row beyond that spread. NVML's power-cap reason alone does not flag a row: on an H100 it
# was reported at 87 of 122 rows of a default sweep while the SM clock read 1965 of 1980 MHz (0.8% down).
THROTTLE_CLOCK_FRACTION = 1 - RUN_TO_RUN_SPREAD
# An eager figure whose window medians spread beyond ± this share of the median (the 95% interval of
# its median over the windows: their range for six, inner order statistics for more) did not hold steady
# over its point; it is flagged noisy. Device times spread far less (docs/validation.md).
EAGER_STEADY_CI_REL = 0.05

# Tokens per routing check: a mismatch share of ~10% is then known to about ±0.7% (one standard error).
ROUTING_TOKENS = 2048
