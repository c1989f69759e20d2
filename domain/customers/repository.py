"""Every query for customers (RLS scopes each one to the current tenant)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from domain.customers.models import Customer
from domain.shared.db import tx_of
from domain.shared.models import from_row


async def upsert(session: AsyncSession, tenant_id: UUID, external_id: str,
                 values: dict[str, Any]) -> Customer:
    """Insert by (tenant, external id) or update only the given columns of the existing row."""
    inserting = insert(Customer).values(tenant_id=tenant_id, external_id=external_id, **values)
    changes: dict[str, Any] = {column: inserting.excluded[column] for column in values}
    changes["updated_at"] = func.now()
    statement = inserting.on_conflict_do_update(
        index_elements=["tenant_id", "external_id"], set_=changes,
    ).returning(Customer)
    rows = await session.execute(statement, execution_options={"populate_existing": True})
    return rows.scalar_one()


async def get(session: AsyncSession, customer_id: UUID) -> Customer | None:
    rows = await session.execute(
        select(Customer).where(Customer.id == customer_id)  # type: ignore[arg-type]
    )
    return rows.scalar_one_or_none()


_CUSTOMER_MANY = ("SELECT " + ", ".join(Customer.model_fields) +
               " FROM customers WHERE id = ANY($1::uuid[])")


async def get_many(session: AsyncSession, ids: Sequence[UUID]) -> list[Customer]:
    """By id, for the loaders (reads only: rows on the driver, models without the ORM)."""
    rows = await tx_of(session).fetch(_CUSTOMER_MANY, list(ids))
    return [from_row(Customer, row) for row in rows]


def _matching(search: str | None) -> list[ColumnElement[bool]]:
    if not search:
        return []
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return [or_(Customer.name.ilike(pattern, escape="\\"),  # type: ignore[attr-defined]
                Customer.external_id.ilike(pattern, escape="\\"))]  # type: ignore[attr-defined]


async def page(session: AsyncSession, *, limit: int, after: tuple[str, UUID] | None,
               search: str | None) -> list[Customer]:
    """Up to `limit` customers ordered by (name, id), strictly after the cursor."""
    statement = select(Customer).where(*_matching(search))
    if after is not None:
        statement = statement.where(tuple_(Customer.name, Customer.id) > tuple_(*after))
    statement = statement.order_by(Customer.name, Customer.id).limit(limit)  # type: ignore[arg-type]
    rows = await session.execute(statement)
    return list(rows.scalars())


async def count(session: AsyncSession, *, search: str | None) -> int:
    rows = await session.execute(
        select(func.count()).select_from(Customer).where(*_matching(search))
    )
    return int(rows.scalar_one())
