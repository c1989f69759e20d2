"""Every query for tenants and company contacts."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.db import tx_of
from domain.shared.models import from_row
from domain.tenants.models import CompanyContacts, Tenant


async def add(session: AsyncSession, tenant: Tenant) -> Tenant:
    session.add(tenant)
    await session.flush()
    return tenant


async def get(session: AsyncSession, tenant_id: UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


_MANY = "SELECT id, name, time_zone, created_at FROM tenants WHERE id = ANY($1::uuid[])"


async def get_many(session: AsyncSession, ids: Sequence[UUID]) -> list[Tenant]:
    # Behind every `viewer { tenant }`: straight to the driver, no ORM round.
    rows = await tx_of(session).fetch(_MANY, list(ids))
    return [from_row(Tenant, row) for row in rows]


async def get_contacts(session: AsyncSession, tenant_id: UUID) -> CompanyContacts | None:
    return await session.get(CompanyContacts, tenant_id)


async def upsert_contacts(session: AsyncSession, contacts: CompanyContacts) -> None:
    values = contacts.model_dump()
    statement = insert(CompanyContacts).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={k: statement.excluded[k] for k in values if k != "tenant_id"},
    )
    await session.execute(statement)


async def set_time_zone(session: AsyncSession, tenant_id: UUID, time_zone: str) -> Tenant | None:
    """Change the tenant's zone (RLS: only the caller's own row can match)."""
    statement = (update(Tenant).where(Tenant.id == tenant_id)  # type: ignore[arg-type]
                 .values(time_zone=time_zone).returning(Tenant))
    rows = await session.scalars(statement, execution_options={
        "populate_existing": True, "synchronize_session": False})
    return rows.one_or_none()


async def all_ids(session: AsyncSession) -> list[UUID]:
    """Every tenant's id, through the discovery function (ids only; the caller must be the
    owner or the jobs role: tenants are invisible to each other)."""
    rows = await tx_of(session).fetch("SELECT stepwise_tenant_ids() AS id")
    return [row["id"] for row in rows]


async def webhook_secret(session: AsyncSession, tenant_id: UUID, *, create: str | None = None
                         ) -> str | None:
    """The tenant's signing secret for script actions; `create` is stored when none is set."""
    tx = tx_of(session)
    if create is not None:
        await tx.execute("UPDATE tenants SET webhook_secret = $2 WHERE id = $1 "
                         "AND webhook_secret IS NULL", tenant_id, create)
    value: str | None = await tx.fetchval("SELECT webhook_secret FROM tenants WHERE id = $1",
                                          tenant_id)
    return value


async def set_webhook_secret(session: AsyncSession, tenant_id: UUID, secret: str) -> bool:
    status = await tx_of(session).execute(
        "UPDATE tenants SET webhook_secret = $2 WHERE id = $1", tenant_id, secret)
    return status.endswith(" 1")
