"""Tables of records: the pandas DataFrame of `Run.to_frame()`, the CSV export (the same columns, in the same
order; kernels as names joined by KERNEL_SEPARATOR), and reading a CSV export back into records.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from gemmbench.errors import GemmbenchError, first_line
from gemmbench.records.group import GroupRecord
from gemmbench.records.record import Record
from gemmbench.records.schema import (
    LIST,
    V1_IN_CONTEXT_COLUMNS,
    alone_row,
    column_names,
    columns,
    from_row,
    scalar_dtypes,
    to_row,
)

if TYPE_CHECKING:
    import pandas as pd

# Kernel names (and group members) in one CSV cell; no kernel name contains it.
KERNEL_SEPARATOR = " ; "
# Raw samples (`--keep-samples`) in a CSV cell: numbers separated by spaces.
SAMPLE_SEPARATOR = " "


def _whole_number(text: str) -> int:
    """An integer cell, also as a float that is whole (`3501.0`: a CSV that pandas read and wrote again)."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


# Reading a CSV cell as the value its column holds (empty cells of nullable columns are None).
_CELL_PARSERS = {
    "Int64": _whole_number,
    "float64": float,
    "boolean": lambda text: {"True": True, "False": False}[text],
    "string": str,
}


def records_frame(records: Iterable[Record]) -> pd.DataFrame:
    """One row per record: numbers numeric, flags boolean, kernels as lists of names."""
    import pandas as pd

    rows = [to_row(record) for record in records]
    for row in rows:
        row["kernels"] = None if row["kernels"] is None else [kernel["name"] for kernel in row["kernels"]]
    return pd.DataFrame(rows, columns=column_names(Record)).astype(scalar_dtypes(Record))


def records_to_csv(records: Iterable[Record]) -> str:
    """One row per (case, backend), the record's columns in order, empty cells for missing values."""
    frame = records_frame(records)
    frame["kernels"] = frame["kernels"].map(lambda names: KERNEL_SEPARATOR.join(names or ()))
    for column in _sample_columns():
        frame[column] = frame[column].map(
            lambda values: None if values is None else SAMPLE_SEPARATOR.join(map(repr, values))
        )
    return frame.to_csv(index=False, lineterminator="\n")


def _sample_columns() -> list[str]:
    """The columns of raw samples: lists of numbers."""
    return [c.name for c in columns(Record) if c.kind == LIST and c.item_type is float]


def rows_to_csv(rows: list) -> str:
    """The CSV export of a run's rows: its group rows where it holds them, else its records."""
    return groups_to_csv(rows) if rows and isinstance(rows[0], GroupRecord) else records_to_csv(rows)


