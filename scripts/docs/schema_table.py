"""docs/schema.md's tables: every column of a sweep row (Record) and of a group row (GroupRecord), in the
order of the run file's objects and the CSV header, with its type, whether it may be empty, and the record
field it comes from, all read from records/schema.py.

Usage: python scripts/docs/schema_table.py   (prints Markdown)
"""

from __future__ import annotations

import argparse

from gemmbench.output.format import markdown_table
from gemmbench.records import GroupRecord, Record
from gemmbench.records.runfile import SCHEMA_VERSION
from gemmbench.records.schema import LIST, columns

# How each column kind reads in the table (pandas dtypes of records/schema.py).
KINDS = {"Int64": "integer", "float64": "number", "boolean": "true/false", "string": "text", LIST: "list"}


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


def parse_args(argv=None) -> argparse.Namespace:
    return argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)


def main(argv=None) -> None:
    parse_args(argv)
    print(f"Schema version {SCHEMA_VERSION}.\n")
    print(f"### A sweep row (`Record`): {len(columns(Record))} columns\n")
    print(column_table(Record))
    print(f"\n### A group row (`GroupRecord`): {len(columns(GroupRecord))} columns\n")
    print(column_table(GroupRecord))


if __name__ == "__main__":
    main()
