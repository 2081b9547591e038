"""Presets and config files: the GEMMs (and groups of GEMMs) of a model, from configs/*.toml or a file of
the user's, every problem naming the file and the key. Pure parsing: no torch.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from gemmbench.errors import GemmbenchError, UsageError
from gemmbench.spec.cases import (
    AUX_STREAM,
    DEFAULT_STREAM,
    DTYPE_BYTES,
    MAX_DIMENSION,
    ROLES,
    RUNNABLE_DTYPES,
    SCORINGS,
    GemmSpec,
    GroupMember,
    GroupSpec,
    RoutingSpec,
)

DEFAULT_PRESET = "deepseek-v3"
# The keys of a preset file, at its top level and in each [[gemm]] table.
TOP_LEVEL_KEYS = ("model", "gemm", "group")
GROUP_KEYS = ("name", "members")
MEMBER_KEYS = ("gemm", "stream", "n", "k", "in_dtype", "out_dtype")
GEMM_KEYS = ("name", "role", "n", "k", "in_dtype", "out_dtype", "top_k", "per_forward", "routing")
ROUTING_KEYS = ("scoring", "bias", "n_group", "topk_group", "normalize", "scale")

_PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
_REPO_CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    gemms: tuple[GemmSpec, ...]
    path: Path
    groups: tuple[GroupSpec, ...] = ()


def presets_dir() -> Path:
    """The presets packaged into the wheel (gemmbench/configs), else configs/ of a source checkout. The
    package's own folder is looked at first: in an installed wheel, the folder beside the package is
    site-packages/configs, which another package may own."""
    return _PACKAGED_CONFIGS if _PACKAGED_CONFIGS.is_dir() else _REPO_CONFIGS


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_preset(name: str) -> Preset:
    path = presets_dir() / f"{name}.toml"
    if not path.is_file():
        raise UsageError(
            f"unknown preset '{name}'",
            f"choose one of: {', '.join(preset_names())} (or give your own config file)",
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
        raise GemmbenchError(f"config file {path} does not exist", "check the config file's path")
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
        if stream != DEFAULT_STREAM and not AUX_STREAM.match(stream):
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
    per_forward = entry.get("per_forward")
    if per_forward is not None and (
        not isinstance(per_forward, int) or isinstance(per_forward, bool) or per_forward <= 0
    ):
        raise GemmbenchError(
            f"{path}: {where} has per_forward = {per_forward!r}",
            "make 'per_forward' a positive integer: the GEMM's calls per forward pass (a router: the MoE layers)",
        )
    routing = _parse_routing(entry["routing"], n, top_k, path, where) if "routing" in entry else None
    return GemmSpec(model, name, role, n, k, in_dtype, out_dtype, top_k, per_forward, routing)


def _parse_routing(table, n: int, top_k: int | None, path: Path, where: str) -> RoutingSpec:
    """A router's [gemm.routing] table: how the model routes with the GEMM's output (RoutingSpec)."""
    where = f"{where} [routing]"
    if not isinstance(table, dict):
        raise GemmbenchError(f"{path}: {where} is not a table", "write it as a [gemm.routing] table")
    _reject_unknown_keys(table, ROUTING_KEYS, path, where)
    if top_k is None:
        raise GemmbenchError(f"{path}: {where} is given without top_k", "add the experts per token as 'top_k'")
    scoring = _require(table, "scoring", str, path, where)
    if scoring not in SCORINGS:
        raise GemmbenchError(f"{path}: {where} has scoring = '{scoring}'", f"use one of: {', '.join(SCORINGS)}")
    values = {"scoring": scoring}
    for key, kind in (("bias", bool), ("normalize", bool), ("n_group", int), ("topk_group", int)):
        if key in table:
            values[key] = _require(table, key, kind, path, where)
    if "scale" in table:
        scale = table["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise GemmbenchError(f"{path}: {where} has scale = {scale!r}", "make 'scale' a positive number")
        values["scale"] = float(scale)
    spec = RoutingSpec(**values)
    if spec.n_group < 1 or n % spec.n_group or not 1 <= spec.topk_group <= spec.n_group:
        raise GemmbenchError(
            f"{path}: {where} has n_group = {spec.n_group}, topk_group = {spec.topk_group} for {n} experts",
            "give n_group dividing n, and 1 <= topk_group <= n_group",
        )
    if spec.n_group > 1 and spec.topk_group * (n // spec.n_group) < top_k:
        raise GemmbenchError(
            f"{path}: {where} keeps {spec.topk_group} groups of {n // spec.n_group} experts, fewer than top_k {top_k}",
            "raise topk_group, or check n_group",
        )
    return spec


# How a required key's type reads in an error: "'n' = '64', not an integer".
KIND_NAMES = {
    int: "an integer",
    str: "a string",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _require(table: dict, key: str, kind: type, path: Path, where: str):
    if key not in table:
        raise GemmbenchError(f"{path}: {where} is missing the key '{key}'", f"add '{key}' to it")
    value = table[key]
    # bool is an int in Python; a GEMM dimension of `true` is still a mistake.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GemmbenchError(
            f"{path}: {where} has '{key}' = {value!r}, not {KIND_NAMES.get(kind, kind.__name__)}",
            f"write '{key}' as {KIND_NAMES.get(kind, kind.__name__)}",
        )
    return value


def select_gemms(presets: list[str], configs: list[Path], roles: list[str]) -> list[GemmSpec]:
    """GEMMs of the named presets and config files, filtered by role; in the order given."""
    check_roles(roles)
    loaded = [load_preset(name) for name in presets] + [load_config(path) for path in configs]
    gemms = [g for preset in loaded for g in preset.gemms if not roles or g.role in roles]
    if loaded and not gemms:
        raise UsageError(
            f"no GEMM of role {'/'.join(roles)} in the selected presets", "give other roles or another preset"
        )
    return gemms


def check_roles(roles: list[str]) -> None:
    for role in roles:
        if role not in ROLES:
            raise UsageError(f"unknown role '{role}'", f"use one of: {', '.join(ROLES)}")
