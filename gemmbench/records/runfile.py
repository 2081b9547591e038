"""The run file: a session's provenance and records as schema-versioned JSON, rewritten atomically after
every row, and loading it (or a CSV export) back; the checks that a path can be written before any work.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from gemmbench.errors import GemmbenchError
from gemmbench.files import can_create_in, write_atomically, write_fallback
from gemmbench.records.group import GroupRecord
from gemmbench.records.provenance import Provenance
from gemmbench.records.record import SKIPPED, Record
from gemmbench.records.schema import REWRITE, alone_row, from_row, is_int, to_row
from gemmbench.records.timers import EVENTS_TIMER, GRAPH_TIMER

if TYPE_CHECKING:  # pandas is imported only where a frame is built: `show` and `list` start faster
    import pandas as pd

SCHEMA = "gemmbench.run"
# 2: a row with a context is timed per layer, producer included (earlier: the GEMM alone, beside the layer
# minus the producer alone, in columns of their own).
SCHEMA_VERSION = 2
# Spaces per level of the run file's JSON: readable, and smaller than the usual four.
INDENT = 1
# Group columns of runs saved before a group's timers were TimerSummary values: their new names, and the
# timer each of them was.
LEGACY_GROUP_COLUMNS = {
    "serial_device_us": "serial_device_median_us",
    "serial_latency_us": "serial_latency_median_us",
    "parallel_device_us": "parallel_device_median_us",
    "parallel_latency_us": "parallel_latency_median_us",
}


@dataclass
class Run:
    """A sweep's provenance and records, as saved in a run file."""

    provenance: Provenance
    records: list[Record] = field(default_factory=list)
    planned: int | None = None  # points the sweep planned (None: not recorded, as in a CSV export)
    complete: bool = True  # False while a sweep runs, and after one was interrupted
    groups: list[GroupRecord] = field(default_factory=list)  # `gemmbench group`'s points

    def to_frame(self) -> pd.DataFrame:
        """One row per record, the CSV's columns: numbers numeric, flags boolean, kernels as lists of names;
        for a group run (`gemmbench group`: group rows, no records), one row per group row, as its CSV has."""
        from gemmbench.records.table import groups_frame, records_frame

        return groups_frame(self.groups) if self.groups and not self.records else records_frame(self.records)


def new_run_path(out_dir: Path, provenance: Provenance) -> Path:
    """results/<UTC time>_<gpu>.json: sortable by time, readable at a glance."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    device = "".join(c if c.isalnum() else "-" for c in provenance.device_name or "cpu").strip("-")
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
    if problem := can_create_in(path):
        raise GemmbenchError(
            f"the results folder {path} is not writable ({problem.strerror or problem})",
            "pass --out-dir to a writable folder, or --no-save",
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
    if target.is_file() and _is_run_file(target):
        raise GemmbenchError(
            f"{target} is a gemmbench run file: an export over it would lose its rows", "choose another path"
        )
    if not parent.is_dir():
        raise GemmbenchError(
            f"cannot write {target}: folder {parent} does not exist", "create it or choose another path"
        )
    if not target.exists() and (problem := can_create_in(parent)):  # an existing file needs no new entry
        raise GemmbenchError(
            f"cannot write {target}: folder {parent} is not writable ({problem.strerror or problem})",
            "choose another path",
        )


# A run file names its schema in its first lines (`schema` is the first key written).
_SCHEMA_PROBE_BYTES = 256


def _is_run_file(path: Path) -> bool:
    """Whether `path` starts as a gemmbench run file does (its schema named in its first bytes)."""
    try:
        with open(path, "rb") as file:
            head = file.read(_SCHEMA_PROBE_BYTES)
    except OSError:
        return False
    return f'"schema": "{SCHEMA}"'.encode() in head


class RunWriter:
    """Keeps a run's file on disk up to date: `flush` after every change rewrites it atomically. Each row
    is encoded once (a sweep that rewrote every row after every row spent minutes on a large run, in
    JSON encoding alone): rows are appended, so the writer keeps the text of each list's rows by position,
    with the row it was made from; a row replaced at its position (the kernel pass adds kernels) is encoded
    again.

    A measured row is never lost to the file system: where the file cannot be written (its folder removed
    during the sweep, a full disk), the run goes to a fallback file of the same name in the system's
    temporary folder (a new file, its name made unique), and `problem` says what happened, for the caller to
    report."""

    def __init__(self, path: Path, run: Run) -> None:
        self.path = Path(path)
        self.run = run
        self.problem: str | None = None
        self._encoded: dict[str, list[tuple[object, str]]] = {}  # a list's name: (row, its text) by position
        self.flush()

    def _texts(self, name: str, rows: list) -> list[str]:
        """The text of each row of the run's list `name`, encoding only those not encoded at their position."""
        encoded = self._encoded.setdefault(name, [])
        del encoded[len(rows) :]
        for position, row in enumerate(rows):
            if position == len(encoded):
                encoded.append((row, encode_row(row)))
            elif encoded[position][0] is not row:
                encoded[position] = (row, encode_row(row))
        return [text for _, text in encoded]

    def flush(self) -> None:
        text = document_text(self.run, {name: self._texts(name, rows) for name, rows in row_lists(self.run).items()})
        try:
            write_atomically(self.path, text)
        except OSError as exc:
            if self.problem:  # already the fallback
                raise GemmbenchError(f"cannot write the run file {self.path}: {exc.strerror}", "free the disk") from exc
            try:
                fallback = write_fallback(self.path.name, text)
            except OSError as again:
                raise GemmbenchError(
                    f"cannot write the run file {self.path} ({exc.strerror or exc}), nor a copy in the temporary "
                    f"folder ({again.strerror or again})",
                    "free the disk",
                ) from exc
            self.problem = f"cannot write {self.path} ({exc.strerror or exc}); the run is saved to {fallback}"
            self.path = fallback


