"""The rows a customer's context is built from, in one round trip (RLS scopes each table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.customers.models import Customer
from domain.shared.db import tx_of
from domain.shared.models import from_row
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


def _columns(model: Any, alias: str) -> str:
    return ", ".join(f"{alias}.{c.name} AS {alias}__{c.name}" for c in model.__table__.columns)


def _part(model: Any, row: Any, alias: str) -> Any:
    """One model's columns of a joined row, built as the ORM loads a row (`from_row`): the
    constructor's instrumented path cost five models' worth on every run transition."""
    prefix = f"{alias}__"
    values = {key[len(prefix):]: value for key, value in row.items() if key.startswith(prefix)}
    if all(value is None for value in values.values()):
        return None
    return from_row(model, values)


# The customer, its tenant, contacts, CSM and the CSM's manager in one statement. Straight
# to the driver: every run transition builds a context, so the ORM's per-statement work
# (compilation, result processing) is worth skipping here.
SURROUNDINGS_COLUMNS = (
    f"{_columns(Customer, 'c')}, {_columns(Tenant, 't')}, "
    f"{_columns(CompanyContacts, 'cc')}, {_columns(User, 'csm')}, {_columns(User, 'm')}")


def surroundings_from(customer_id: str) -> str:
    """The FROM clause of SURROUNDINGS_COLUMNS for the customer whose id is the SQL
    expression `customer_id` (a parameter, or a column of an enclosing statement)."""
    return ("FROM customers c LEFT JOIN tenants t ON t.id = c.tenant_id "
            "LEFT JOIN company_contacts cc ON cc.tenant_id = c.tenant_id "
            "LEFT JOIN users csm ON csm.tenant_id = c.tenant_id AND csm.id = c.csm_id "
            "LEFT JOIN users m ON m.tenant_id = csm.tenant_id AND m.id = csm.manager_id "
            f"WHERE c.id = {customer_id}")


_WITH_SURROUNDINGS = f"SELECT {SURROUNDINGS_COLUMNS} {surroundings_from('$1')}"


def found_in(values: dict[str, Any]) -> tuple[Customer, Surroundings] | None:
    """The customer and its surroundings from a row holding SURROUNDINGS_COLUMNS (None when
    the customer part is empty: not visible)."""
    customer = _part(Customer, values, "c")
    if customer is None:
        return None
    return customer, Surroundings(
        tenant=_part(Tenant, values, "t"), contacts=_part(CompanyContacts, values, "cc"),
        csm=_part(User, values, "csm"), manager=_part(User, values, "m"))


async def with_surroundings(session: AsyncSession, customer_id: UUID
                            ) -> tuple[Customer, Surroundings] | None:
    """The customer and its surroundings in one statement; None if it is not visible."""
    row = await tx_of(session).fetchrow(_WITH_SURROUNDINGS, customer_id)
    return None if row is None else found_in(dict(row))


async def surroundings(session: AsyncSession, customer: Customer) -> Surroundings:
    """An already-loaded customer's surroundings in one statement."""
    statement = _people(select(Tenant), Tenant.id, customer.csm_id) \
        .where(Tenant.id == customer.tenant_id)
    row = (await session.execute(statement)).first()
    return Surroundings() if row is None else _surroundings(row)
