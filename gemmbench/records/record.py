"""The record of one (case, backend) point: the case's fields, then what was measured, skips and errors
included with the reason.

A `Record` is its `Case` plus results: it extends Case, so the case's fields are defined once and come
first. Each timer's statistics are one `TimerSummary` (`latency`, `device`) and the clock watch one
`ClockSummary`; the run file, the CSV and `Run.to_frame()` flatten them into columns (`latency_median_us`,
`sm_clock_mhz`: records/schema.py), units fixed and named in the column (µs, TFLOP/s, GB/s).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field, fields

from gemmbench.records.timers import TimerSummary, median_of
from gemmbench.spec.cases import FLATTEN, Case, GemmSpec

OK = "ok"
SKIPPED = "skipped"
ERROR = "error"
STATUSES = (OK, SKIPPED, ERROR)

# How a nested summary is written as flat columns (FLATTEN, spec/cases.py): its fields prefixed with the
# field's name (`latency_`), or inline, under their own names (the clock summary's `sm_clock_mhz`).
INLINE = ""


def prefixed(prefix: str):
    """A nested summary field, None unless measured, written as columns `<prefix>_<its field>`."""
    return field(default=None, metadata={FLATTEN: f"{prefix}_"})


def inline():
    """A nested summary field, None unless measured, written as columns under its fields' own names."""
    return field(default=None, metadata={FLATTEN: INLINE})


# A backend launched with programmatic dependent launch is named so in tables, recommendations, comparisons.
PDL_SUFFIX = "+pdl"


# The two figures of a row, by the name of its field.
DEVICE, LATENCY = "device", "latency"


def label_of(backend: str, pdl: bool | None) -> str:
    """How a backend's row is named: `router_small_m_ext+pdl` where it was launched with PDL."""
    return f"{backend}{PDL_SUFFIX}" if pdl else backend


def shared_timer(a: Record, b: Record) -> tuple[str, TimerSummary | None, TimerSummary | None]:
    """The figure two rows are compared by: device time where both have it, else the eager latency; its
    name ('device' or 'latency', the record's field) and each row's summary."""
    if a.device and b.device:
        return DEVICE, a.device, b.device
    return LATENCY, a.latency, b.latency


# How the reason of a fleet's row starts where no rank measured it (the fleet stopped first): an error row
# that holds a place, not a row that finished.
NOT_MEASURED = "not measured: "


def after_context(context: str | None) -> str:
    """What follows a GEMM's (or a row's) name where it ran in a layer: ` after <producer>`; nothing alone."""
    return f" after {context}" if context else ""


@dataclass(frozen=True)
class KernelRun:
    """One device kernel of one call, as torch.profiler saw it."""

    name: str
    duration_us: float | None = None


@dataclass(frozen=True)
class ClockSummary:
    """The clock watch around one point: NVML readings taken before and after its timers."""

    sm_clock_mhz: int | None = None  # lowest SM clock read
    mem_clock_mhz: int | None = None
    temp_c: int | None = None  # highest
    power_w: float | None = None  # highest
    throttle_reasons: str | None = None  # NVML slowdown reasons seen, comma-separated
    throttled: bool | None = None


