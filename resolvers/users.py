"""Resolvers for users and tenants: thin calls into the domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from domain.tenants import service as tenants
from domain.tenants.models import CompanyContacts, Tenant
from domain.users import service as users
from domain.users.models import Role, User
from schema.context import Info


async def user_by_id(info: Info, user_id: UUID | None) -> User | None:
    """A user of the caller's tenant through the request's loader; None for no id or no user."""
    if user_id is None:
        return None
    found: User | None = await info.context.loaders.user.load(user_id)
    return found


async def viewer(info: Info) -> User | None:
    return await user_by_id(info, info.context.me.user_id)


async def manager(info: Info, user: User) -> User | None:
    return await user_by_id(info, user.manager_id)


async def tenant(info: Info, tenant_id: UUID) -> Tenant:
    found: Tenant | None = await info.context.loaders.tenant.load(tenant_id)
    if found is None:  # RLS hides every tenant but the caller's own
        raise LookupError("tenant not visible")
    return found


async def create_user(info: Info, *, email: str, name: str, role: Role,
                      manager_id: str | None) -> User:
    return await users.create_by(info.context.session, info.context.actor,
                                 email=email, name=name, role=role,
                                 manager_id=manager_id)


async def update_company_contacts(info: Info, changes: Mapping[str, Any]) -> CompanyContacts:
    return await tenants.update_contacts(info.context.session, info.context.actor,
                                         changes=changes)


async def company_contacts(info: Info) -> CompanyContacts | None:
    return await tenants.get_contacts(info.context.session, info.context.me.tenant_id)


async def update_tenant_settings(info: Info, *, time_zone: str | None) -> Tenant:
    return await tenants.update_settings(info.context.session, info.context.actor,
                                         time_zone=time_zone)
