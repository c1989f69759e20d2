"""Date and DateTime as Strawberry's, within years every date computation can reach.

A renewal date or an `asOf` moment is shifted by time zones and by day counts of at most
ten years (config schedules): near year 1 or 9999 that overflows Python's datetime, deep in
a resolver. Refused here instead, as the argument's coercion error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from strawberry.schema.types.base_scalars import (
    DateDefinition,
    DateTimeDefinition,
    wrap_parser,
)
from strawberry.types.scalar import ScalarDefinition

FIRST_YEAR = 1000
LAST_YEAR = 8999
_RANGE = f"years {FIRST_YEAR} to {LAST_YEAR}"


def _date(text: str) -> dt.date:
    value = dt.date.fromisoformat(text)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"out of range ({_RANGE})")
    return value


def _datetime(text: str) -> dt.datetime:
    assert DateTimeDefinition.parse_value is not None
    value = DateTimeDefinition.parse_value(text)  # Strawberry's parser and its errors
    assert isinstance(value, dt.datetime)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"out of range ({_RANGE})")
    return value


def _replace(base: ScalarDefinition, parse: Callable[[object], object]) -> ScalarDefinition:
    return ScalarDefinition(
        name=base.name, description=f"{base.description}, {_RANGE}",
        specified_by_url=base.specified_by_url, serialize=base.serialize,
        parse_value=parse, parse_literal=None, origin=base.origin)


OVERRIDES: dict[object, ScalarDefinition] = {
    dt.date: _replace(DateDefinition, wrap_parser(_date, "Date")),
    dt.datetime: _replace(DateTimeDefinition, wrap_parser(_datetime, "DateTime")),
}
