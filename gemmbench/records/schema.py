"""The columns of a record type, derived from its dataclass fields, and the two ways across: a record to one
flat row (the run file's objects, the CSV's and the DataFrame's rows) and a row back to a checked record.

A nested summary (`TimerSummary`, `ClockSummary`) becomes one column per field of its own, named by the
record field's `flatten` metadata (records/record.py): adding a statistic to TimerSummary adds it to every
timer of Record and GroupRecord, to the run file, the CSV and `to_frame()`, with nothing else to edit.
A tuple of a dataclass (`kernels`, `members`) is one column holding a list of objects.
"""

from __future__ import annotations

import functools
import json
import math
import typing
from dataclasses import MISSING, asdict, dataclass, fields

from gemmbench.errors import GemmbenchError
from gemmbench.records.record import FLATTEN, STATUSES
from gemmbench.spec.cases import MAX_DIMENSION

# Column kinds: pandas dtypes of scalar columns, and LIST for a tuple of a dataclass.
_KINDS = {int: "Int64", float: "float64", bool: "boolean", str: "string"}
LIST = "list"
REWRITE = "re-run the sweep that made it, or correct the file"
# Values a file may not hold: GEMM dimensions are positive; times (`*_us`), counts and the ratios below
# are not negative, and a median time is positive (no timer reads zero for a call).
POSITIVE_COLUMNS = ("m", "n", "k")
NEVER_NEGATIVE_COLUMNS = (
    "rel_err",
    "topk_mismatch",
    "weight_l1_mean",
    "weight_l1_max",
    "load_change",
    "tflops",
    "gbps",
    "pct_of_floor",
    "speedup",
    "overlap_efficiency",
)
TIME_SUFFIX = "_us"
MEDIAN_TIME_SUFFIX = "_median_us"
# What marks a row of a version-1 run file (or its CSV export) timed with a producer: its figures after the
# producer, beside its times alone (`device`, `serial_device`, ...), were differences of two timers.
V1_IN_CONTEXT_COLUMNS = ("context_device_median_us", "context_latency_median_us", "parallel_context_device_median_us")


def alone_row(row, older: bool = False):
    """A row of a version-1 run file or its CSV export (`older`, or one with its in-context columns), as
    today's row of its times alone: it keeps them and drops the differences (today a row with a context
    holds times per layer, which it never measured). A skipped or error row of such a file, with no
    figures, stood for the GEMM alone as well."""
    if not isinstance(row, dict) or row.get("context") is None:
        return row
    if older or any(row.get(column) is not None for column in V1_IN_CONTEXT_COLUMNS):
        return {**row, "context": None}
    return row


@dataclass(frozen=True)
class Column:
    name: str  # the flat name, as in the run file and the CSV header
    kind: str  # Int64, float64, boolean, string, or LIST
    nullable: bool  # may be None (empty in a CSV)
    required: bool  # a row must have it (the field has no default)
    field: str  # the record's field it comes from...
    part: str | None = None  # ...and, for a nested summary, the summary's field
    item_type: type | None = None  # LIST: the dataclass of its items


def type_and_nullable(hint) -> tuple[object, bool]:
    """(the type inside an `X | None` hint, whether None is allowed)."""
    args = [t for t in typing.get_args(hint) if t is not type(None)]
    return (args[0] if args else hint), type(None) in typing.get_args(hint)


@functools.cache
def columns(record_type: type) -> tuple[Column, ...]:
    """Every column of `record_type`, in field order, nested summaries expanded in place."""
    hints = typing.get_type_hints(record_type)
    result = []
    for f in fields(record_type):
        kind, nullable = type_and_nullable(hints[f.name])
        required = f.default is MISSING and f.default_factory is MISSING
        if FLATTEN in f.metadata:
            part_hints = typing.get_type_hints(kind)
            for part in fields(kind):
                part_kind, _ = type_and_nullable(part_hints[part.name])
                name = f"{f.metadata[FLATTEN]}{part.name}"
                result.append(Column(name, _KINDS[part_kind], True, False, f.name, part.name))
        elif typing.get_origin(kind) is tuple:
            result.append(Column(f.name, LIST, nullable, required, f.name, item_type=typing.get_args(kind)[0]))
        else:
            result.append(Column(f.name, _KINDS[kind], nullable, required, f.name))
    return tuple(result)


def column_names(record_type: type) -> list[str]:
    return [c.name for c in columns(record_type)]


def scalar_dtypes(record_type: type) -> dict[str, str]:
    """pandas dtypes of the scalar columns."""
    return {c.name: c.kind for c in columns(record_type) if c.kind != LIST}


