"""Ids from clients: a malformed id finds nothing, exactly like a missing one."""

from __future__ import annotations

from uuid import UUID

from domain.shared.errors import NotFound


def parse_id(value: str | UUID | None, *, path: str, message: str = "not found") -> UUID:
    """A UUID, or the NotFound a missing row gives (no hint that the id was malformed)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(message, path=path) from None
