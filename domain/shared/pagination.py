"""Relay-style keyset pagination: opaque cursors over (sort value, id).

A cursor is client input like any other: `decode_cursor` checks its length, encoding, shape
and every value's type and range (text PostgreSQL accepts, a UUID, an int4, a datetime
PostgreSQL can compare) and answers INVALID_CURSOR at `after` for anything else, so no
forged cursor reaches a query.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import orjson

from domain.shared.errors import DomainError
from domain.shared.limits import bad_text

T = TypeVar("T")
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_CURSOR = 1024  # characters; ours are under 400
_MAX_TEXT = 600
_MAX_INT = 2**31 - 1  # version numbers are int4

CursorKind = Literal["text", "int", "uuid", "datetime"]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool
    total: int
    has_previous: bool = False


def encode_cursor(values: list[Any]) -> str:
    raw = orjson.dumps(values, default=str)  # compact JSON, UTF-8 (decode reads either)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InvalidCursor(DomainError):
    code = "INVALID_CURSOR"

    def __init__(self, path: str = "after") -> None:
        super().__init__("not a cursor from this list", path=path)


def decode_cursor(cursor: str | None, *, kinds: Sequence[CursorKind], path: str = "after"
                  ) -> list[Any] | None:
    """The cursor's values parsed as `kinds` (UUID, datetime, int, str), or InvalidCursor."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR:
        raise InvalidCursor(path)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.b64decode(padded.encode(), altchars=b"-_", validate=True))
    except (ValueError, UnicodeError, RecursionError, binascii.Error) as exc:
        raise InvalidCursor(path) from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise InvalidCursor(path)
    return [cursor_value(kind, value, path=path) for kind, value in zip(kinds, values,
                                                                         strict=True)]


def cursor_value(kind: CursorKind, value: Any, *, path: str = "after") -> Any:
    """One cursor value checked and parsed as `kind`, or InvalidCursor."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
            raise InvalidCursor(path)
        return value
    if not isinstance(value, str) or len(value) > _MAX_TEXT or bad_text(value):
        raise InvalidCursor(path)
    if kind == "text":
        return value
    try:
        if kind == "uuid":
            return UUID(value)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor(path) from exc


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if first < 0 or first > MAX_PAGE:
        raise DomainError(f"first must be between 0 and {MAX_PAGE}", path="first",
                          code="INVALID_PAGE_SIZE")
    return first
