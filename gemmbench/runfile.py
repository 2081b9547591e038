"""Run files and exports: the JSON run file (provenance and records, schema-versioned, rewritten after
every row), the CSV export and the pandas DataFrame behind it, loading either back, and the checks
that a path can be written before any work starts.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import typing
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from gemmbench.errors import GemmbenchError
from gemmbench.records import STATUSES, GroupRecord, Record

if TYPE_CHECKING:  # pandas is imported only where a frame is built: `show` and `list` start faster
    import pandas as pd

SCHEMA = "gemmbench.run"
SCHEMA_VERSION = 1

RECORD_COLUMNS = [f.name for f in fields(Record)]
# Kernel names in one CSV cell; no kernel name contains it.
KERNEL_SEPARATOR = " ; "
# Columns a CSV must have to be read as a gemmbench export.
REQUIRED_CSV_COLUMNS = ("model", "gemm", "m", "n", "k", "backend", "status")


@dataclass(frozen=True)
class _Schema:
    """The columns of a record type, from its type hints: pandas dtypes of the scalar ones, which may be
    null, which may be left out (they have defaults), and the nested ones (tuples of a dataclass)."""

    dtypes: dict[str, str]
    nullable: frozenset[str]
    optional: frozenset[str]
    nested: dict[str, type]

    @classmethod
    def of(cls, record_type: type) -> _Schema:
        by_type = {int: "Int64", float: "float64", bool: "boolean", str: "string"}
        dtypes, nested = {}, {}
        hints = typing.get_type_hints(record_type)
        for name, hint in hints.items():
            scalar = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
            if scalar[0] in by_type:
                dtypes[name] = by_type[scalar[0]]
            elif typing.get_origin(scalar[0]) is tuple:
                nested[name] = typing.get_args(scalar[0])[0]
        nullable = frozenset(name for name, hint in hints.items() if type(None) in typing.get_args(hint))
        optional = frozenset(f.name for f in fields(record_type) if f.default is not MISSING)
        return cls(dtypes, nullable, optional, nested)


RECORD_SCHEMA = _Schema.of(Record)
GROUP_SCHEMA = _Schema.of(GroupRecord)
COLUMN_DTYPES = RECORD_SCHEMA.dtypes
# Columns whose empty cell means None (every Optional field); a required string's empty cell is "".
_NULLABLE_COLUMNS = RECORD_SCHEMA.nullable


@dataclass
class Run:
    """A sweep's provenance and records, as saved in a run file."""

    provenance: dict
    records: list[Record] = field(default_factory=list)
    planned: int | None = None  # points the sweep planned (None: not recorded, as in a CSV export)
    complete: bool = True  # False while a sweep runs, and after one was interrupted
    groups: list[GroupRecord] = field(default_factory=list)  # `gemmbench group`'s points

    def to_frame(self) -> pd.DataFrame:
        """One row per record, the CSV's columns: numbers numeric, flags boolean, kernels as lists of names."""
        return records_frame(self.records)


def records_frame(records: Iterable[Record]) -> pd.DataFrame:
    import pandas as pd

    rows = [record_to_dict(record) for record in records]
    for row in rows:
        row["kernels"] = None if row["kernels"] is None else [kernel["name"] for kernel in row["kernels"]]
    return pd.DataFrame(rows, columns=RECORD_COLUMNS).astype(COLUMN_DTYPES)


def new_run_path(out_dir: Path, provenance: dict) -> Path:
    """results/<UTC time>_<gpu>.json: sortable by time, readable at a glance."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    device = "".join(c if c.isalnum() else "-" for c in str(provenance.get("device_name", "cpu"))).strip("-")
    path = Path(out_dir) / f"{stamp}_{device.lower()}.json"
    suffix = 1
    while path.exists():
        suffix += 1
        path = path.with_name(f"{stamp}_{device.lower()}_{suffix}.json")
    return path


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` if needed; raise a GemmbenchError before any work if files cannot be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GemmbenchError(
            f"cannot create the results folder {path}: {exc.strerror}",
            "pass --out-dir to a writable folder, or --no-save",
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise GemmbenchError(
            f"the results folder {path} is not writable", "pass --out-dir to a writable folder, or --no-save"
        )
    return path


def ensure_writable_file(path: str, example: str = "results.csv") -> None:
    """Check that `path` ('-' = stdout) can be written, without creating it."""
    if path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise GemmbenchError(f"{target} is a folder", f"give a file path, e.g. {target / example}")
    parent = target.parent if str(target.parent) else Path(".")
    if target.exists() and not os.access(target, os.W_OK):
        raise GemmbenchError(f"cannot write {target}: permission denied", "choose another path")
    if not parent.is_dir():
        raise GemmbenchError(
            f"cannot write {target}: folder {parent} does not exist", "create it or choose another path"
        )
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise GemmbenchError(f"cannot write {target}: folder {parent} is not writable", "choose another path")


class RunWriter:
    """Keeps a run's file on disk up to date: `flush` after every change rewrites it atomically."""

    def __init__(self, path: Path, run: Run) -> None:
        self.path = Path(path)
        self.run = run
        self.flush()

    def flush(self) -> None:
        text = run_to_json(self.run)
        # Write beside the target and rename: a crash mid-write never leaves a truncated run file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        # mkstemp creates the file readable by its owner only; give it the mode a plain open() would.
        os.chmod(tmp, _DEFAULT_FILE_MODE & ~_current_umask())
        os.replace(tmp, self.path)


