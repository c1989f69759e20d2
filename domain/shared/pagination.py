"""Relay-style keyset pagination: opaque cursors over (sort value, id)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from domain.shared.errors import DomainError

T = TypeVar("T")
DEFAULT_PAGE = 20
MAX_PAGE = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool
    total: int
    has_previous: bool = False


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("not a cursor from this list", path="after",
                          code="INVALID_CURSOR") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise DomainError("not a cursor from this list", path="after", code="INVALID_CURSOR")
    return values


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if first < 0 or first > MAX_PAGE:
        raise DomainError(f"first must be between 0 and {MAX_PAGE}", path="first",
                          code="INVALID_PAGE_SIZE")
    return first
