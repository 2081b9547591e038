"""What a record keeps of one timer: its name and the statistics of its samples, in microseconds.

The timers themselves (gemmbench.timing.timers) keep raw samples; a `TimerSummary` is what survives into
records, run files and exports, and what the analysis and the output read. A sweep's Record carries two
(the eager `latency` and the CUDA-graph `device` time), a GroupRecord four (serial and parallel, each way).
"""

from __future__ import annotations

from dataclasses import dataclass

# Timer names, as written in the `latency_timer` and `device_timer` columns.
EVENTS_TIMER = "cuda_events"  # CUDA events around eager calls, back to back
GRAPH_TIMER = "cuda_graph"  # CUDA-graph replays of unrolled calls, per call
HOST_TIMER = "host_clock"  # a host clock around synchronous CPU calls


@dataclass(frozen=True)
class TimerSummary:
    """One timer's result at one point. Runs saved before confidence intervals existed have none."""

    timer: str
    median_us: float
    iqr_us: float | None = None
    min_us: float | None = None
    # 95% confidence interval of the median; a device time's widened by the rerun margin each side
    # (timing.timers.RERUN_MARGIN_REL: what a rerun in another process reads)
    ci_low_us: float | None = None
    ci_high_us: float | None = None
    samples: int | None = None

    @property
    def interval_us(self) -> tuple[float, float]:
        """The 95% CI of the median, or median ± IQR/2 where the run carries no CI."""
        if self.ci_low_us is not None and self.ci_high_us is not None:
            return self.ci_low_us, self.ci_high_us
        half = (self.iqr_us or 0.0) / 2
        return self.median_us - half, self.median_us + half


def median_of(summary: TimerSummary | None) -> float | None:
    """The median of a timer's summary, or None where that timer did not run."""
    return summary.median_us if summary else None
