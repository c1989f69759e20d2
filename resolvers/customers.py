"""Resolvers for customers and their context: thin calls into the domain."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.context import builder
from domain.context.dates import days_until, zone
from domain.customers import service as customers
from domain.customers.errors import CustomerNotFound
from domain.customers.models import Customer
from domain.shared.pagination import Page
from domain.tenants.models import Tenant
from domain.users.models import User
from resolvers.users import user_by_id
from schema.context import Info


async def upsert(info: Info, external_id: str, changes: Mapping[str, Any]) -> Customer:
    return await customers.upsert(info.context.session, info.context.actor,
                                  external_id=external_id, changes=changes)


async def page(info: Info, first: int | None, after: str | None, search: str | None
               ) -> Page[Customer]:
    return await customers.page(info.context.session, first=first, after=after, search=search)


async def one(info: Info, customer_id: str) -> Customer | None:
    return await customers.find(info.context.session, customer_id)


async def csm(info: Info, customer: Customer) -> User | None:
    return await user_by_id(info, customer.csm_id)


async def days_until_renewal(info: Info, customer: Customer) -> int | None:
    """In the tenant's time zone (one tenant lookup per request, through the loader)."""
    if customer.renewal_date is None:
        return None
    tenant: Tenant | None = await info.context.loaders.tenant.load(customer.tenant_id)
    return days_until(customer.renewal_date, zone(tenant.time_zone if tenant else None))


async def context(info: Info, customer_id: str, as_of: datetime | None) -> dict[str, Any] | None:
    """The customer's template context (one query), or None when it is not visible."""
    try:
        return await builder.build(info.context.session, customer_id, now=as_of)
    except CustomerNotFound:
        return None
