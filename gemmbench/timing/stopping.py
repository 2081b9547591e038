"""When a timer stops sampling: stopping rules as objects that the options choose and the tuners reuse, and
the order statistics they rest on. Plain Python, no torch.

- `Target` (the device timer's default): until the median's 95% interval is within a relative target and
  the samples have settled, for at least a minimum time, or until a budget is spent.
- `FixedTime`: for a given time (the tuners, which compare candidates on equal footing).
- `FixedCount`: a given number of samples (`sweep --samples N`: the same cost on every run).
- `EagerWindows`: how many windows the eager latency samples: at least some, more while their medians
  disagree, up to a cap.

A rule answers `done(values, elapsed_s)`: whether a timer that took `values` (in the order taken) over
`elapsed_s` of its own sampling time may stop; and `done_placed(placements, elapsed_s)`: whether a timer
that samples several sets of buffers in turn (placements, each one's samples in the order taken) may stop,
the sets together costing what one did.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gemmbench.timing.defaults import (
    DEFAULT_BUDGET_MS,
    DEFAULT_TARGET_CI_PCT,
    DEVICE_BUDGET_S,
    DEVICE_MIN_TIME_S,
    DEVICE_TARGET_CI_REL,
    EAGER_WINDOWS,
    MAX_EAGER_WINDOWS,
)

# Fewest samples a timer returns even when the budget runs out: a median and an IQR of fewer mean little.
MIN_SAMPLES = 5
# Fewest samples before the confidence interval of the median is trusted to stop sampling: with fewer,
# the order statistics that bound it are the extremes of the sample.
MIN_SAMPLES_FOR_CI = 20
# Confidence level of the intervals of a median.
CI_LEVEL = 0.95
# A cap on samples per timer (all its placements together): beyond a few thousand the median no longer moves.
MAX_SAMPLES = 4000


@functools.cache
def median_ci_ranks(n: int) -> tuple[int, int]:
    """0-based ranks (low, high) of the order statistics that bound a 95% confidence interval of the
    median of n samples: the narrowest symmetric pair [X(j), X(n+1-j)] whose exact binomial coverage,
    P(j <= B <= n-j) with B ~ Binomial(n, 1/2), is at least 95%. Below n = 6 no pair reaches 95%;
    the extremes are used."""
    log_half_n = n * math.log(0.5)
    tail = 0.0  # P(B <= k)
    j = 1
    for k in range(n // 2):
        tail += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        if 1 - 2 * tail < CI_LEVEL:
            break
        j = k + 1
    return j - 1, n - j


def median_ci(values) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the median, from order statistics (`median_ci_ranks`)."""
    ordered = sorted(values)
    low, high = median_ci_ranks(len(ordered))
    return ordered[low], ordered[high]


def settled(values: Sequence[float], within_rel: float) -> bool:
    """True when the medians of the first and the second half of `values` (in the order taken) are within
    ±`within_rel` of each other, relative to the median of all: no drift left (clocks still ramping)."""
    return settled_placements([values], within_rel)


