"""A run's provenance, the run file's "provenance" object: the software, the device, the host and the session
its rows were measured in, and the roofline that gave them their floor.

Each fact is a field, None where the run did not record it: older files lack the facts added since (the
clock facts, the context, the roofline), and a CSV export carries none. A `Provenance` also keeps the keys
it holds, in their order, so that a run file loaded and written again is the same file: a fact recorded as
unknown (`cuda` on a CPU build of torch, a driver version nothing could read) is written as null, one never
recorded not at all; and keys this version has no field for (a note added by hand, a newer version's facts)
are kept as they were read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import asdict, dataclass, field, fields

from gemmbench.errors import GemmbenchError
from gemmbench.records.schema import REWRITE, is_finite_number, is_int, type_and_nullable
from gemmbench.spec.cases import Case

# How a JSON value is checked against a fact's type, and what an error calls that type.
_CHECKS = {
    str: (lambda value: isinstance(value, str), "text"),
    int: (is_int, "an integer"),
    float: (is_finite_number, "a finite number"),
    bool: (lambda value: isinstance(value, bool), "true or false"),
    dict: (lambda value: isinstance(value, dict), "an object"),
    list: (lambda value: isinstance(value, list), "a list"),
}


@dataclass(frozen=True)
class Roofline:
    """The device's measured limits (measure/roofline.py measures them): they give each row its floor."""

    bandwidth_gbps: float  # device-to-device copy, bytes read plus bytes written
    bf16_tflops: float  # bf16 x bf16 matmul, 2*N^3 / time
    measured: str  # when (UTC, ISO 8601)

    def floor_us(self, case: Case) -> float:
        memory_us = case.bytes_moved / (self.bandwidth_gbps * 1e3)  # GB/s = 1e3 bytes per us
        compute_us = case.flops / (self.bf16_tflops * 1e6)  # TFLOP/s = 1e6 FLOP per us
        return max(memory_us, compute_us)


@dataclass(frozen=True)
class FleetProvenance:
    """A fleet's ranks (measure/fleet.py): how many, how the cases were dealt out, each rank's provenance."""

    world_size: int
    split: str  # "points" or "none" (every rank measured every case)
    ranks: tuple[Provenance, ...]

    def to_dict(self) -> dict:
        return {"world_size": self.world_size, "split": self.split, "ranks": [r.to_dict() for r in self.ranks]}


@dataclass(frozen=True)
class Provenance:
    """What a saved run needs to be understood later, on another machine (measure/environment.py collects it;
    the session and the fleet add theirs)."""

    # the software
    gemmbench: str | None = None
    python: str | None = None
    torch: str | None = None
    cuda: str | None = None  # the CUDA torch was built with; None for a CPU build
    flashinfer: str | None = None  # the engine package, where installed (measure/environment.py)
    # the device
    device_type: str | None = None  # "cuda" or "cpu"
    device_index: int | None = None
    device_name: str | None = None
    compute_capability: str | None = None
    arch: str | None = None  # "sm90"
    sm_count: int | None = None
    memory_gib: float | None = None
    l2_cache_mb: float | None = None
    driver: str | None = None
    cublas: str | None = None
    cublaslt: str | None = None
    # the clocks at the start and the settings that bound them (timing/clocks.py), or why NVML could not tell
    sm_clock_mhz_start: int | None = None
    mem_clock_mhz_start: int | None = None
    sm_clock_mhz_max: int | None = None
    mem_clock_mhz_max: int | None = None
    power_limit_w: float | None = None
    ecc: bool | None = None
    persistence_mode: bool | None = None
    nvml: str | None = None
    cpu_threads: int | None = None  # the CPU's threads torch uses, on the CPU
    # the host and the command
    hostname: str | None = None
    command: str | None = None
    started: str | None = None  # UTC, ISO 8601
    # the session
    context: str | None = None  # the producers each GEMM also ran after, comma-separated; "none"
    routing_data: dict | None = None  # the routing check's own inputs: files, tensors, hashes (measure/routing_data.py)
    roofline: Roofline | None = None  # on a GPU that timed
    # a fleet's rank (measure/fleet.py): this rank and its device; the fleet's run adds every rank's
    rank: int | None = None
    device_id: str | None = None
    fleet: FleetProvenance | None = None
    # Keys this version has no field for, with their values as read.
    others: dict[str, object] = field(default_factory=dict)
    # The keys held, in their order in the file: a fact recorded as unknown is held with None, one never
    # recorded is not. A fact set but not listed (given by keyword, added with `dataclasses.replace`) is
    # held after those listed, in the order of the fields.
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        held = dict.fromkeys(self.keys)
        held.update(dict.fromkeys(name for name in FACTS if getattr(self, name) is not None))
        held.update(dict.fromkeys(self.others))
        object.__setattr__(self, "keys", tuple(held))

    @classmethod
    def of(cls, **facts) -> Provenance:
        """The provenance holding `facts` in the order given, those None included (recorded as unknown)."""
        return cls(**facts, keys=tuple(facts))

    @classmethod
    def from_dict(cls, facts, what: str = "the provenance") -> Provenance:
        """A run file's provenance object (`what` names it in errors), each known fact checked against its
        field's type: a malformed one is a GemmbenchError naming the key. Keys it has no field for are kept."""
        _read(dict, facts, what)
        types = _fact_types()
        known = {
            key: None if value is None else _read(types[key], value, f"{what}'s {key}")
            for key, value in facts.items()
            if key in FACTS
        }
        others = {key: value for key, value in facts.items() if key not in FACTS}
        return cls(**known, others=others, keys=tuple(facts))

    def to_dict(self) -> dict:
        """The run file's provenance object: the keys held, in order."""
        return {key: self._json(key) for key in self.keys}

    def _json(self, key: str):
        if key in self.others:
            return self.others[key]
        value = getattr(self, key)
        if isinstance(value, Roofline):
            return asdict(value)
        return value.to_dict() if isinstance(value, FleetProvenance) else value

    @property
    def recorded(self) -> bool:
        """Whether the run recorded any provenance (a CSV export carries none)."""
        return bool(self.keys)


# The facts: every field of Provenance but the two that say how they are held.
FACTS = tuple(f.name for f in fields(Provenance) if f.name not in ("others", "keys"))


@functools.cache
def _fact_types() -> dict[str, type]:
    """Each fact's type, read from its field's hint (`str | None`: str)."""
    hints = typing.get_type_hints(Provenance)
    return {name: type_and_nullable(hints[name])[0] for name in FACTS}


def _read(kind, value, what: str):
    """A JSON value as a field of type `kind` holds it, checked (`what` names it in errors): a scalar as it
    is, a provenance by `Provenance.from_dict`, another dataclass (the roofline, the fleet) from its fields,
    a tuple item by item."""
    if kind is Provenance:
        return Provenance.from_dict(value, what)
    if dataclasses.is_dataclass(kind):
        _read(dict, value, what)
        missing = [f.name for f in fields(kind) if f.name not in value]
        if missing:
            raise GemmbenchError(f"{what} has no '{missing[0]}'", REWRITE)
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _read(hints[f.name], value[f.name], f"{what}'s {f.name}") for f in fields(kind)})
    if typing.get_origin(kind) is tuple:
        _read(list, value, what)
        return tuple(_read(typing.get_args(kind)[0], item, f"{what}[{i}]") for i, item in enumerate(value))
    ok, expected = _CHECKS[kind]
    if not ok(value):
        raise GemmbenchError(f"{what} is {json.dumps(value)}: not {expected}", REWRITE)
    return value