def _clean(value):
    """JSON has no NaN or infinity: write them as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_row(record) -> dict:
    """One flat row: every column, in order; lists of dataclasses as lists of dicts, lists of numbers as lists."""
    row = {}
    for column in columns(type(record)):
        value = getattr(record, column.field)
        if column.part is not None:
            value = None if value is None else getattr(value, column.part)
        elif column.kind == LIST and value is not None and column.item_type is float:
            value = [_clean(v) for v in value]
        elif column.kind == LIST and value is not None:
            value = [{key: _clean(v) for key, v in asdict(item).items()} for item in value]
        row[column.name] = _clean(value)
    return row


def from_row(record_type: type, row, where: str):
    """The record a flat row describes, every value checked: a malformed one is a GemmbenchError naming
    `where` and the column. Columns the row lacks take their defaults (older files); unknown ones are
    ignored (newer files)."""
    if not isinstance(row, dict):
        raise GemmbenchError(f"{where} is {json.dumps(row)}, not a record", REWRITE)
    values: dict = {}
    parts: dict[str, dict] = {}
    for column in columns(record_type):
        if column.name not in row:
            if column.required:
                raise GemmbenchError(f"{where} has no field '{column.name}'", REWRITE)
            continue
        value = row[column.name]
        problem = _problem(column, value)
        if problem:
            raise GemmbenchError(f"{where} has {column.name} = {json.dumps(value)}: {problem}", REWRITE)
        if column.part is not None:
            parts.setdefault(column.field, {})[column.part] = value
        elif column.kind == LIST and value is not None and column.item_type is float:
            values[column.field] = tuple(float(v) for v in value)
        elif column.kind == LIST and value is not None:
            values[column.field] = tuple(column.item_type(**item) for item in value)
        else:
            values[column.field] = value
    hints = _type_hints(record_type)
    for name, given in parts.items():
        values[name] = _summary(type_and_nullable(hints[name])[0], given)
    return record_type(**values)


@functools.cache
def _type_hints(record_type: type) -> dict:
    """The resolved annotations of a record type: resolving them costs more than reading a row (0.7 ms, 80%
    of loading a run before it was cached)."""
    return typing.get_type_hints(record_type)


def _summary(summary_type: type, given: dict):
    """A nested summary from its columns; None where none is set, or where a field it needs is missing
    (a timer with no median was not timed)."""
    if all(value is None for value in given.values()):
        return None
    needed = [f.name for f in fields(summary_type) if f.default is MISSING]
    if any(given.get(name) is None for name in needed):
        return None
    return summary_type(**given)


def _problem(column: Column, value) -> str | None:
    """What is wrong with `value` for `column`, or None."""
    if value is None:
        return None if column.nullable else "missing (null)"
    if column.kind == LIST:
        return _list_problem(column.item_type, value)
    if column.kind == "Int64" and not is_int(value):
        return "not an integer"
    if column.kind == "float64" and not is_finite_number(value):
        return "not a finite number"
    if column.name in POSITIVE_COLUMNS and value <= 0:
        return "not a positive integer"
    if column.name in POSITIVE_COLUMNS and value > MAX_DIMENSION:
        return f"above {MAX_DIMENSION}, the largest dimension gemmbench takes"
    if column.kind in ("Int64", "float64") and value < 0 and _never_negative(column.name):
        return "negative"
    if column.name.endswith(MEDIAN_TIME_SUFFIX) and value == 0:
        return "zero (a measured time is positive)"
    if column.kind == "boolean" and not isinstance(value, bool):
        return "not true or false"
    if column.kind == "string" and not isinstance(value, str):
        return "not a string"
    if column.name == "status" and value not in STATUSES:
        return f"not a status ({', '.join(STATUSES)})"
    return None


def _never_negative(name: str) -> bool:
    if name in NEVER_NEGATIVE_COLUMNS:
        return True
    return name.endswith(TIME_SUFFIX) or name.endswith("_samples")


def _list_problem(item_type: type, value) -> str | None:
    if item_type is float:  # raw samples
        ok = isinstance(value, list) and all(is_finite_number(v) for v in value)
        return None if ok else "not a list of finite numbers"
    hints = _type_hints(item_type)
    required = {f.name for f in fields(item_type) if f.default is MISSING}
    ok = isinstance(value, list) and all(
        isinstance(item, dict)
        and set(item) <= set(hints)
        and required <= set(item)
        and all(_item_value_ok(hints[key], v) for key, v in item.items())
        for item in value
    )
    return None if ok else f"not a list of objects with {', '.join(hints)}"


def _item_value_ok(hint, value) -> bool:
    """A list item's value against its hint (str, or float | None)."""
    kind, nullable = type_and_nullable(hint)
    if value is None:
        return nullable
    return isinstance(value, str) if kind is str else is_finite_number(value)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
