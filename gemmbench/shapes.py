"""What sizes to run: GEMM specs from presets and config files, `--shape MxNxK`, and M lists.

A GEMM here is always `out[M, N] = x[M, K] @ w[N, K].T` (weights stored [N, K], as in nn.Linear).
This module is pure parsing: it imports no torch, so `gemmbench list` and `decode` start fast.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from gemmbench.errors import GemmbenchError, UsageError

# Token counts of a serving engine: 1..16 are decode batches, up to 16384 a long prefill chunk.
DEFAULT_M = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
# Without a GPU: a bf16 GEMM of K=7168 at M=64 takes ~10 ms on 2 CPU cores, so three M values keep
# a default sweep (and its float64 references) well under a minute.
CPU_DEFAULT_M = (1, 8, 64)
DEFAULT_PRESET = "deepseek-v3"
ROLES = ("router", "attention")
CUSTOM_ROLE = "custom"
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
# (input, output) dtype pairs that gemmbench's backends run: the GEMMs this tool exists for.
RUNNABLE_DTYPES = (("bf16", "fp32"),)
# The keys of a preset file, at its top level and in each [[gemm]] table.
TOP_LEVEL_KEYS = ("model", "gemm", "group")
GROUP_KEYS = ("name", "members")
MEMBER_KEYS = ("gemm", "stream", "n", "k", "in_dtype", "out_dtype")
GEMM_KEYS = ("name", "role", "n", "k", "in_dtype", "out_dtype", "top_k")
# Most values one range may expand to: a typo such as 1:100000:+1 would otherwise queue days of work.
MAX_RANGE_VALUES = 64
# Largest M, N or K: cuBLAS takes GEMM dimensions as 32-bit signed integers.
MAX_DIMENSION = 2**31 - 1

_REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
_PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class GemmSpec:
    """One GEMM of a model, without M: `x[M, k] @ w[n, k].T`."""

    model: str
    name: str
    role: str
    n: int
    k: int
    in_dtype: str = "bf16"
    out_dtype: str = "fp32"
    top_k: int | None = None

    def case(self, m: int) -> Case:
        return Case(self.model, self.name, self.role, m, self.n, self.k, self.in_dtype, self.out_dtype, self.top_k)


@dataclass(frozen=True)
class Case:
    """One point of a sweep: a GEMM spec at one token count M."""

    model: str
    gemm: str
    role: str
    m: int
    n: int
    k: int
    in_dtype: str = "bf16"
    out_dtype: str = "fp32"
    top_k: int | None = None  # experts per token, for router GEMMs: enables the routing-accuracy check

    @property
    def shape_key(self) -> tuple[str, str, int, int]:
        """Cases with the same key differ only in M: one table per key."""
        return (self.model, self.gemm, self.n, self.k)

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    @property
    def bytes_moved(self) -> int:
        """Fewest bytes a GEMM must move: both inputs read once, the output written once."""
        inputs = (self.m * self.k + self.n * self.k) * DTYPE_BYTES[self.in_dtype]
        return inputs + self.m * self.n * DTYPE_BYTES[self.out_dtype]


DEFAULT_STREAM = "default"
_AUX_STREAM = re.compile(r"^aux\d+$")


@dataclass(frozen=True)
class GroupMember:
    """One GEMM of a group and the CUDA stream it runs on ("default", or "aux0", "aux1", ...)."""

    gemm: GemmSpec
    stream: str
    light: bool  # a bf16 -> fp32 GEMM of the file, computed by the backend under test; else torch.mm in its dtypes


@dataclass(frozen=True)
class GroupSpec:
    """GEMMs that a model runs together, on several CUDA streams (DeepSeek-V4's attention input group)."""

    model: str
    name: str
    members: tuple[GroupMember, ...]

    @property
    def k(self) -> int:
        return self.members[0].gemm.k


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    gemms: tuple[GemmSpec, ...]
    path: Path
    groups: tuple[GroupSpec, ...] = ()


def presets_dir() -> Path:
    """configs/ of a source checkout, else the copy packaged into the wheel."""
    return _REPO_CONFIGS if _REPO_CONFIGS.is_dir() else _PACKAGED_CONFIGS


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_preset(name: str) -> Preset:
    path = presets_dir() / f"{name}.toml"
    if not path.is_file():
        raise UsageError(
            f"unknown preset '{name}'",
            f"choose one of: {', '.join(preset_names())} (or pass your own file with --config)",
        )
    return load_config(path)


def load_config(path: Path) -> Preset:
    """Read a preset TOML file; every problem names the file and the key."""
    path = Path(path)
    if path.is_dir():
        raise GemmbenchError(
            f"{path} is a folder, not a config file", "give one TOML file, e.g. configs/deepseek-v3.toml"
        )
    if not path.is_file():
        raise GemmbenchError(f"config file {path} does not exist", "check the path given to --config")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GemmbenchError(f"config file {path} is not valid TOML: {exc}", "fix the syntax") from exc
    _reject_unknown_keys(data, TOP_LEVEL_KEYS, path, "the top level")
    model = _require(data, "model", str, path, "the top level")
    entries = _require(data, "gemm", list, path, "the top level")
    if not entries:
        raise GemmbenchError(f"config file {path} has no [[gemm]] entries", "add at least one [[gemm]] table")
    gemms = []
    for index, entry in enumerate(entries):
        where = f"[[gemm]] entry {index + 1}"
        if not isinstance(entry, dict):
            raise GemmbenchError(f"{path}: {where} is not a table", "write each GEMM as a [[gemm]] table")
        gemms.append(_parse_gemm(entry, model, path, where))
    groups = tuple(_parse_group(entry, model, gemms, path, index) for index, entry in enumerate(data.get("group", [])))
    return Preset(name=path.stem, model=model, gemms=tuple(gemms), path=path, groups=groups)


def _parse_group(entry, model: str, gemms: list[GemmSpec], path: Path, index: int) -> GroupSpec:
    """A [[group]]: a name and its members, each a [[gemm]] of the file (by name) or a GEMM of its own
    (name, n, k, in_dtype, out_dtype: the heavy projection, bf16 -> bf16), with its stream."""
    if not isinstance(entry, dict):
        raise GemmbenchError(
            f"{path}: [[group]] entry {index + 1} is not a table", "write each group as a [[group]] table"
        )
    name = _require(entry, "name", str, path, f"[[group]] entry {index + 1}")
    where = f"[[group]] '{name}'"
    _reject_unknown_keys(entry, GROUP_KEYS, path, where)
    members = _require(entry, "members", list, path, where)
    if len(members) < 2:
        raise GemmbenchError(f"{path}: {where} has {len(members)} member(s)", "a group runs two or more GEMMs")
    by_name = {g.name: g for g in gemms}
    parsed = []
    for member in members:
        if not isinstance(member, dict):
            raise GemmbenchError(
                f"{path}: {where} has a member that is not a table", "write { gemm = ..., stream = ... }"
            )
        gemm_name = _require(member, "gemm", str, path, where)
        _reject_unknown_keys(member, MEMBER_KEYS, path, f"{where} member '{gemm_name}'")
        stream = _require(member, "stream", str, path, f"{where} member '{gemm_name}'")
        if stream != DEFAULT_STREAM and not _AUX_STREAM.match(stream):
            raise GemmbenchError(
                f"{path}: {where} member '{gemm_name}' has stream '{stream}'", "use 'default' or aux0, aux1, ..."
            )
        if "n" in member:  # a GEMM of its own
            member_where = f"{where} member '{gemm_name}'"
            n, k = (_require(member, key, int, path, member_where) for key in ("n", "k"))
            in_dtype, out_dtype = (_require(member, key, str, path, member_where) for key in ("in_dtype", "out_dtype"))
            if min(n, k) <= 0 or in_dtype not in DTYPE_BYTES or out_dtype not in DTYPE_BYTES:
                raise GemmbenchError(f"{path}: {member_where} is not a GEMM", "give positive n, k and known dtypes")
            parsed.append(
                GroupMember(GemmSpec(model, gemm_name, "attention", n, k, in_dtype, out_dtype), stream, False)
            )
        elif gemm_name in by_name:
            parsed.append(GroupMember(by_name[gemm_name], stream, True))
        else:
            raise GemmbenchError(
                f"{path}: {where} names a GEMM '{gemm_name}' the file does not define",
                f"use one of: {', '.join(by_name)}, or give its n, k, in_dtype and out_dtype",
            )
    if len({m.gemm.k for m in parsed}) > 1:
        raise GemmbenchError(f"{path}: {where} mixes hidden sizes (K)", "a group's GEMMs read the same input")
    return GroupSpec(model, name, tuple(parsed))


def _reject_unknown_keys(table: dict, known: tuple[str, ...], path: Path, where: str) -> None:
    """A misspelt key (`topk`) would otherwise be ignored without a word."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"the keys are: {', '.join(known)}"
            raise GemmbenchError(f"{path}: {where} has an unknown key '{key}'", f"{fix} (notes go in # comments)")


def _parse_gemm(entry: dict, model: str, path: Path, where: str) -> GemmSpec:
    name = _require(entry, "name", str, path, where)
    where = f"[[gemm]] '{name}'"
    _reject_unknown_keys(entry, GEMM_KEYS, path, where)
    role = _require(entry, "role", str, path, where)
    if role not in ROLES:
        raise GemmbenchError(f"{path}: {where} has role '{role}'", f"use one of: {', '.join(ROLES)}")
    n = _require(entry, "n", int, path, where)
    k = _require(entry, "k", int, path, where)
    in_dtype = _require(entry, "in_dtype", str, path, where)
    out_dtype = _require(entry, "out_dtype", str, path, where)
    for key, value in (("n", n), ("k", k)):
        if not 0 < value <= MAX_DIMENSION:
            raise GemmbenchError(
                f"{path}: {where} has {key} = {value}", f"make '{key}' a positive integer up to {MAX_DIMENSION}"
            )
    for key, value in (("in_dtype", in_dtype), ("out_dtype", out_dtype)):
        if value not in DTYPE_BYTES:
            raise GemmbenchError(f"{path}: {where} has {key} = '{value}'", f"use one of: {', '.join(DTYPE_BYTES)}")
    if (in_dtype, out_dtype) not in RUNNABLE_DTYPES:
        runnable = ", ".join(f"{a} -> {b}" for a, b in RUNNABLE_DTYPES)
        raise GemmbenchError(f"{path}: {where} is {in_dtype} -> {out_dtype}, which no backend runs", f"use {runnable}")
    top_k = entry.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k <= 0):
        raise GemmbenchError(f"{path}: {where} has top_k = {top_k!r}", "make 'top_k' a positive integer")
    if top_k is not None and top_k > n:
        raise GemmbenchError(
            f"{path}: {where} has top_k = {top_k}, more than its n = {n} experts", "make 'top_k' at most n"
        )
    return GemmSpec(model, name, role, n, k, in_dtype, out_dtype, top_k)


def _require(table: dict, key: str, kind: type, path: Path, where: str):
    if key not in table:
        raise GemmbenchError(f"{path}: {where} is missing the key '{key}'", f"add '{key}' to it")
    value = table[key]
    # bool is an int in Python; a GEMM dimension of `true` is still a mistake.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GemmbenchError(
            f"{path}: {where} has '{key}' = {value!r}, not a {kind.__name__}",
            f"write '{key}' as a {kind.__name__}",
        )
    return value


_TOO_LARGE = "cuBLAS takes GEMM dimensions as 32-bit integers; give smaller ones"
_SHAPE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$")


def parse_shape(text: str) -> Case | GemmSpec:
    """`MxNxK` -> a custom case, x [M, K] @ w [N, K].T, at its own M; `NxK` -> a custom GEMM, run at the
    M values of --m like a preset's."""
    match = _SHAPE.match(text)
    dims = tuple(int(g) for g in match.groups() if g is not None) if match else ()
    if not dims or min(dims) <= 0:
        raise UsageError(
            f"malformed shape '{text}'",
            "write it as MxNxK or NxK with positive integers, e.g. --shape 16x256x7168 or --shape 256x7168",
        )
    if max(dims) > MAX_DIMENSION:
        raise UsageError(f"shape '{text}' has a dimension above {MAX_DIMENSION}", _TOO_LARGE)
    if len(dims) == 2:
        n, k = dims
        return GemmSpec("custom", f"{n}x{k}", CUSTOM_ROLE, n, k)
    m, n, k = dims
    return Case("custom", f"{n}x{k}", CUSTOM_ROLE, m, n, k)


def parse_m_list(text: str) -> tuple[int, ...]:
    """`1,8,64`, a range `1:16384:x2` (geometric) or `8:64:+8` (arithmetic), or a mix, comma-separated."""
    values: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if ":" in item:
            values.update(_parse_m_range(item, text))
        else:
            values.add(_parse_m_value(item, text))
    return tuple(sorted(values))


def _parse_m_value(item: str, whole: str) -> int:
    if not item.isdigit() or int(item) <= 0:
        raise UsageError(
            f"bad M value '{item}' in '{whole}'", "give positive integers, e.g. --m 1,8,64 or --m 1:16384:x2"
        )
    if int(item) > MAX_DIMENSION:
        raise UsageError(f"M value {item} is above {MAX_DIMENSION}", _TOO_LARGE)
    return int(item)


def _parse_m_range(item: str, whole: str) -> list[int]:
    parts = item.split(":")
    bad = UsageError(
        f"bad M range '{item}'",
        "write START:STOP:xFACTOR (e.g. 1:16384:x2) or START:STOP:+STEP (e.g. 8:64:+8)",
    )
    if len(parts) != 3 or len(parts[2]) < 2 or parts[2][0] not in "x+" or not parts[2][1:].isdigit():
        raise bad
    start, stop = _parse_m_value(parts[0], whole), _parse_m_value(parts[1], whole)
    op, step = parts[2][0], int(parts[2][1:])
    if start > stop or (op == "x" and step < 2) or (op == "+" and step < 1):
        raise bad
    values = [start]
    while len(values) <= MAX_RANGE_VALUES:
        nxt = values[-1] * step if op == "x" else values[-1] + step
        if nxt > stop:
            return values
        values.append(nxt)
    raise UsageError(
        f"M range '{item}' expands to more than {MAX_RANGE_VALUES} values", "use a larger step or a smaller range"
    )


def select_gemms(presets: list[str], configs: list[Path], roles: list[str]) -> list[GemmSpec]:
    """GEMMs of the named presets and config files, filtered by role; in the order given."""
    for role in roles:
        if role not in ROLES:
            raise UsageError(f"unknown role '{role}'", f"use one of: {', '.join(ROLES)}")
    loaded = [load_preset(name) for name in presets] + [load_config(path) for path in configs]
    gemms = [g for preset in loaded for g in preset.gemms if not roles or g.role in roles]
    if loaded and not gemms:
        raise UsageError(
            f"no GEMM of role {'/'.join(roles)} in the selected presets", "drop --role or pick another preset"
        )
    return gemms


def build_cases(gemms: list[GemmSpec], shapes: list[Case], m_values: tuple[int, ...]) -> list[Case]:
    """Every GEMM at every M, then the explicit shapes (which carry their own M); duplicates dropped."""
    cases = [g.case(m) for g in gemms for m in m_values] + list(shapes)
    return list(dict.fromkeys(cases))
