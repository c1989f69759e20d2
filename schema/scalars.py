"""Date and DateTime inputs the domain can compute with: ISO text within a sane range.

Strawberry's own scalars accept any ISO text Python can parse, from year 1 to 9999 with any
UTC offset; `0001-01-01T00:00:00+14:00` is then a moment before year 1 in UTC, which
asyncpg refuses (INTERNAL), and dates near either end overflow once a time zone or a
schedule's offset is applied. Here every DateTime is made aware (naive means UTC, as the
domain already reads it) and both must lie within years MIN_YEAR..MAX_YEAR; anything else
is a coercion error naming the value, like any other badly typed argument. Within these
years a time zone's offset or a config's day counts (at most 3660) never leave what Python
and PostgreSQL can hold.
"""

from __future__ import annotations

import datetime as dt
from operator import methodcaller

from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

MIN_YEAR, MAX_YEAR = 1000, 8999  # a renewal date shifted by a config's days (<= 3660) stays valid
_RANGE = f"years {MIN_YEAR} to {MAX_YEAR}"


def _refuse(kind: str, value: object, why: str) -> StrawberryInputCoercionError:
    shown = str(value)[:64]
    return StrawberryInputCoercionError(f'Value cannot represent a {kind}: "{shown}". {why}')


def parse_date(value: object) -> dt.date:
    if not isinstance(value, str):
        raise _refuse("Date", value, "Expected a string.")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise _refuse("Date", value, str(exc)) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _refuse("Date", value, f"out of range ({_RANGE}).")
    return parsed


def parse_datetime(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise _refuse("DateTime", value, "Expected a string.")
    try:
        parsed = dt.datetime.fromisoformat(value)  # ISO 8601 as Python 3.11 reads it
    except (ValueError, OverflowError) as exc:
        raise _refuse("DateTime", value, str(exc)) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _refuse("DateTime", value, f"out of range ({_RANGE}).")
    return parsed.astimezone(dt.UTC)  # within these years, never beyond what UTC can hold


_isoformat = methodcaller("isoformat")

DATE = ScalarDefinition(name="Date", description=f"Date (isoformat), {_RANGE}",
                        specified_by_url=None,
                        serialize=_isoformat, parse_value=parse_date, parse_literal=None,
                        origin=dt.date)
DATETIME = ScalarDefinition(name="DateTime",
                            description=f"Date with time (isoformat), {_RANGE}",
                            specified_by_url=None, serialize=_isoformat,
                            parse_value=parse_datetime, parse_literal=None, origin=dt.datetime)
SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {dt.date: DATE, dt.datetime: DATETIME}