# What open() asks for before the umask is applied.
_DEFAULT_FILE_MODE = 0o666


def _current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _clean(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean_dict(record) -> dict:
    return {key: _clean(value) for key, value in asdict(record).items()}


def record_to_dict(record: Record) -> dict:
    row = {key: _clean(value) for key, value in asdict(record).items() if key != "kernels"}
    row["kernels"] = None if record.kernels is None else [asdict(k) for k in record.kernels]
    return {key: row[key] for key in RECORD_COLUMNS}


def run_to_json(run: Run) -> str:
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "provenance": run.provenance,
        "planned": run.planned,
        "complete": run.complete,
        "records": [record_to_dict(r) for r in run.records],
    }
    if run.groups:
        doc["groups"] = [_clean_dict(g) for g in run.groups]
    return json.dumps(doc, indent=1) + "\n"


def records_to_csv(records: Iterable[Record]) -> str:
    """One row per (case, backend), columns in RECORD_COLUMNS order, empty cells for missing values."""
    frame = records_frame(records)
    frame["kernels"] = frame["kernels"].map(lambda names: KERNEL_SEPARATOR.join(names or ()))
    return frame.to_csv(index=False, lineterminator="\n")


def groups_to_csv(groups: Iterable[GroupRecord]) -> str:
    """One row per (group, M, backend); members alone as `gemm@stream=us` joined with ' ; '."""
    import pandas as pd

    rows = []
    for record in groups:
        row = _clean_dict(record)
        row["members"] = KERNEL_SEPARATOR.join(
            f"{m['gemm']}@{m['stream']}={m['device_us']}" for m in row["members"] or ()
        )
        rows.append(row)
    columns = [f.name for f in fields(GroupRecord)]
    return pd.DataFrame(rows, columns=columns).astype(GROUP_SCHEMA.dtypes).to_csv(index=False, lineterminator="\n")


def write_text(path: str, text: str, stdout) -> None:
    """Write `text` to `path`, or to `stdout` when path is '-'."""
    if path == "-":
        stdout.write(text)
        return
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise GemmbenchError(f"cannot write {path}: {exc.strerror}", "choose another path") from exc


def load_run(path: Path) -> Run:
    """A run file (JSON) or a CSV export; the CSV carries no provenance. Every field of every record is
    checked: a malformed one is a GemmbenchError naming the file, the record and the field."""
    path = Path(path)
    if path.is_dir():
        runs = sorted(path.glob("*.json"))
        example = f", e.g. {runs[-1]}" if runs else ""
        raise GemmbenchError(f"{path} is a folder, not a run file", f"give one run file{example}")
    if not path.is_file():
        raise GemmbenchError(
            f"run file {path} does not exist", "give a path under results/ (gemmbench sweep saves there)"
        )
    if path.suffix.lower() == ".csv":
        return Run({}, _records_from_csv(path))
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GemmbenchError(
            f"{path} is not a gemmbench run file (invalid JSON: {exc})", "give a .json run file or a .csv export"
        ) from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise GemmbenchError(f"{path} is not a gemmbench run file", "give a .json file written by gemmbench sweep")
    version = doc.get("schema_version", 0)
    if not _is_int(version):
        raise GemmbenchError(f"{path}: schema_version {version!r} is not an integer", _REWRITE)
    if version > SCHEMA_VERSION:
        raise GemmbenchError(
            f"{path} has schema version {version}, newer than this gemmbench reads ({SCHEMA_VERSION})",
            "upgrade gemmbench",
        )
    provenance, rows, group_rows = doc.get("provenance", {}), doc.get("records", []), doc.get("groups", [])
    planned, complete = doc.get("planned"), doc.get("complete", True)
    for key, value, ok in (
        ("provenance", provenance, isinstance(provenance, dict)),
        ("records", rows, isinstance(rows, list)),
        ("groups", group_rows, isinstance(group_rows, list)),
        ("planned", planned, planned is None or _is_int(planned)),
        ("complete", complete, isinstance(complete, bool)),
    ):
        if not ok:
            raise GemmbenchError(f"{path}: '{key}' is {value!r}, not what a run file holds there", _REWRITE)
    records = [_record_from_dict(row, f"{path}: record {i}") for i, row in enumerate(rows, start=1)]
    groups = [
        _from_dict(GroupRecord, GROUP_SCHEMA, row, f"{path}: group record {i}") for i, row in enumerate(group_rows, 1)
    ]
    return Run(provenance, records, planned, complete, groups)


