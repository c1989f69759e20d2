"""Seeding: the core data every tenant sees, and a demo tenant for a first run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domain.auth import tokens
from domain.seeding import core
from domain.shared.db import owner_transaction
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants import repository as tenants_repository
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users import service as users
from domain.users.models import Role

SEEDS_DIR = PROJECT_ROOT / "seeds"
DEMO_TENANT = "Demo Co"
DEMO_ADMIN = "admin@demo.stepwise.dev"


async def seed_core(owner_url: str) -> str:
    """Upsert core workflows and saved actions in one transaction (idempotent)."""
    return await core.seed(owner_url)


def validate_files(files: list[Path] | None) -> list[str]:
    """One line per problem across the given workflow files (default: seeds/workflows/)."""
    return core.problem_lines(core.check_files(files)[1])


async def seed_demo(settings: Settings) -> dict[str, Any]:
    """A demo tenant with an admin, a manager, a CSM, company contacts and three customers
    renewing in 10, 3 and -8 days (one per core workflow); reused and refreshed when it
    exists, so the previews always have something to show."""
    from datetime import timedelta

    from domain.context.dates import today_in, zone
    from domain.customers import service as customers
    from domain.tenants import service as tenants_service

    async with owner_transaction(settings.database_url) as session:
        existing = await tenants_repository.first_by_name(session, DEMO_TENANT)
    if existing is None:
        made = await create_tenant_with_admin(settings.database_url, name=DEMO_TENANT,
                                              admin_email=DEMO_ADMIN, admin_name="Dana Admin")
        tenant_id, admin_id = made.tenant_id, made.admin.id
        async with owner_transaction(settings.database_url, tenant_id=tenant_id) as session:
            manager = await users.create(session, tenant_id=tenant_id, name="Morgan Manager",
                                         email="manager@demo.stepwise.dev", role=Role.EDITOR)
            await users.create(session, tenant_id=tenant_id, name="Casey CSM",
                               email="csm@demo.stepwise.dev", role=Role.EDITOR,
                               manager_id=manager.id)
    else:
        tenant_id = existing.id
        async with owner_transaction(settings.database_url, tenant_id=tenant_id) as session:
            admin = await users.repository.by_email(session, DEMO_ADMIN)
            assert admin is not None
            admin_id = admin.id
    demo_customers: dict[str, str] = {}
    async with owner_transaction(settings.database_url, tenant_id=tenant_id) as session:
        tenant = await tenants_repository.get(session, tenant_id)
        today = today_in(zone(tenant.time_zone if tenant else None))
        csm = await users.repository.by_email(session, "csm@demo.stepwise.dev")
        await tenants_service.update_contacts(
            session, actor_role=Role.ADMIN, tenant_id=tenant_id,
            changes={"vp_customer_success": "vp@demo.stepwise.dev",
                     "ceo": "ceo@demo.stepwise.dev"})
        for external_id, name, days, arr, plan, health in (
            ("demo-northwind", "Northwind Traders", 10, 320000, True, 38),
            ("demo-globex", "Globex Corporation", 3, 275000, True, 55),
            ("demo-initech", "Initech", -8, 90000, False, 22),
        ):
            customer = await customers.upsert(
                session, tenant_id=tenant_id, role=Role.ADMIN, external_id=external_id,
                changes={"name": name, "arr": arr, "renewal_date": today + timedelta(days=days),
                         "has_account_plan": plan, "health_score": health,
                         "csm_id": csm.id if csm else None,
                         "account_team": {"ae": f"ae.{external_id}@demo.stepwise.dev",
                                          "sa": "sa@demo.stepwise.dev"}})
            demo_customers[name] = str(customer.id)
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=tenant_id, user_id=admin_id,
                        role=Role.ADMIN)
    return {"tenant_id": str(tenant_id), "user_id": str(admin_id), "token": token,
            "customers": demo_customers}
