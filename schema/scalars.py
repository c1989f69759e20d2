"""Date and DateTime inputs the domain can compute with: ISO text within a sane range.

Strawberry's own scalars accept any ISO text Python can parse, from year 1 to 9999 with any
UTC offset; `0001-01-01T00:00:00+14:00` is then a moment before year 1 in UTC, which
asyncpg refuses (INTERNAL), and dates near either end overflow once a time zone or a
schedule's offset is applied. Here every DateTime is made aware (naive means UTC, as the
domain already reads it) and both must lie within years MIN_YEAR..MAX_YEAR; anything else
is a coercion error naming the value, like any other badly typed argument.
"""

from __future__ import annotations

import datetime as dt
from operator import methodcaller

import dateutil.parser  # type: ignore[import-untyped]
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

MIN_YEAR, MAX_YEAR = 1900, 2999
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
        raise _refuse("Date", value, f"Dates are accepted from {_RANGE}.")
    return parsed


def parse_datetime(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise _refuse("DateTime", value, "Expected a string.")
    try:
        parsed = dateutil.parser.isoparse(value)
    except (ValueError, OverflowError) as exc:
        raise _refuse("DateTime", value, str(exc)) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    utc: dt.datetime | None
    try:
        utc = parsed.astimezone(dt.UTC)
    except OverflowError:  # before year 1 or after 9999 once in UTC
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise _refuse("DateTime", value, f"Moments are accepted from {_RANGE} (UTC).")
    return utc


_isoformat = methodcaller("isoformat")

DATE = ScalarDefinition(name="Date", description="Date (isoformat)", specified_by_url=None,
                        serialize=_isoformat, parse_value=parse_date, parse_literal=None,
                        origin=dt.date)
DATETIME = ScalarDefinition(name="DateTime", description="Date with time (isoformat)",
                            specified_by_url=None, serialize=_isoformat,
                            parse_value=parse_datetime, parse_literal=None, origin=dt.datetime)
SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {dt.date: DATE, dt.datetime: DATETIME}