class CsvAppender:
    """A CSV export kept on disk as rows finish (`--csv FILE`), as the run file is: the header with the first
    row, then each new row appended, so that a process that dies keeps every finished row. The export at the
    end rewrites the file whole (the kernel pass adds kernels to rows already written). Where the file cannot
    be written, appending stops: the export at the end finds the same problem, says so and saves the CSV to a
    fallback file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._started = False
        self._failed = False

    def append(self, row) -> None:
        if self._failed:
            return
        header, line = rows_to_csv([row]).split("\n", 1)
        try:
            with self.path.open("a" if self._started else "w") as file:
                file.write(line if self._started else f"{header}\n{line}")
        except OSError:
            self._failed = True
        self._started = True


def groups_frame(groups: Iterable[GroupRecord]) -> pd.DataFrame:
    """One row per group row (group, M, backend, context): numbers numeric, flags boolean, the members alone
    as lists of {gemm, stream, device_us}."""
    import pandas as pd

    rows = [to_row(record) for record in groups]
    return pd.DataFrame(rows, columns=column_names(GroupRecord)).astype(scalar_dtypes(GroupRecord))


def groups_to_csv(groups: Iterable[GroupRecord]) -> str:
    """One row per (group, M, backend); members alone as `gemm@stream=us` joined with KERNEL_SEPARATOR."""
    frame = groups_frame(groups)
    frame["members"] = frame["members"].map(
        lambda members: KERNEL_SEPARATOR.join(f"{m['gemm']}@{m['stream']}={m['device_us']}" for m in members or ())
    )
    return frame.to_csv(index=False, lineterminator="\n")


def rows_from_csv(path: Path) -> tuple[list[Record], list[GroupRecord], bool]:
    """The records of a CSV export (a sweep's, or a group run's: it has a `group` column), every cell
    checked (a malformed one names the line and the column), and whether the file is whole: a last row cut
    short (a process that died while appending it, `--csv FILE`) is left out, and the run is incomplete."""
    import pandas as pd

    malformed = "give a CSV written by gemmbench --csv"
    try:
        text, whole = _whole_rows(path.read_text())
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise GemmbenchError(f"{path} is not a CSV file: {first_line(exc)}", malformed) from exc
    record_type = GroupRecord if "group" in frame.columns else Record
    missing = [c.name for c in columns(record_type) if c.required and c.name not in frame.columns]
    if missing:
        raise GemmbenchError(f"{path} is not a gemmbench CSV export (no column '{missing[0]}')", malformed)
    names = set(column_names(record_type))
    if frame.columns[-1] not in names:  # an export's header ends in a column name: this one was cut short
        raise GemmbenchError(
            f"{path}'s header ends in '{frame.columns[-1]}', no column of an export: cut short?", malformed
        )
    if frame.empty:
        cut = "" if whole else " whole (its one row was cut short)"
        raise GemmbenchError(f"{path} holds a header and no rows{cut}", malformed)
    known = [c for c in columns(record_type) if c.name in frame.columns]
    # An export of a version-1 run: its rows hold times alone, beside figures after a producer (dropped).
    older = any(column in frame.columns for column in V1_IN_CONTEXT_COLUMNS)
    rows = []
    for line, cells in enumerate(frame[[c.name for c in known]].to_dict("records"), start=2):  # line 1: header
        row = {}
        for column in known:
            text = cells[column.name]
            if text == "" and column.nullable:
                row[column.name] = None
            elif column.kind == LIST and column.item_type is float:
                row[column.name] = _numbers(text)
            elif column.kind == LIST:
                row[column.name] = [_list_item(column.name, item) for item in text.split(KERNEL_SEPARATOR)]
            else:
                try:
                    row[column.name] = _CELL_PARSERS[column.kind](text)
                except (ValueError, KeyError):
                    raise GemmbenchError(f"{path}: line {line} has {column.name} = {text!r}", malformed) from None
        rows.append(from_row(record_type, alone_row(row, older), f"{path}: line {line}"))
    return (rows, [], whole) if record_type is Record else ([], rows, whole)


def _whole_rows(text: str) -> tuple[str, bool]:
    """A CSV export's text without a last record that has fewer fields than its header or an open quote
    (cut short), and whether it was whole. A file that ends in its newline, or whose last record (after
    the last newline outside quotes) has every field, is whole."""
    if not text or text.endswith("\n"):
        return text, True
    in_quotes, last_start = False, 0
    for index, char in enumerate(text):
        if char == '"':
            in_quotes = not in_quotes  # a doubled quote inside a field toggles twice
        elif char == "\n" and not in_quotes:
            last_start = index + 1
    if last_start == 0:  # a header alone
        return text, True
    fields = lambda record: len(next(csv.reader(io.StringIO(record)), []))  # noqa: E731
    if not in_quotes and fields(text[last_start:]) >= fields(text[:last_start]):
        return text, True
    return text[:last_start], False


def _numbers(text: str) -> list:
    """A cell of raw samples; a word that is not a number stays text, for from_row to name the cell."""
    values: list = []
    for word in text.split():
        try:
            values.append(float(word))
        except ValueError:
            values.append(word)
    return values


def _list_item(column: str, text: str) -> dict:
    """One item of a list cell: a kernel's name, or a group member as `gemm@stream=us` (groups_to_csv)."""
    if column != "members":
        return {"name": text}
    gemm, _, rest = text.partition("@")
    stream, _, device_us = rest.partition("=")
    try:
        time = None if device_us in ("", "None") else float(device_us)
    except ValueError:
        time = device_us  # from_row names the cell
    return {"gemm": gemm, "stream": stream, "device_us": time}