def row_lists(run: Run) -> dict[str, list]:
    """The run file's lists of rows by name: its records, and its group rows where it holds any."""
    return {"records": run.records, **({"groups": run.groups} if run.groups else {})}


def encode_row(row) -> str:
    """One record or group row as it stands in the run file's list: its JSON, two levels in."""
    return _nested(json.dumps(to_row(row), indent=INDENT), depth=2)


def run_to_json(run: Run) -> str:
    """The run file's text: what `json.dumps(document, indent=INDENT)` writes, and a newline."""
    return document_text(run, {name: [encode_row(row) for row in rows] for name, rows in row_lists(run).items()})


def document_text(run: Run, lists: dict[str, list[str]]) -> str:
    """The run file's text, as `json.dumps(document, indent=INDENT)` lays the document out, and a newline: the
    head's values encoded by the json module one level in, then each list of rows from its rows' text
    (`lists`, by `encode_row`: the writer keeps them from one flush to the next, which json.dumps cannot).
    Its pieces are joined once: a large run's text is megabytes, and each copy of it costs."""
    head = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "provenance": run.provenance.to_dict(),
        "planned": run.planned,
        "complete": run.complete,
    }
    values = {key: [_nested(json.dumps(value, indent=INDENT), depth=1)] for key, value in head.items()}
    values |= {name: _laid_out("[]", [[text] for text in texts], depth=1) for name, texts in lists.items()}
    items = [[json.dumps(key), ": ", *pieces] for key, pieces in values.items()]
    return "".join([*_laid_out("{}", items, depth=0), "\n"])


def _laid_out(brackets: str, items: list[list[str]], depth: int) -> list[str]:
    """The pieces of a JSON object's or array's text at `depth`, from the pieces of each item's, as
    json.dumps(..., indent=INDENT) lays one out: each item on a line of its own one level in, commas between
    them; empty, its two brackets."""
    if not items:
        return [brackets]
    line = "\n" + " " * INDENT * (depth + 1)
    pieces = [brackets[0], line]
    for index, item in enumerate(items):
        if index:
            pieces.append("," + line)
        pieces += item
    return [*pieces, "\n" + " " * INDENT * depth, brackets[1]]


def _nested(text: str, depth: int) -> str:
    """JSON text from json.dumps(..., indent=INDENT), placed `depth` levels into a document: its lines after
    the first indented that much more (json escapes a newline inside a string, so each newline of its text
    is one of its layout's)."""
    return text.replace("\n", "\n" + " " * INDENT * depth)


def write_text(path: str, text: str, stdout) -> None:
    """Write `text` to `path`, or to `stdout` when path is '-'. Where `path` cannot be written (found only
    at the end, after the work), the text goes to a file of the same name in the system's temporary folder
    first (a new file: it never replaces one), so that nothing measured is lost, and the error names it."""
    if path == "-":
        stdout.write(text)
        return
    try:
        Path(path).write_text(text)
    except OSError as exc:
        try:
            fallback = write_fallback(Path(path).name, text)
        except OSError:
            raise GemmbenchError(f"cannot write {path}: {exc.strerror}", "choose another path") from exc
        raise GemmbenchError(
            f"cannot write {path}: {exc.strerror}; written to {fallback} instead", "choose another path next time"
        ) from exc


