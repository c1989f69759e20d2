"""The renewal scan: start the right workflow for each customer, once per renewal.

For every live workflow with a trigger (the tenant's own shadowing the core one with the
same key), a customer matches when its daysUntilRenewal (in the tenant's zone) is inside
`trigger.daysUntilRenewal` (inclusive; a missing bound is open), or, before that window,
when one of `trigger.earlyTriggers` holds for the customer's context (within `withinDays`
of the window's upper bound, 30 by default). The scan is idempotent: a customer gets at
most one scan-started run per workflow and renewal date, and none while a run of that
workflow is active. Runs are created pending with a start job each; the worker enters
their first step, so a scan over many customers stays a few statements long.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.context import builder
from domain.context.dates import today_in, zone
from domain.customers import repository as customers_repository
from domain.jobs import service as jobs
from domain.jobs.models import START_RUN, Job
from domain.runs import repository, variables
from domain.shared import clock
from domain.shared.db import Database, owner_transaction
from domain.shared.errors import ValidationFailed
from domain.shared.settings import Settings
from domain.templating.engine import TemplateError, condition_holds, off_loop
from domain.tenants import repository as tenants_repository

EARLY_WITHIN_DAYS = 30


@dataclass
class ScanReport:
    tenant_id: UUID
    customers: int = 0
    started: Counter[str] = field(default_factory=Counter)
    already: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"tenantId": str(self.tenant_id), "customers": self.customers,
                "started": dict(self.started), "alreadyRunning": self.already,
                "problems": self.problems}


def _window(trigger: Mapping[str, Any]) -> tuple[int | None, int | None] | None:
    days = trigger.get("daysUntilRenewal")
    if not isinstance(days, Mapping):
        return None
    low, high = days.get("min"), days.get("max")
    return (low if isinstance(low, int) else None, high if isinstance(high, int) else None)


def in_window(days: int, window: tuple[int | None, int | None]) -> bool:
    low, high = window
    return (low is None or days >= low) and (high is None or days <= high)


async def scan_tenant(session: AsyncSession, tenant_id: UUID, *, now: datetime | None = None
                      ) -> ScanReport:
    """Inside a tenant transaction (the system acting): create the runs, defer their starts."""
    now = now or clock.now()
    report = ScanReport(tenant_id)
    tenants = await tenants_repository.get_many(session, [tenant_id])
    today = today_in(zone(tenants[0].time_zone if tenants else None), now)
    workflows = await repository.scan_workflows(session)
    customers = await repository.scan_customers(session)
    report.customers = len(customers)
    blocked = await repository.scan_blocked(session)
    wanted: list[dict[str, Any]] = []
    early: list[tuple[dict[str, Any], dict[str, Any], list[tuple[UUID, date]]]] = []
    for workflow in workflows:
        config = workflow["config"]
        trigger = config.get("trigger") if isinstance(config, Mapping) else None
        if not isinstance(trigger, Mapping):
            continue
        window = _window(trigger)
        if window is None:
            continue
        try:
            defaults = variables.resolve(config.get("variables"), {})
        except ValidationFailed:
            report.problems.append(f"{workflow['key']}: a required variable has no default; "
                                   "start it manually")
            continue
        candidates: list[tuple[UUID, date]] = []
        early_rules = [t for t in trigger.get("earlyTriggers") or [] if isinstance(t, Mapping)]
        for customer_id, renewal in customers:
            days = (renewal - today).days
            if in_window(days, window):
                if (customer_id, workflow["key"]) in blocked:
                    report.already += 1
                    continue
                wanted.append(_item(tenant_id, workflow, customer_id, renewal, defaults,
                                    {"reason": "window", "daysUntilRenewal": days}))
            elif early_rules and window[1] is not None and window[1] < days <= window[1] + max(
                    int(r.get("withinDays", EARLY_WITHIN_DAYS)) for r in early_rules):
                if (customer_id, workflow["key"]) in blocked:
                    report.already += 1
                else:
                    candidates.append((customer_id, renewal))
        if candidates:
            early.append((workflow, defaults, candidates))
    for workflow, defaults, candidates in early:
        wanted += await _early(session, tenant_id, workflow, defaults, candidates, today,
                               now, report)
    created = await repository.insert_scanned(session, wanted, now=now)
    report.already += len(wanted) - len(created)
    for _, _, key in created:
        report.started[key] += 1
    await jobs.defer(session, *(Job(START_RUN, tenant, {"run_id": str(run_id)},
                                    queueing_lock=f"start:{run_id}")
                                for tenant, run_id, _ in created))
    return report


def _item(tenant_id: UUID, workflow: Mapping[str, Any], customer_id: UUID, renewal: date,
          defaults: dict[str, Any], reason: dict[str, Any]) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "workflow_id": workflow["id"],
            "workflow_key": workflow["key"], "workflow_version": workflow["latest_version"],
            "customer_id": customer_id, "variables": defaults,
            "context": {"trigger": reason}, "renewal_date": renewal.isoformat()}


async def _early(session: AsyncSession, tenant_id: UUID, workflow: Mapping[str, Any],
                 defaults: dict[str, Any], candidates: Sequence[tuple[UUID, date]],
                 today: date, now: datetime, report: ScanReport) -> list[dict[str, Any]]:
    """Customers before the window for whom an early trigger's condition holds."""
    trigger = workflow["config"]["trigger"]
    high = trigger["daysUntilRenewal"]["max"]
    rows = await customers_repository.get_many(session, [c for c, _ in candidates])
    contexts = await builder.build_many(session, rows, now=now)
    found = []
    for customer in rows:
        days = (customer.renewal_date - today).days if customer.renewal_date else None
        context = builder.with_run(contexts[customer.id], variables=defaults)
        for rule in trigger.get("earlyTriggers") or []:
            within = int(rule.get("withinDays", EARLY_WITHIN_DAYS))
            if days is None or days > high + within:
                continue
            try:
                holds = await off_loop(condition_holds, str(rule.get("condition", "")), context)
            except TemplateError as error:
                report.problems.append(f"{workflow['key']}: early trigger {rule.get('id')}: "
                                       f"{error.message}")
                continue
            if holds:
                assert customer.renewal_date is not None
                found.append(_item(tenant_id, workflow, customer.id, customer.renewal_date,
                                   defaults, {"reason": "early", "earlyTrigger": rule.get("id"),
                                              "daysUntilRenewal": days}))
                break
    return found


async def scan_all(db: Database, tenant_ids: Sequence[UUID], *, now: datetime | None = None
                   ) -> list[ScanReport]:
    """Each tenant in its own transaction, as the system (bound by RLS like any edge)."""
    reports = []
    for tenant_id in tenant_ids:
        async with db.transaction(tenant_id) as tx:
            reports.append(await scan_tenant(tx.session, tenant_id, now=now))
    return reports


async def scan_everywhere(settings: Settings, tenant_ids: Sequence[UUID] | None = None
                          ) -> list[ScanReport]:
    """The operator's scan (`stepwise runs scan`): every tenant, or the given ones."""
    if tenant_ids is None:
        async with owner_transaction(settings.database_url) as session:
            tenant_ids = await tenants_repository.all_ids(session)
    db = Database(settings.app_database_url, pool_size=1)
    try:
        return await scan_all(db, tenant_ids)
    finally:
        await db.dispose()