_REWRITE = "re-run the sweep that made it, or correct the file"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field_problem(schema: _Schema, name: str, value) -> str | None:
    """What is wrong with `value` for the field `name`, or None."""
    if value is None:
        return None if name in schema.nullable else "missing (null)"
    if name in schema.nested:
        nested = schema.nested[name]
        hints = typing.get_type_hints(nested)
        required = {f.name for f in fields(nested) if f.default is MISSING}
        ok = isinstance(value, list) and all(
            isinstance(item, dict)
            and set(item) <= set(hints)
            and required <= set(item)
            and all(_scalar_ok(hints[key], v) for key, v in item.items())
            for item in value
        )
        fields_named = ", ".join(hints)
        return None if ok else f"not a list of objects with {fields_named}"
    kind = schema.dtypes[name]
    if kind == "Int64" and not _is_int(value):
        return "not an integer"
    if kind == "float64" and not _is_finite_number(value):
        return "not a finite number"
    if kind == "boolean" and not isinstance(value, bool):
        return "not true or false"
    if kind == "string" and not isinstance(value, str):
        return "not a string"
    if name == "status" and value not in STATUSES:
        return f"not a status ({', '.join(STATUSES)})"
    return None


def _scalar_ok(hint, value) -> bool:
    """A nested field's value against its hint (str, or float | None)."""
    if value is None:
        return type(None) in typing.get_args(hint)
    return isinstance(value, str) if str in (hint, *typing.get_args(hint)) else _is_finite_number(value)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _from_dict(record_type: type, schema: _Schema, row, where: str):
    if not isinstance(row, dict):
        raise GemmbenchError(f"{where} is {json.dumps(row)}, not a record", _REWRITE)
    names = [f.name for f in fields(record_type)]
    known = {k: v for k, v in row.items() if k in names}
    for name in names:
        if name not in known and name not in schema.optional:
            raise GemmbenchError(f"{where} has no field '{name}'", _REWRITE)
    for name, value in known.items():
        problem = _field_problem(schema, name, value)
        if problem:
            raise GemmbenchError(f"{where} has {name} = {json.dumps(value)}: {problem}", _REWRITE)
    for name, nested in schema.nested.items():
        if known.get(name) is not None:
            known[name] = tuple(nested(**item) for item in known[name])
    return record_type(**known)


def _record_from_dict(row, where: str) -> Record:
    return _from_dict(Record, RECORD_SCHEMA, row, where)


# Reading a CSV cell as the value its column holds (empty cells of optional columns are None).
_CELL_PARSERS = {
    "Int64": int,
    "float64": float,
    "boolean": lambda text: {"True": True, "False": False}[text],
    "string": str,
}


def _records_from_csv(path: Path) -> list[Record]:
    import pandas as pd

    malformed = "give a CSV written by gemmbench --csv"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise GemmbenchError(f"{path} is not a CSV file: {str(exc).splitlines()[0]}", malformed) from exc
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise GemmbenchError(f"{path} is not a gemmbench CSV export (no column '{missing[0]}')", malformed)
    columns = [c for c in RECORD_COLUMNS if c in frame.columns]
    records = []
    for line, cells in enumerate(frame[columns].to_dict("records"), start=2):  # line 1 is the header
        row = {}
        for name, text in cells.items():
            if text == "" and name in _NULLABLE_COLUMNS:
                row[name] = None
            elif name == "kernels":
                row[name] = [{"name": kernel} for kernel in text.split(KERNEL_SEPARATOR)]
            else:
                try:
                    row[name] = _CELL_PARSERS[COLUMN_DTYPES[name]](text)
                except (ValueError, KeyError):
                    raise GemmbenchError(f"{path}: line {line} has {name} = {text!r}", malformed) from None
        records.append(_record_from_dict(row, f"{path}: line {line}"))
    return records