def settled_placements(placements: Sequence[Sequence[float]], within_rel: float) -> bool:
    """`settled` for placements sampled in turn: the first halves of all placements against their second
    halves, so that a drift over the rounds shows though each placement's samples are few."""
    first = [v for values in placements for v in values[: len(values) // 2]]
    second = [v for values in placements for v in values[len(values) // 2 :]]
    every = first + second
    return abs(statistics.median(first) - statistics.median(second)) <= within_rel * statistics.median(every)


class StoppingRule(Protocol):
    """When a timer stops (the module's docstring)."""

    @property
    def target_ci_rel(self) -> float | None:
        """The interval's relative half-width the timer aims for (a row that misses it is noisy); None: none."""
        ...

    def done(self, values: Sequence[float], elapsed_s: float) -> bool: ...

    def done_placed(self, placements: Sequence[Sequence[float]], elapsed_s: float) -> bool: ...


@dataclass(frozen=True)
class Target:
    """Stop after at least `min_time_s` of sampling, the median's 95% CI within ±`ci_rel` and the medians
    of the first and second half of the samples within ±`ci_rel` / 2 of each other (`settled`), or once
    `budget_s` is spent.

    The settling test matters: on an H200, a timer stopped after ~30 samples (2 ms) right after a point's
    warm-up read 10.4 us for a 5.8 us call, consistently enough to pass the CI test, while the clocks
    were still ramping; samples that still drift have halves apart. A state that holds for the whole
    minimum time is not a drift: after a point's eager windows the GPU is loaded first for that reason
    (clocks.resettle_device). Device-time intervals of a default DeepSeek-V3 sweep were ±0.02-0.2% after
    50 ms (about 220 replays), well inside the target, so most points stop at the minimum time. Missing
    the settling test only costs time: `noisy` says whether the interval met its target.
    """

    ci_rel: float = DEVICE_TARGET_CI_REL
    budget_s: float = DEVICE_BUDGET_S
    min_time_s: float = DEVICE_MIN_TIME_S

    @property
    def target_ci_rel(self) -> float:
        return self.ci_rel

    def done(self, values: Sequence[float], elapsed_s: float) -> bool:
        decided = self._bounds(len(values), len(values), elapsed_s)
        if decided is not None:
            return decided
        return len(values) >= MIN_SAMPLES_FOR_CI and self._within(values) and settled(values, self.ci_rel / 2)

    def done_placed(self, placements: Sequence[Sequence[float]], elapsed_s: float) -> bool:
        """Stop once the confidence interval of the row's median (over its placements' medians, before
        the rerun margin widens it) is within target, or, where the placements differ more than that,
        once each placement's own interval is (more samples do not bring placements together); with the
        samples of all placements settled, after the minimum time; or once the budget is spent. Each
        placement's interval is not asked to meet the target first: on an H100, rows of a default sweep
        took 192-3,168 replays that way (28-31 s of the sweep's GPU time), though the row's interval is
        its placements' medians' (docs/measurement.md). `placements` holds at least one."""
        if len(placements) == 1:
            return self.done(placements[0], elapsed_s)
        counts = [len(values) for values in placements]
        decided = self._bounds(sum(counts), min(counts), elapsed_s)
        if decided is not None:
            return decided
        medians = [statistics.median(values) for values in placements]
        narrow = self._within(medians) or (
            min(counts) >= MIN_SAMPLES_FOR_CI and all(self._within(values) for values in placements)
        )
        return narrow and settled_placements(placements, self.ci_rel / 2)

    def _bounds(self, total: int, fewest: int, elapsed_s: float) -> bool | None:
        """The stops that do not look at the values: the sample cap (`total`, all placements), too few to
        report (`fewest`, one placement's), the budget, the minimum time; None: the values decide."""
        if total >= MAX_SAMPLES:
            return True
        if fewest < MIN_SAMPLES:
            return False
        if elapsed_s >= self.budget_s:
            return True
        if elapsed_s < self.min_time_s:
            return False
        return None

    def _within(self, values: Sequence[float]) -> bool:
        """Whether the 95% interval of the median of `values` is within ±`ci_rel` of it."""
        low, high = median_ci(values)
        middle = statistics.median(values)
        return middle > 0 and (high - low) / 2 / middle <= self.ci_rel


@dataclass(frozen=True)
class FixedTime:
    """Stop after `seconds` of sampling (at least MIN_SAMPLES samples): every candidate a tuner compares
    gets the same time. No interval target."""

    seconds: float

    @property
    def target_ci_rel(self) -> None:
        return None

    def done(self, values: Sequence[float], elapsed_s: float) -> bool:
        return self.done_placed([values], elapsed_s)

    def done_placed(self, placements: Sequence[Sequence[float]], elapsed_s: float) -> bool:
        counts = [len(values) for values in placements]
        return sum(counts) >= MAX_SAMPLES or (min(counts) >= MIN_SAMPLES and elapsed_s >= self.seconds)


@dataclass(frozen=True)
class FixedCount:
    """Stop after `samples` samples: the same cost on every run, whatever the interval. No interval target."""

    samples: int

    @property
    def target_ci_rel(self) -> None:
        return None

    def done(self, values: Sequence[float], elapsed_s: float) -> bool:
        return len(values) >= self.samples

    def done_placed(self, placements: Sequence[Sequence[float]], elapsed_s: float) -> bool:
        """Each of several placements its share of `samples` (at least MIN_SAMPLES)."""
        if len(placements) == 1:
            return self.done(placements[0], elapsed_s)
        return min(map(len, placements)) >= max(MIN_SAMPLES, math.ceil(self.samples / len(placements)))


@dataclass(frozen=True)
class EagerWindows:
    """How many windows the eager latency samples: at least `least`; then, while its interval over the
    window medians is still wider than its steadiness target (`unsteady`), more, up to `most`."""

    least: int = EAGER_WINDOWS
    most: int = MAX_EAGER_WINDOWS

    def wants_more(self, windows: int, unsteady: Callable[[], bool]) -> bool:
        """Whether a call sampled in `windows` windows gets another; `unsteady()` (asked only once it has
        `least`) says whether their medians still disagree."""
        return windows < self.most and (windows < self.least or unsteady())


def rule_options_given(samples: int | None, target_ci_pct: float, budget_ms: float, names: Sequence[str]) -> list[str]:
    """The device timer's options given, by their `names` (samples, target, budget: as the command line or
    the Python API spells them): a value other than its default counts as given."""
    values, defaults = (samples, target_ci_pct, budget_ms), (None, DEFAULT_TARGET_CI_PCT, DEFAULT_BUDGET_MS)
    return [name for name, value, default in zip(names, values, defaults, strict=True) if value != default]


def rule_conflict(given: list[str], samples_name: str) -> str | None:
    """What is wrong where a fixed count (`FixedCount`, named `samples_name`) is given beside the `Target`
    rule's options, which it would ignore; None where it is not."""
    rule = [name for name in given if name != samples_name]
    if samples_name in given and rule:
        return f"{samples_name} asks for a fixed count of samples, so {' and '.join(rule)} would have no effect"
    return None
