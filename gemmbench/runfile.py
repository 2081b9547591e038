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
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from gemmbench.errors import GemmbenchError
from gemmbench.records import KernelRun, Record

if TYPE_CHECKING:  # pandas is imported only where a frame is built: `show` and `list` start faster
    import pandas as pd

SCHEMA = "gemmbench.run"
SCHEMA_VERSION = 1

RECORD_COLUMNS = [f.name for f in fields(Record)]
# Kernel names in one CSV cell; no kernel name contains it.
KERNEL_SEPARATOR = " ; "
# Columns a CSV must have to be read as a gemmbench export.
REQUIRED_CSV_COLUMNS = ("model", "gemm", "m", "n", "k", "backend", "status")


def _column_dtypes() -> dict[str, str]:
    """pandas dtype of each scalar column, from Record's type hints (nullable where the field is)."""
    by_type = {int: "Int64", float: "float64", bool: "boolean", str: "string"}
    dtypes = {}
    for name, hint in typing.get_type_hints(Record).items():
        scalar = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
        if scalar[0] in by_type:
            dtypes[name] = by_type[scalar[0]]
    return dtypes


COLUMN_DTYPES = _column_dtypes()
# Columns whose empty cell means None (every Optional field); a required string's empty cell is "".
_NULLABLE_COLUMNS = [
    name for name, hint in typing.get_type_hints(Record).items() if type(None) in typing.get_args(hint)
]


@dataclass
class Run:
    """A sweep's provenance and records, as saved in a run file."""

    provenance: dict
    records: list[Record] = field(default_factory=list)

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


def ensure_writable_file(path: str) -> None:
    """Check that `path` ('-' = stdout) can be written, without creating it."""
    if path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise GemmbenchError(f"{target} is a folder", "give a file path, e.g. results.csv")
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
    """Keeps the run file on disk up to date: rewritten atomically after every record."""

    def __init__(self, path: Path, provenance: dict) -> None:
        self.path = Path(path)
        self.run = Run(provenance)
        self._flush()

    def add(self, record: Record) -> None:
        self.run.records.append(record)
        self._flush()

    def _flush(self) -> None:
        text = run_to_json(self.run)
        # Write beside the target and rename: a crash mid-write never leaves a truncated run file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.path)


def _clean(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_to_dict(record: Record) -> dict:
    row = {key: _clean(value) for key, value in asdict(record).items() if key != "kernels"}
    row["kernels"] = None if record.kernels is None else [asdict(k) for k in record.kernels]
    return {key: row[key] for key in RECORD_COLUMNS}


def run_to_json(run: Run) -> str:
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "provenance": run.provenance,
        "records": [record_to_dict(r) for r in run.records],
    }
    return json.dumps(doc, indent=1) + "\n"


def records_to_csv(records: Iterable[Record]) -> str:
    """One row per (case, backend), columns in RECORD_COLUMNS order, empty cells for missing values."""
    frame = records_frame(records)
    frame["kernels"] = frame["kernels"].map(lambda names: KERNEL_SEPARATOR.join(names or ()))
    return frame.to_csv(index=False, lineterminator="\n")


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
    """A run file (JSON) or a CSV export; the CSV carries no provenance."""
    path = Path(path)
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
    if doc.get("schema_version", 0) > SCHEMA_VERSION:
        raise GemmbenchError(
            f"{path} has schema version {doc['schema_version']}, newer than this gemmbench reads ({SCHEMA_VERSION})",
            "upgrade gemmbench",
        )
    return Run(doc.get("provenance", {}), [_record_from_dict(row, path) for row in doc.get("records", [])])


def _record_from_dict(row: dict, path: Path) -> Record:
    known = {k: v for k, v in row.items() if k in RECORD_COLUMNS}
    kernels = known.get("kernels")
    try:
        if kernels is not None:
            known["kernels"] = tuple(KernelRun(**k) for k in kernels)
        return Record(**known)
    except TypeError as exc:
        raise GemmbenchError(f"{path} has a malformed record: {exc}", "re-run the sweep that made it") from exc


def _records_from_csv(path: Path) -> list[Record]:
    import pandas as pd

    malformed = "give a CSV written by gemmbench --csv"
    try:
        frame = pd.read_csv(
            path,
            dtype={c: t for c, t in COLUMN_DTYPES.items()},
            keep_default_na=False,  # an empty reason stays "", not NaN...
            na_values={c: [""] for c in _NULLABLE_COLUMNS},  # ...while an empty optional cell is None
        )
    except (ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise GemmbenchError(f"{path} has a malformed value: {str(exc).splitlines()[0]}", malformed) from exc
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise GemmbenchError(f"{path} is not a gemmbench CSV export (no column '{missing[0]}')", malformed)
    frame = frame[[c for c in RECORD_COLUMNS if c in frame.columns]]
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:
        if row.get("kernels") is not None:
            row["kernels"] = [{"name": name} for name in row["kernels"].split(KERNEL_SEPARATOR)]
    return [_record_from_dict(row, path) for row in rows]
