"""Creating a tenant with its first admin: the operator path (runs as the owner)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from domain.shared.db import owner_transaction
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
    tenant_id = uuid4()
    async with owner_transaction(owner_url, tenant_id=tenant_id) as session:
        tenant = await tenants.create(session, name=name, time_zone=time_zone, tenant_id=tenant_id)
        admin = await users.create(
            session, tenant_id=tenant.id, email=admin_email,
            name=admin_name or admin_email.split("@")[0], role=Role.ADMIN,
        )
    return Onboarded(tenant_id=tenant.id, admin=admin)