def load_run(path: Path) -> Run:
    """A run file (JSON) or a CSV export; the CSV carries no provenance. Every field of every record is
    checked: a malformed one is a GemmbenchError naming the file, the record and the field."""
    path = Path(path)
    if path.is_dir():
        runs = sorted(path.glob("*.json"))
        example = f", e.g. {runs[-1]}" if runs else ""
        raise GemmbenchError(f"{path} is a folder, not a run file", f"give one run file{example}")
    if path.exists() and not path.is_file():
        raise GemmbenchError(f"{path} is not a file (a device or a pipe?)", "give a run file or a CSV export")
    if not path.is_file():
        raise GemmbenchError(
            f"run file {path} does not exist", "give a path under results/ (gemmbench sweep saves there)"
        )
    if path.suffix.lower() == ".csv":
        from gemmbench.records.table import rows_from_csv

        records, groups, whole = rows_from_csv(path)
        return Run(Provenance(), records, complete=whole, groups=groups)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        if exc.doc.lstrip().startswith("{") and not exc.doc.rstrip().endswith("}"):  # it stops before it closes
            raise GemmbenchError(f"{path} ends before its JSON does (cut short?)", "give the whole run file") from exc
        raise GemmbenchError(
            f"{path} is not a gemmbench run file (invalid JSON: {exc})", "give a .json run file or a .csv export"
        ) from exc
    except UnicodeDecodeError as exc:
        raise GemmbenchError(
            f"{path} is not a gemmbench run file (not text: {exc})", "give a .json run file or a .csv export"
        ) from exc
    except RecursionError:  # a document nested deeper than the parser's stack
        raise GemmbenchError(
            f"{path} is not a gemmbench run file (JSON nested too deep)", "give a .json file written by gemmbench"
        ) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise GemmbenchError(f"{path} is not a gemmbench run file", "give a .json file written by gemmbench sweep")
    version = doc.get("schema_version", 0)
    if not is_int(version):
        raise GemmbenchError(f"{path}: schema_version {version!r} is not an integer", REWRITE)
    if version > SCHEMA_VERSION:
        raise GemmbenchError(
            f"{path} has schema version {version}, newer than this gemmbench reads ({SCHEMA_VERSION})",
            "upgrade gemmbench",
        )
    rows, group_rows = doc.get("records", []), doc.get("groups", [])
    planned, complete = doc.get("planned"), doc.get("complete", True)
    for key, value, ok in (
        ("records", rows, isinstance(rows, list)),
        ("groups", group_rows, isinstance(group_rows, list)),
        ("planned", planned, planned is None or is_int(planned)),
        ("complete", complete, isinstance(complete, bool)),
    ):
        if not ok:
            raise GemmbenchError(f"{path}: '{key}' is {value!r}, not what a run file holds there", REWRITE)
    provenance = Provenance.from_dict(doc.get("provenance", {}), f"{path}: provenance")
    older = version < PER_LAYER_VERSION
    records = [
        from_row(Record, alone_row(_marked_out_of_range(row), older), f"{path}: record {i}")
        for i, row in enumerate(rows, start=1)
    ]
    groups = [
        from_row(GroupRecord, alone_row(_upgraded(row), older), f"{path}: group record {i}")
        for i, row in enumerate(group_rows, start=1)
    ]
    return Run(provenance, records, planned, complete, groups)


# The schema version from which a row with a context holds times per layer; before it, every row held the
# GEMM's (or the group's) times alone, and a row timed with a producer its figures after it beside them.
PER_LAYER_VERSION = 2


# How an older run file's skipped row of a backend beyond its M range reads (Backend.unavailable_reason).
OUT_OF_RANGE_REASON = re.compile(r"^runs M <= \d+ only")


def _marked_out_of_range(row):
    """A record row of an older run file: a skipped row of a backend beyond its M range marked
    `out_of_range`, as sweeps mark them now."""
    if not isinstance(row, dict) or "out_of_range" in row or row.get("status") != SKIPPED:
        return row
    return {**row, "out_of_range": True} if OUT_OF_RANGE_REASON.match(str(row.get("reason"))) else row


def _upgraded(row):
    """A group row of an older run file, in today's columns (LEGACY_GROUP_COLUMNS)."""
    if not isinstance(row, dict) or not any(old in row for old in LEGACY_GROUP_COLUMNS):
        return row
    row = {LEGACY_GROUP_COLUMNS.get(key, key): value for key, value in row.items()}
    for prefix, timer in (
        ("serial_device", GRAPH_TIMER),
        ("parallel_device", GRAPH_TIMER),
        ("serial_latency", EVENTS_TIMER),
        ("parallel_latency", EVENTS_TIMER),
    ):
        if row.get(f"{prefix}_median_us") is not None:
            row.setdefault(f"{prefix}_timer", timer)
    return row
