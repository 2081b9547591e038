"""Records and run files: one frozen row per (case, backend), the run file written after every row,
CSV and JSON exports in fixed units, and loading saved runs back.

Units are fixed in files: microseconds (`*_us`), TFLOP/s, GB/s; the unit is in the column name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from gemmbench.errors import GemmbenchError
from gemmbench.shapes import Case

SCHEMA = "gemmbench.run"
SCHEMA_VERSION = 1

OK = "ok"
SKIPPED = "skipped"
ERROR = "error"

# fp32 accumulation over K = 7168 lands near 1e-6, bf16 rounding of the output near 1.5e-3: a relative
# error under 1e-4 means the backend delivers fp32-output semantics, with wide margins on both sides.
FP32_ACCURATE_REL_ERR = 1e-4


@dataclass(frozen=True)
class KernelRun:
    """One device kernel of one call, as torch.profiler saw it."""

    name: str
    duration_us: float | None = None


KERNEL_SEPARATOR = " ; "


@dataclass(frozen=True)
class Record:
    """One (case, backend) point. Skips and errors are records too, with the reason."""

    model: str
    gemm: str
    role: str
    m: int
    n: int
    k: int
    in_dtype: str
    out_dtype: str
    backend: str
    status: str
    reason: str = ""
    rel_err: float | None = None
    top_k: int | None = None
    topk_mismatch: float | None = None  # share of tokens whose top-k expert set differs from float64's
    latency_timer: str | None = None
    latency_median_us: float | None = None
    latency_iqr_us: float | None = None
    latency_min_us: float | None = None
    latency_ci_low_us: float | None = None  # 95% confidence interval of the median
    latency_ci_high_us: float | None = None
    latency_samples: int | None = None
    device_timer: str | None = None
    device_median_us: float | None = None
    device_iqr_us: float | None = None
    device_min_us: float | None = None
    device_ci_low_us: float | None = None
    device_ci_high_us: float | None = None
    device_samples: int | None = None
    noisy: bool | None = None  # a timer ran out of budget before its CI reached the target
    l2_mode: str | None = None  # "cold" (inputs rotated past the L2), "hot", or None on the CPU
    l2_copies: int | None = None
    tflops: float | None = None
    gbps: float | None = None
    floor_us: float | None = None  # max(bytes / measured bandwidth, FLOPs / measured bf16 throughput)
    pct_of_floor: float | None = None  # floor_us over the measured time, in percent
    sm_clock_mhz: int | None = None  # lowest SM clock read before and after the timers
    mem_clock_mhz: int | None = None
    temp_c: int | None = None  # highest
    power_w: float | None = None  # highest
    throttle_reasons: str | None = None  # NVML slowdown reasons seen, comma-separated
    throttled: bool | None = None
    kernels: tuple[KernelRun, ...] | None = None  # one call's kernels in launch order; None: not profiled
    kernel_count: int | None = None
    kernel_sum_us: float | None = None

    @property
    def case(self) -> Case:
        return Case(self.model, self.gemm, self.role, self.m, self.n, self.k, self.in_dtype, self.out_dtype, self.top_k)

    @property
    def best_time_us(self) -> float | None:
        """Device time where measured (it excludes launch gaps), else the latency."""
        return self.device_median_us if self.device_median_us is not None else self.latency_median_us

    def accurate(self, tolerance: float = FP32_ACCURATE_REL_ERR) -> bool:
        """A timed-and-checked row whose relative error is within `tolerance` (default: fp32 output)."""
        return self.status == OK and self.rel_err is not None and self.rel_err <= tolerance

    @classmethod
    def for_case(cls, case: Case, backend: str, status: str, reason: str = "", **values) -> Record:
        return cls(
            case.model, case.gemm, case.role, case.m, case.n, case.k, case.in_dtype, case.out_dtype,
            backend, status, reason, top_k=case.top_k, **values,
        )


RECORD_COLUMNS = [f.name for f in fields(Record)]
_INT_COLUMNS = {f.name for f in fields(Record) if f.type in ("int", "int | None")}
_FLOAT_COLUMNS = {f.name for f in fields(Record) if f.type == "float | None"}
_OPTIONAL_STR_COLUMNS = {f.name for f in fields(Record) if f.type == "str | None"}
_BOOL_COLUMNS = {f.name for f in fields(Record) if f.type == "bool | None"}


def _grouped(records: Iterable[Record], key) -> dict:
    groups: dict = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


def by_shape(records: Iterable[Record]) -> dict[tuple, list[Record]]:
    """Records grouped by GEMM shape (model, gemm, N, K), in first-seen order: one table or panel each."""
    return _grouped(records, lambda record: record.case.shape_key)


def by_case(records: Iterable[Record]) -> dict[Case, list[Record]]:
    """Records grouped by case (shape and M), in first-seen order: one kernel table each."""
    return _grouped(records, lambda record: record.case)


@dataclass
class Run:
    """A sweep's provenance and records, as saved in a run file."""

    provenance: dict
    records: list[Record] = field(default_factory=list)


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
        raise GemmbenchError(f"cannot create the results folder {path}: {exc.strerror}", "pass --out-dir to a writable folder, or --no-save") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise GemmbenchError(f"the results folder {path} is not writable", "pass --out-dir to a writable folder, or --no-save")
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
        raise GemmbenchError(f"cannot write {target}: folder {parent} does not exist", "create it or choose another path")
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
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECORD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {k: ("" if v is None else v) for k, v in record_to_dict(record).items()}
        row["kernels"] = KERNEL_SEPARATOR.join(k.name for k in record.kernels or ())
        writer.writerow(row)
    return buffer.getvalue()


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
        raise GemmbenchError(f"run file {path} does not exist", "give a path under results/ (gemmbench sweep saves there)")
    if path.suffix.lower() == ".csv":
        return Run({}, _records_from_csv(path))
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GemmbenchError(f"{path} is not a gemmbench run file (invalid JSON: {exc})", "give a .json run file or a .csv export") from exc
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
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("model", "gemm", "m", "n", "k", "backend", "status") if c not in (reader.fieldnames or [])]
        if missing:
            raise GemmbenchError(f"{path} is not a gemmbench CSV export (no column '{missing[0]}')", "give a CSV written by gemmbench --csv")
        try:
            return [_record_from_dict(_parse_csv_row(row), path) for row in reader]
        except (ValueError, KeyError) as exc:
            raise GemmbenchError(f"{path} has a malformed value: {exc}", "give a CSV written by gemmbench --csv") from exc


def _parse_csv_row(row: dict) -> dict:
    parsed: dict = {}
    for key, text in row.items():
        if key not in RECORD_COLUMNS:
            continue
        if key == "kernels":
            parsed[key] = [{"name": name} for name in text.split(KERNEL_SEPARATOR)] if text else None
        elif key in _INT_COLUMNS:
            parsed[key] = int(text) if text else None
        elif key in _FLOAT_COLUMNS:
            parsed[key] = float(text) if text else None
        elif key in _OPTIONAL_STR_COLUMNS:
            parsed[key] = text or None
        elif key in _BOOL_COLUMNS:
            parsed[key] = {"True": True, "False": False, "": None}[text]
        else:
            parsed[key] = text
    return parsed
