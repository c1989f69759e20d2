"""Build the template context for one customer (previews, renderTemplate and runs).

{customer, csm, workflow, company, accountTeam}, as the seed documents' context API has
it. Every value is JSON (ids and dates as strings), so the same dict renders templates,
is returned by `workflowContext` and can be stored on a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.context import repository
from domain.context.dates import aware_now, renewal_figures, zone
from domain.customers import service as customers
from domain.customers.errors import CustomerNotFound
from domain.customers.models import Customer
from domain.tenants import repository as tenants_repository
from domain.tenants.models import CompanyContacts
from domain.users import repository as users_repository
from domain.users.models import User

Context = dict[str, Any]
# Keys of `company` that `other` may not override.
_COMPANY_FIXED = ("vpCustomerSuccess", "ceo")


def number(value: Decimal | float | int | None) -> int | float | None:
    """Decimal ARR as JSON: 100000.00 -> 100000, 1234.5 -> 1234.5 (renders like Handlebars)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    as_decimal = Decimal(str(value))
    if as_decimal == as_decimal.to_integral_value():
        return int(as_decimal)
    return float(as_decimal)


def _customer(customer: Customer) -> dict[str, Any]:
    return {
        "id": str(customer.id),
        "externalId": customer.external_id,
        "name": customer.name,
        "arr": number(customer.arr),
        "renewalDate": customer.renewal_date.isoformat() if customer.renewal_date else None,
        "hasAccountPlan": customer.has_account_plan,
        "healthScore": customer.health_score,
    }


def _csm(csm: User | None, manager: User | None) -> dict[str, Any]:
    return {
        "id": str(csm.id) if csm else None,
        "email": csm.email if csm else None,
        "name": csm.name if csm else None,
        "manager": manager.email if manager else None,
        "managerName": manager.name if manager else None,
    }


def _company(contacts: CompanyContacts | None) -> dict[str, Any]:
    other = dict(contacts.other) if contacts and isinstance(contacts.other, dict) else {}
    fixed = {
        "vpCustomerSuccess": contacts.vp_customer_success if contacts else None,
        "ceo": contacts.ceo if contacts else None,
    }
    return {**{k: v for k, v in other.items() if k not in _COMPANY_FIXED}, **fixed}


def all_emails(team: dict[str, Any], csm_email: str | None) -> str:
    """Distinct (case-insensitive) emails of the team, then the CSM, comma-joined."""
    seen: set[str] = set()
    emails: list[str] = []
    for value in [*team.values(), csm_email]:
        if isinstance(value, str) and value.strip() and value.strip().lower() not in seen:
            seen.add(value.strip().lower())
            emails.append(value.strip())
    return ",".join(emails)


def _account_team(customer: Customer, csm: User | None) -> dict[str, Any]:
    team = {k: v for k, v in (customer.account_team or {}).items() if k != "allEmails"}
    return {**team, "allEmails": all_emails(team, csm.email if csm else None)}


def compose(customer: Customer, *, time_zone: str | None, csm: User | None,
            manager: User | None, contacts: CompanyContacts | None,
            now: datetime | None = None) -> Context:
    """The context from already-loaded rows (pure: no I/O)."""
    figures = renewal_figures(customer.renewal_date, zone(time_zone), now)
    return {
        "customer": _customer(customer),
        "csm": _csm(csm, manager),
        "workflow": {**figures, "renewalARR": number(customer.arr)},
        "company": _company(contacts),
        "accountTeam": _account_team(customer, csm),
    }


def with_run(context: Context, *, variables: dict[str, Any] | None = None,
             steps: dict[str, Any] | None = None, run: dict[str, Any] | None = None) -> Context:
    """The customer context plus the run-only roots (`vars`, `steps`, `run`) templates read."""
    return {**context, "vars": dict(variables or {}), "steps": dict(steps or {}),
            "run": dict(run or {})}


def _composed(customer: Customer, around: repository.Surroundings,
              now: datetime | None) -> Context:
    return compose(customer, time_zone=around.tenant.time_zone if around.tenant else None,
                   csm=around.csm, manager=around.manager, contacts=around.contacts, now=now)


def build_found(found: tuple[Customer, repository.Surroundings] | None, *,
                now: datetime | None = None) -> Context:
    """The context from a customer and surroundings another statement read beside its own
    rows (repository.SURROUNDINGS_COLUMNS); CustomerNotFound if it was not visible."""
    if found is None:
        raise CustomerNotFound()
    return _composed(found[0], found[1], now)


async def build_for(session: AsyncSession, customer: Customer, *,
                    now: datetime | None = None) -> Context:
    """The context of an already-loaded customer (the run engine's entry point): one query
    for its tenant, contacts, CSM and manager."""
    return _composed(customer, await repository.surroundings(session, customer), now)


async def build_many(session: AsyncSession, many: Sequence[Customer], *,
                     now: datetime | None = None) -> dict[UUID, Context]:
    """Contexts for many customers of the current tenant in four queries, whatever the count
    (for scans that evaluate triggers over every customer)."""
    if not many:
        return {}
    tenant_id = many[0].tenant_id
    if any(c.tenant_id != tenant_id for c in many):
        raise ValueError("build_many takes the customers of one tenant")
    tenant = await tenants_repository.get(session, tenant_id)
    contacts = await tenants_repository.get_contacts(session, tenant_id)
    csm_ids = sorted({c.csm_id for c in many if c.csm_id is not None}, key=str)
    csms = {u.id: u for u in await users_repository.get_many(session, csm_ids)} if csm_ids else {}
    manager_ids = sorted({u.manager_id for u in csms.values() if u.manager_id}, key=str)
    managers = ({u.id: u for u in await users_repository.get_many(session, manager_ids)}
                if manager_ids else {})
    now = aware_now(now)  # one instant for the whole batch
    contexts: dict[UUID, Context] = {}
    for customer in many:
        csm = csms.get(customer.csm_id) if customer.csm_id else None
        manager = managers.get(csm.manager_id) if csm is not None and csm.manager_id else None
        contexts[customer.id] = compose(
            customer, time_zone=tenant.time_zone if tenant else None, csm=csm,
            manager=manager, contacts=contacts, now=now)
    return contexts


async def build(session: AsyncSession, customer_id: UUID | str, *,
                now: datetime | None = None) -> Context:
    """The context of the current tenant's customer (one query for the customer and all
    around it); CustomerNotFound if not visible."""
    return (await build_with_renewal(session, customer_id, now=now))[0]


async def build_with_renewal(session: AsyncSession, customer_id: UUID | str, *,
                             now: datetime | None = None
                             ) -> tuple[Context, date | None, str | None]:
    """`build`, plus the customer's renewal date and the tenant's time zone (what a
    notification's schedule is computed from)."""
    found = await repository.with_surroundings(session, customers.parse_customer_id(customer_id))
    if found is None:
        raise CustomerNotFound()
    customer, around = found
    time_zone = around.tenant.time_zone if around.tenant else None
    return _composed(customer, around, now), customer.renewal_date, time_zone
