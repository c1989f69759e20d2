"""Every query for users."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.db import tx_of
from domain.shared.models import from_row
from domain.users.models import User


async def add(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def get(session: AsyncSession, user_id: UUID) -> User | None:
    # RLS scopes the lookup to the current tenant; the primary key is (tenant_id, id).
    rows = await session.execute(select(User).where(User.id == user_id))  # type: ignore[arg-type]
    return rows.scalar_one_or_none()


_USER_MANY = ("SELECT " + ", ".join(User.model_fields) +
               " FROM users WHERE id = ANY($1::uuid[])")


async def get_many(session: AsyncSession, ids: Sequence[UUID]) -> list[User]:
    """By id, for the loaders (reads only: rows on the driver, models without the ORM)."""
    rows = await tx_of(session).fetch(_USER_MANY, list(ids))
    return [from_row(User, row) for row in rows]


async def by_email(session: AsyncSession, email: str) -> User | None:
    rows = await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    return rows.scalar_one_or_none()
