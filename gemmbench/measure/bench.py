"""What every measurement of a session shares, sweep points and groups alike: the options, the device
warm-up (once, before the first timed call), the clock watch around each timed call, the per-call warm-up,
the eager latency sampled in windows interleaved between the calls compared at a point, the CUDA-graph
device time, and what a failure becomes in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch

from gemmbench.backends import Backend, ext
from gemmbench.backends.registry import ask_unavailable, is_query_failure
from gemmbench.errors import BACKEND_FAILURES, described, first_line
from gemmbench.measure.layers import Timed, Unit
from gemmbench.measure.routing_data import RoutingData
from gemmbench.records import ERROR, SKIPPED, ClockSummary
from gemmbench.records.provenance import Roofline
from gemmbench.records.record import label_of
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER, HOST_TIMER
from gemmbench.spec.cases import Case
from gemmbench.timing import defaults, timers
from gemmbench.timing.clocks import ClockReading, ClockWatch, assess, resettle_device, warm_device
from gemmbench.timing.defaults import POINT_WARMUP_S
from gemmbench.timing.inputs import COLD
from gemmbench.timing.stopping import EagerWindows, StoppingRule, Target
from gemmbench.timing.timers import Samples

# An error row keeps the first line of the exception's message, cut to this many characters.
MAX_ERROR_CHARS = 300
# A graph-timer failure is a note on a row that keeps its eager latency; its message is cut to this.
MAX_NOTE_CHARS = 200


def ignore(*_args) -> None:
    """The default of every optional callback (note, warn, progress): nothing."""
    return None


@dataclass(frozen=True)
class MeasureOptions:
    warmup_s: float = POINT_WARMUP_S
    target: StoppingRule = field(default_factory=Target)  # the device-time timer's stopping rule
    eager_windows: int = defaults.EAGER_WINDOWS  # at least; up to max_eager_windows where the host moved
    max_eager_windows: int = defaults.MAX_EAGER_WINDOWS
    eager_window_s: float = defaults.EAGER_WINDOW_S
    l2: str = COLD  # "cold": rotate input copies past the L2; "hot": one set of buffers
    seed: int = 0
    time_calls: bool = True  # False: check and profile only (`gemmbench kernels`)
    capture_kernels: bool = True  # a torch.profiler pass per point, after every point is timed
    roofline: Roofline | None = None  # measured device limits; gives each row its floor
    keep_samples: bool = False  # rows keep their timers' raw samples beside the summaries
    placements: int = 1  # sets of input buffers allocated apart that a point's timers sample (defaults.PLACEMENTS)
    routing_data: RoutingData | None = None  # the user's router weight, bias, hidden states; None: synthetic


class Bench:
    """The device and options of one session, and the state its measurements share: the clock watch, and
    whether the device is warm. `warn` is told, once, where the clock columns will stay empty."""

    def __init__(self, device: torch.device, options: MeasureOptions, warn: Callable[[str], None] = ignore):
        self.device = device
        self.options = options
        self.clocks = ClockWatch(device)
        self._warm = device.type != "cuda" or not options.time_calls
        if device.type == "cuda" and self.clocks.unavailable and options.time_calls:
            warn(f"no clock watch: {self.clocks.unavailable}; the clock and throttle columns stay empty")

    @property
    def l2_mode(self) -> str | None:
        """The L2 mode of the session's rows; None on the CPU, where gemmbench does not manage caches."""
        return self.options.l2 if self.device.type == "cuda" else None

    @property
    def streams_unavailable(self) -> str | None:
        """Why groups cannot run on streams here (the CPU has none), as their rows' reason; None: they can."""
        return None if self.device.type == "cuda" else "CUDA streams need a CUDA device"

    @property
    def cold(self) -> bool:
        return self.options.l2 == COLD and self.options.time_calls and self.device.type == "cuda"

    def warm_device(self) -> None:
        """Let the clocks settle before the session's first timed call (they ramp from idle)."""
        if not self._warm:
            warm_device(self.device, self.clocks)
            self._warm = True

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def release(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def warm_up(self, call: Callable[[], object]) -> None:
        """Calls before timing, for the options' warm-up time."""
        timers.warm_up(call, self.options.warmup_s, self.sync)

    def read_clocks(self) -> ClockReading | None:
        return self.clocks.read()

    def clock_summary(self, *readings: ClockReading | None) -> ClockSummary | None:
        """The clock watch's summary of the readings that bound a row's timers; None without NVML."""
        return assess(list(readings), self.clocks.max_sm_mhz) if readings and all(readings) else None

    def eager_latency(
        self, calls: dict[Hashable, list[Callable[[], object]]]
    ) -> tuple[dict[Hashable, Samples], dict[Hashable, Exception]]:
        """Eager latency of each call, in rounds of one window per call, in turn: the calls of a point are
        sampled under the same host states. Each call is a list of its placements (the same call on
        another set of buffers), and its windows take them in turn. After `eager_windows` rounds, the calls
        whose interval is still wider than the steadiness target go on, in rounds of their own, until it is
        met or they have `max_eager_windows`. A call that raises is dropped, with its exception. On a GPU,
        the device is then loaded briefly (clocks.resettle_device), so that the device timers of every
        point start from the same loaded state."""
        timer = EVENTS_TIMER if self.device.type == "cuda" else HOST_TIMER
        windows: dict[Hashable, list[list[float]]] = {key: [] for key in calls}
        failures: dict[Hashable, Exception] = {}

        rule = EagerWindows(self.options.eager_windows, self.options.max_eager_windows)

        def unsteady(key: Hashable) -> bool:
            count = len(windows[key])
            return key not in failures and rule.wants_more(
                count, lambda: Samples.from_windows(timer, windows[key]).noisy
            )

        while round_keys := [key for key in calls if unsteady(key)]:
            for key in round_keys:
                placed = calls[key][len(windows[key]) % len(calls[key])]
                try:
                    windows[key].append(timers.sample_window(placed, timer, self.options.eager_window_s))
                except BACKEND_FAILURES as exc:  # the caller turns it into this call's error row
                    failures[key] = exc
        samples = {key: Samples.from_windows(timer, w) for key, w in windows.items() if key not in failures}
        if calls and self.device.type == "cuda":
            resettle_device(self.device)
        return samples, failures

    def device_time(self, unit: Unit, upper_bound_us: float, rule: StoppingRule | None = None) -> Samples:
        """CUDA-graph device time of `unit`, whose call has run eagerly before; `upper_bound_us` is any
        figure at least its device time (the eager latency). Each replay runs every one of the unit's
        layers equally often, so rotation continues across replays. Sampled by `rule`, by default the
        options' target."""
        unroll = timers.fit_graph_unroll(unit.call, upper_bound_us, multiple_of=unit.layers)
        return timers.time_graph(unit.call, rule or self.options.target, unroll)

    def time_units(self, units: dict[Hashable, list[Unit]]) -> tuple[dict[Hashable, Timed], dict[Hashable, Exception]]:
        """The one measurement of a point (measure/layers.py). Each unit comes in placements: the same
        calls on sets of buffers allocated apart (timing/inputs.py), so that where its buffers landed
        shows in its interval. Every unit warmed up (its first placement for the warm-up time, the others
        once), its eager latency sampled in windows in turn with the others' (placements in turn), then (on
        a GPU) every placement captured in a CUDA graph of whole rotations of its layers and all graphs of
        the point sampled in rounds until the timer's rule is met for each unit (`done_placed`); a unit's
        device time is then the median of its placements' medians, its interval theirs
        (`Samples.from_windows`). A unit that fails is dropped, with its exception; one that cannot be
        captured keeps its eager latency, with a note."""
        failures: dict[Hashable, Exception] = {}
        for key, placements in units.items():
            try:
                self.warm_up(placements[0].call)
                for unit in placements[1:]:
                    unit.call()
            except BACKEND_FAILURES as exc:  # the caller turns it into this unit's error row
                failures[key] = exc
        calls = {key: [unit.call for unit in placements] for key, placements in units.items() if key not in failures}
        latency, eager_failures = self.eager_latency(calls)
        failures.update(eager_failures)
        if self.device.type != "cuda":
            return {key: Timed(samples, None) for key, samples in latency.items()}, failures
        graphs, notes = {}, {}
        for key, samples in latency.items():
            try:
                graphs[key] = self._capture(units[key], samples.min_us)
            except BACKEND_FAILURES as exc:  # a call that cannot be captured still has its eager latency
                if is_allocation_failure(exc):
                    raise
                notes[key] = graph_failure_note(exc)
        rule = self.options.target
        device = timers.time_placed_graphs(graphs, rule)
        del graphs
        timed = {}
        for key, samples in latency.items():
            placed = device.get(key, [])
            timed[key] = Timed(samples, placement_samples(placed, rule.target_ci_rel), notes.get(key, ""))
        return timed, failures

    @staticmethod
    def _capture(placements: list[Unit], upper_bound_us: float) -> list[tuple[torch.cuda.CUDAGraph, int]]:
        """A CUDA graph of each placement of a unit, all of one size (fitted on the first), with that size."""
        unroll = timers.fit_graph_unroll(placements[0].call, upper_bound_us, multiple_of=placements[0].layers)
        return [(timers.capture_graph(unit.call, unroll), unroll) for unit in placements]


def placement_samples(placed: list[tuple[float, ...]], target_ci_rel: float | None) -> Samples | None:
    """A unit's device time from its placements' samples: their pooled samples, with the median and the
    interval of the placements' medians where there are several (None where there are none); the reported
    interval widened by the rerun margin (timers.RERUN_MARGIN_REL)."""
    margin = timers.RERUN_MARGIN_REL
    if not placed:
        return None
    if len(placed) == 1:
        return Samples(GRAPH_TIMER, placed[0], target_ci_rel, rerun_margin_rel=margin)
    return Samples.from_windows(GRAPH_TIMER, [list(v) for v in placed], target_ci_rel, rerun_margin_rel=margin)


@dataclass(frozen=True)
class Variant:
    """What one row measures: a backend, launched with programmatic dependent launch or not (`pdl` None for
    a backend that cannot: it launches as it does). A backend that can is measured both ways, two rows."""

    backend: Backend
    pdl: bool | None = None

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def label(self) -> str:
        return label_of(self.backend.name, self.pdl)

    def unavailable_reason(self, case: Case, device: torch.device) -> str | None:
        """Why the row cannot run `case` on `device` (registry.ask_unavailable: never raises), or None."""
        reason = ask_unavailable(self.backend.unavailable_reason, case, device)
        if reason is None and self.pdl and device.type != "cuda":
            return "programmatic dependent launch needs a CUDA device"
        return reason

    def prepare(self, case: Case, inputs) -> Callable[[], object]:
        if self.pdl is None:
            return self.backend.prepare(case, inputs)
        return self.backend.prepare(case, inputs, pdl=self.pdl)


def variants(backends: list[Backend]) -> list[Variant]:
    """Each backend once, or twice (PDL off, then on) where it can launch with PDL."""
    return [Variant(b, pdl) for b in backends for pdl in ((False, True) if b.launches_with_pdl else (None,))]


def load_backends(backends: list[Backend], device: torch.device, note: Callable[[str], None] = ignore) -> None:
    """Build and load what the backends need (the extension), once per process, saying so through `note`
    first where that means a build. A failure is not raised: the backends' availability query reports it
    from then on, so their rows are skipped rows with the reason."""
    if device.type == "cuda" and any(b.needs_extension for b in backends):
        if ext.needs_build():
            note(f"building the cuBLAS extension into {ext.library_path().parent} (first use; about a minute)…")
        ext.ensure_loaded()


def is_allocation_failure(exc: BaseException) -> bool:
    """Out of device memory, or (on the CPU) an allocation the host cannot satisfy."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def unrun_status(reason: str) -> str:
    """The status of a row that did not run for `reason`: an error where a plugin's availability query
    failed (registry.query_failure), else skipped."""
    return ERROR if is_query_failure(reason) else SKIPPED


def error_reason(exc: BaseException) -> str:
    """An error row's reason: the exception's type and the first line of its message."""
    if is_allocation_failure(exc):
        return "out of memory"
    return described(exc)[:MAX_ERROR_CHARS]


def graph_failure_note(exc: BaseException) -> str:
    """The note of a row whose call could not be captured in a CUDA graph (it keeps its eager latency)."""
    return f"graph timer failed: {first_line(exc)[:MAX_NOTE_CHARS]}"