@dataclass(frozen=True)
class Record(Case):
    """One (case, backend) point: the case's fields (positional, as in Case), then the results (keywords)."""

    _: KW_ONLY
    backend: str
    pdl: bool | None = None  # launched with programmatic dependent launch; None: the backend cannot
    status: str
    reason: str = ""
    # A skipped row of a backend at an M beyond the largest it computes (Backend.max_m): kept in the run,
    # left out of tables and comparisons unless asked (`--all-rows`).
    out_of_range: bool | None = None
    rel_err: float | None = None
    # Routing fidelity (router rows; measure/routing.py), the model's routing function on the backend's output
    # against float64's: the share of tokens whose expert set differs; the L1 distance of a token's routing
    # weights, mean and largest; the largest change of an expert's load, relative to the mean load.
    topk_mismatch: float | None = None
    weight_l1_mean: float | None = None
    weight_l1_max: float | None = None
    load_change: float | None = None
    routing_inputs: str | None = None  # what the routing check computed on: 'w synthetic, x synthetic normal'
    latency: TimerSummary | None = prefixed("latency")  # eager calls (CUDA events; the host clock on the CPU)
    device: TimerSummary | None = prefixed("device")  # CUDA-graph replays; None off a GPU or where not capturable
    # The producer that wrote x right before each call, in a layer (`--context`): then `latency` and `device`
    # are per layer, producer then GEMM (measure/layers.py); None: the GEMM alone.
    context: str | None = None
    # A timer's interval missed its target: the device timer's budget ran out first, or the eager windows'
    # medians spread beyond EAGER_STEADY_CI_REL (records/flags.py)
    noisy: bool | None = None
    l2_mode: str | None = None  # "cold" (inputs rotated past the L2), "hot", or None on the CPU
    l2_copies: int | None = None
    tflops: float | None = None
    gbps: float | None = None
    floor_us: float | None = None  # max(bytes / measured bandwidth, FLOPs / measured bf16 throughput)
    pct_of_floor: float | None = None  # floor_us over the measured time, in percent
    clocks: ClockSummary | None = inline()
    kernels: tuple[KernelRun, ...] | None = None  # one call's kernels in launch order; None: not profiled
    kernel_count: int | None = None
    kernel_sum_us: float | None = None
    rank: int | None = None  # fleet runs (torchrun): the rank that measured the row...
    device_id: str | None = None  # ...and its device, "host:cuda:N"
    backend_config: str | None = None  # the configuration a tuned backend ran (router_small_m's block sizes)
    # The raw samples of the row's own timers, in microseconds per call, in the order taken (`--keep-samples`);
    # None where not kept. The summaries above are derived from them.
    latency_samples_us: tuple[float, ...] | None = None
    # The eager latency is sampled in windows: each window's median, in order; its figure and interval come
    # from these (timing/timers.py says why).
    latency_window_medians_us: tuple[float, ...] | None = None
    device_samples_us: tuple[float, ...] | None = None
    # The device time is sampled in placements (sets of input buffers allocated apart): each placement's
    # median, in order; where there are several, its figure and interval come from these.
    device_placement_medians_us: tuple[float, ...] | None = None
    placements: int | None = None  # how many placements the device time sampled (None off a GPU)

    @classmethod
    def for_case(cls, case: Case, backend: str, status: str, reason: str = "", **results) -> Record:
        """A record of `case`: its fields, then `results` by name."""
        return cls(
            *(getattr(case, f.name) for f in fields(Case)), backend=backend, status=status, reason=reason, **results
        )

    @property
    def case(self) -> Case:
        return Case(*(getattr(self, f.name) for f in fields(Case)))

    @property
    def best_time_us(self) -> float | None:
        """Device time where measured (it excludes launch gaps), else the latency."""
        return median_of(self.device or self.latency)

    @property
    def label(self) -> str:
        """The backend as tables, recommendations and comparisons name it: `+pdl` where launched with PDL."""
        return label_of(self.backend, self.pdl)

    @property
    def row_name(self) -> str:
        """One row named whole in a sentence: `Kimi-K2 router M=8 router_small_m_mma+pdl after norm`."""
        return f"{self.model} {self.gemm} M={self.m} {self.label}{after_context(self.context)}"

    @property
    def in_layer(self) -> bool:
        """Timed in its layer, after a producer: its times are per layer, producer included."""
        return self.context is not None

    @property
    def view(self) -> tuple:
        """What a table shows rows of together: one GEMM shape, alone or after one producer."""
        return (*self.case.shape_key, self.context)

    @property
    def throttled(self) -> bool:
        """The clock watch saw a slowdown around this point."""
        return bool(self.clocks and self.clocks.throttled)


def select_records(
    records: Iterable[Record],
    backends: Iterable[str] = (),
    m_values: Iterable[int] = (),
    gemms: Iterable[GemmSpec] = (),
    roles: Iterable[str] = (),
    shapes: Iterable[Case | GemmSpec] = (),
) -> list[Record]:
    """The records that every given filter admits (an empty filter admits all): a backend named, an M
    listed, a GEMM of the given presets (or a role of them), a shape given (MxNxK matches M too)."""
    backends, m_values, roles = set(backends), set(m_values), set(roles)
    wanted_gemms = {(g.model, g.name, g.n, g.k) for g in gemms}
    wanted_shapes = [(s.n, s.k, s.m if isinstance(s, Case) else None) for s in shapes]

    def admitted(record: Record) -> bool:
        shape_ok = any(n == record.n and k == record.k and m in (None, record.m) for n, k, m in wanted_shapes)
        gemm_ok = record.case.shape_key in wanted_gemms
        return (
            (not backends or record.backend in backends)
            and (not m_values or record.m in m_values)
            and (not roles or record.role in roles)
            and (not (wanted_gemms or wanted_shapes) or gemm_ok or shape_ok)
        )

    return [record for record in records if admitted(record)]


def grouped(records: Iterable, key) -> dict:
    """Records grouped by `key(record)`, groups and records in first-seen order."""
    groups: dict = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


def by_shape(records: Iterable[Record]) -> dict[tuple, list[Record]]:
    """Records grouped by GEMM shape (model, gemm, N, K) and context (None alone, else the producer before
    it), in first-seen order: one table, panel or recommendation each."""
    return grouped(records, lambda record: record.view)


def in_range(records: Iterable[Record]) -> list[Record]:
    """The records but the rows of backends at an M beyond their range (`out_of_range`)."""
    return [r for r in records if not r.out_of_range]


def by_case(records: Iterable[Record]) -> dict[Case, list[Record]]:
    """Records grouped by case (shape and M), in first-seen order: one kernel table each."""
    return grouped(records, lambda record: record.case)
