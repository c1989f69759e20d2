"""Resolvers for users and tenants: thin calls into the domain."""

from __future__ import annotations

from uuid import UUID

from domain.tenants.models import Tenant
from domain.users.models import User
from schema.context import Info


async def viewer(info: Info) -> User | None:
    me = info.context.me
    user: User | None = await info.context.loaders.user.load(me.user_id)
    return user


async def manager(info: Info, user: User) -> User | None:
    if user.manager_id is None:
        return None
    found: User | None = await info.context.loaders.user.load(user.manager_id)
    return found


async def tenant(info: Info, tenant_id: UUID) -> Tenant:
    found: Tenant | None = await info.context.loaders.tenant.load(tenant_id)
    if found is None:  # RLS hides every tenant but the caller's own
        raise LookupError("tenant not visible")
    return found
