"""Seeding: the core data every tenant sees, and a demo tenant for a first run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.auth import tokens
from domain.seeding import core
from domain.shared.actor import Actor, Role
from domain.shared.db import act_as_tenant, owner_transaction
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants import repository as tenants_repository
from domain.users import service as users

SEEDS_DIR = PROJECT_ROOT / "seeds"
DEMO_TENANT = "Demo Co"
# The demo tenant is found by this id, never by name: the owner sees every tenant, and a
# real tenant may well be called "Demo Co".
DEMO_TENANT_ID = UUID("de300000-5eed-4000-8000-000000000001")
DEMO_ADMIN = "admin@demo.stepwise.dev"
_DEMO_PEOPLE = (  # email, name, role, manager's email
    (DEMO_ADMIN, "Dana Admin", Role.ADMIN, None),
    ("manager@demo.stepwise.dev", "Morgan Manager", Role.EDITOR, None),
    ("csm@demo.stepwise.dev", "Casey CSM", Role.EDITOR, "manager@demo.stepwise.dev"),
)
_DEMO_CUSTOMERS = (  # external id, name, days to renewal, ARR, account plan, health
    ("demo-northwind", "Northwind Traders", 10, 320000, True, 38),
    ("demo-globex", "Globex Corporation", 3, 275000, True, 55),
    ("demo-initech", "Initech", -8, 90000, False, 22),
)


async def seed_core(owner_url: str) -> str:
    """Upsert core workflows and saved actions in one transaction (idempotent)."""
    return await core.seed(owner_url)


def validate_files(files: list[Path] | None) -> list[str]:
    """One line per problem across the given workflow files (default: seeds/workflows/)."""
    return core.problem_lines(core.check_files(files)[1])


async def _demo_people(session: AsyncSession) -> dict[str, UUID]:
    """The demo users by email, created when missing (as the demo tenant, under RLS)."""
    ids: dict[str, UUID] = {}
    for email, name, role, manager in _DEMO_PEOPLE:
        user = await users.repository.by_email(session, email)
        if user is None:
            user = await users.create(session, tenant_id=DEMO_TENANT_ID, email=email, name=name,
                                      role=role, manager_id=ids[manager] if manager else None)
        ids[email] = user.id
    return ids


async def seed_demo(settings: Settings) -> dict[str, Any]:
    """The demo tenant (fixed id) with an admin, a manager, a CSM, company contacts and three
    customers renewing in 10, 3 and -8 days (one per core workflow); reused and refreshed
    when it exists, so the previews always have something to show. One transaction: the
    tenant row as the owner, everything else as the demo tenant, bound by RLS."""
    from domain.context.dates import today_in, zone
    from domain.customers import service as customers
    from domain.tenants import service as tenants_service

    async with owner_transaction(settings.database_url) as session:
        tenant = await tenants_repository.get(session, DEMO_TENANT_ID)
        if tenant is None:
            tenant = await tenants_service.create(session, name=DEMO_TENANT,
                                                  tenant_id=DEMO_TENANT_ID)
        today = today_in(zone(tenant.time_zone))
        await act_as_tenant(session, DEMO_TENANT_ID)  # no other tenant's rows from here on
        people = await _demo_people(session)
        admin = Actor(tenant_id=DEMO_TENANT_ID, user_id=people[DEMO_ADMIN], role=Role.ADMIN)
        await tenants_service.update_contacts(
            session, admin, changes={"vp_customer_success": "vp@demo.stepwise.dev",
                     "ceo": "ceo@demo.stepwise.dev"})
        demo_customers: dict[str, str] = {}
        for external_id, name, days, arr, plan, health in _DEMO_CUSTOMERS:
            customer = await customers.upsert(
                session, admin, external_id=external_id,
                changes={"name": name, "arr": arr, "renewal_date": today + timedelta(days=days),
                         "has_account_plan": plan, "health_score": health,
                         "csm_id": people["csm@demo.stepwise.dev"],
                         "account_team": {"ae": f"ae.{external_id}@demo.stepwise.dev",
                                          "sa": "sa@demo.stepwise.dev"}})
            demo_customers[name] = str(customer.id)
    admin_id = people[DEMO_ADMIN]
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=DEMO_TENANT_ID, user_id=admin_id,
                        role=Role.ADMIN)
    return {"tenant_id": str(DEMO_TENANT_ID), "user_id": str(admin_id), "token": token,
            "customers": demo_customers}
