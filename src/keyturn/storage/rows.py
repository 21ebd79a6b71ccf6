"""Records to table rows and back, one rule for every table.

Each record in `records` has exactly the columns of its table, by name
(`tests/storage/test_rows.py` holds them together), so one mapping serves all
of them instead of a hand-written pair per table: JSON columns hold a record's
tuples as lists; every other value passes as it is (SQLAlchemy's own types
already give back ``bool`` for a Boolean column on SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

R = TypeVar("R")


_NAMES: dict[type[Any], tuple[str, ...]] = {}


def field_names(record_type: type[Any]) -> tuple[str, ...]:
    names = _NAMES.get(record_type)
    if names is None:
        names = _NAMES[record_type] = tuple(f.name for f in fields(record_type))
    return names


def to_row(record: Any) -> dict[str, Any]:
    """The record's fields as column values (tuples as lists, for JSON columns)."""
    row: dict[str, Any] = {}
    for name in field_names(type(record)):
        value = getattr(record, name)
        row[name] = list(value) if isinstance(value, tuple) else value
    return row


def to_record(record_type: type[R], row: Mapping[str, Any]) -> R:
    """The record of a row that has (at least) the record's columns (lists as tuples)."""
    values: dict[str, Any] = {}
    for name in field_names(record_type):
        value = row[name]
        values[name] = tuple(value) if isinstance(value, list) else value
    return record_type(**values)
