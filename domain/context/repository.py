"""The rows a customer's context is built from, in one round trip (RLS scopes each table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.customers.models import Customer
from domain.tenants.models import CompanyContacts, Tenant
from domain.users.models import User


@dataclass(frozen=True)
class Surroundings:
    """What a context needs besides the customer row (each part may be missing)."""

    tenant: Tenant | None = None
    contacts: CompanyContacts | None = None
    csm: User | None = None
    manager: User | None = None


def _people(statement: Any, tenant_id: Any, csm_id: Any) -> Any:
    """Outer-join the tenant's contacts, the CSM and the CSM's manager."""
    csm, manager = aliased(User), aliased(User)
    return (
        statement.add_columns(CompanyContacts, csm, manager)
        .outerjoin(CompanyContacts, CompanyContacts.tenant_id == tenant_id)
        .outerjoin(csm, and_(csm.tenant_id == tenant_id,  # type: ignore[arg-type]
                             csm.id == csm_id))
        .outerjoin(manager, and_(manager.tenant_id == csm.tenant_id,  # type: ignore[arg-type]
                                 manager.id == csm.manager_id))  # type: ignore[arg-type]
    )


def _surroundings(row: Any) -> Surroundings:
    tenant, contacts, csm, manager = row[-4:]
    return Surroundings(tenant=tenant, contacts=contacts, csm=csm, manager=manager)


async def with_surroundings(session: AsyncSession, customer_id: UUID
                            ) -> tuple[Customer, Surroundings] | None:
    """The customer and its surroundings in one statement; None if it is not visible."""
    statement = select(Customer, Tenant).outerjoin(
        Tenant, Tenant.id == Customer.tenant_id)  # type: ignore[arg-type]
    statement = _people(statement, Customer.tenant_id, Customer.csm_id) \
        .where(Customer.id == customer_id)
    row = (await session.execute(statement)).first()
    return None if row is None else (row[0], _surroundings(row))


async def surroundings(session: AsyncSession, customer: Customer) -> Surroundings:
    """An already-loaded customer's surroundings in one statement."""
    statement = _people(select(Tenant), Tenant.id, customer.csm_id) \
        .where(Tenant.id == customer.tenant_id)
    row = (await session.execute(statement)).first()
    return Surroundings() if row is None else _surroundings(row)
