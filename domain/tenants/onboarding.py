"""Creating a tenant with its first admin: the operator path (runs as the owner)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.shared.db import act_as_tenant, owner_transaction
from domain.tenants import service as tenants
from domain.users import service as users
from domain.users.models import Role, User


@dataclass(frozen=True)
class Onboarded:
    tenant_id: UUID
    admin: User


async def create_tenant_with_admin(
    owner_url: str, *, name: str, admin_email: str, admin_name: str | None = None,
    time_zone: str = "UTC",
) -> Onboarded:
    """One transaction: the tenant, its company-contacts row and an admin user."""
    async with owner_transaction(owner_url) as session:
        tenant = await tenants.create(session, name=name, time_zone=time_zone)
        await act_as_tenant(session, tenant.id)  # the rest is bound by RLS like a request
        admin = await users.create(
            session, tenant_id=tenant.id, email=admin_email,
            name=admin_name or admin_email.split("@")[0], role=Role.ADMIN,
        )
    return Onboarded(tenant_id=tenant.id, admin=admin)
