"""docs/schema.md's tables: every column of a sweep row (Record) and of a group row (GroupRecord), in the
order of the run file's objects and the CSV header, with its type, whether it may be empty, and the record
field it comes from, all read from records/schema.py; and every key of the provenance, with its type, read
from records/provenance.py.

Usage: python scripts/docs/schema_table.py   (prints Markdown)
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from gemmbench.output.format import markdown_table
from gemmbench.records import GroupRecord, Provenance, Record
from gemmbench.records.provenance import FACTS
from gemmbench.records.runfile import SCHEMA_VERSION
from gemmbench.records.schema import LIST, columns, type_and_nullable

# How each column kind reads in the table (pandas dtypes of records/schema.py).
KINDS = {"Int64": "integer", "float64": "number", "boolean": "true/false", "string": "text", LIST: "list"}
# How each provenance fact's type reads in the table.
FACT_KINDS = {str: "text", int: "integer", float: "number", bool: "true/false", dict: "object"}


def column_table(record_type: type) -> str:
    rows = [
        [
            f"`{c.name}`",
            KINDS[c.kind] + (f" of {c.item_type.__name__}" if c.kind == LIST else ""),
            "no" if c.required or not c.nullable else "yes",
            f"`{c.field}.{c.part}`" if c.part else f"`{c.field}`",
        ]
        for c in columns(record_type)
    ]
    return markdown_table(["column", "type", "may be empty", "record field"], rows)


def provenance_table() -> str:
    hints = typing.get_type_hints(Provenance)
    rows = [[f"`{name}`", fact_kind(type_and_nullable(hints[name])[0])] for name in FACTS]
    return markdown_table(["key", "type"], rows)


def fact_kind(kind) -> str:
    """A fact's type as the table names it: a nested dataclass as an object of its fields."""
    if dataclasses.is_dataclass(kind):
        return "object: " + ", ".join(f"`{field.name}`" for field in dataclasses.fields(kind))
    return FACT_KINDS[kind]


def parse_args(argv=None) -> argparse.Namespace:
    return argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)


def main(argv=None) -> None:
    parse_args(argv)
    print(f"Schema version {SCHEMA_VERSION}.\n")
    print(f"### A sweep row (`Record`): {len(columns(Record))} columns\n")
    print(column_table(Record))
    print(f"\n### A group row (`GroupRecord`): {len(columns(GroupRecord))} columns\n")
    print(column_table(GroupRecord))
    print(f"\n### The provenance (`Provenance`): {len(FACTS)} keys\n")
    print(provenance_table())


if __name__ == "__main__":
    main()
