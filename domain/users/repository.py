"""Every query for users."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import any_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.users.models import User


async def add(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def get(session: AsyncSession, user_id: UUID) -> User | None:
    # RLS scopes the lookup to the current tenant; the primary key is (tenant_id, id).
    rows = await session.execute(select(User).where(User.id == user_id))  # type: ignore[arg-type]
    return rows.scalar_one_or_none()


async def get_many(session: AsyncSession, ids: Sequence[UUID]) -> list[User]:
    rows = await session.execute(
        select(User).where(User.id == any_(list(ids)))  # type: ignore[arg-type]
    )
    return list(rows.scalars())


async def by_email(session: AsyncSession, email: str) -> User | None:
    rows = await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    return rows.scalar_one_or_none()


_ENTER = ("SELECT tenant_id, id, email, name, role, manager_id, created_at "
          "FROM stepwise_enter($1, $2)")


async def enter_as(session: AsyncSession, tenant_id: UUID, user_id: UUID) -> User | None:
    """Set the transaction's tenant and read the calling user as stored now, in one round trip.

    None if the user no longer exists in that tenant. Runs on every operation, so it goes
    straight to the driver (see migration 0004 for the function).
    """
    connection = await session.connection()
    row = (await connection.exec_driver_sql(_ENTER, (tenant_id, user_id))).first()
    return None if row is None else User(**row._mapping)
