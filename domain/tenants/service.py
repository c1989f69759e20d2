"""Tenant rules: creation (operator path) and company contacts."""

from __future__ import annotations

from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.errors import DomainError
from domain.tenants import repository
from domain.tenants.models import Tenant


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DomainError(f"unknown time zone {name!r}", path="timeZone",
                          code="INVALID_TIME_ZONE") from exc
    return name


async def create(session: AsyncSession, *, name: str, time_zone: str = "UTC") -> Tenant:
    """Create a tenant (owner path: the app role cannot insert tenants)."""
    name = name.strip()
    if not name:
        raise DomainError("a tenant needs a name", path="name", code="REQUIRED")
    return await repository.add(session, Tenant(name=name, time_zone=check_time_zone(time_zone)))


async def get(session: AsyncSession, tenant_id: UUID) -> Tenant | None:
    return await repository.get(session, tenant_id)
