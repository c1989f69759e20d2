"""The token ledger and the tenant's budget, for the schema."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.shared import clock
from domain.shared.errors import NotFound
from domain.usage import service as usage
from schema.context import Info


def _uuid(value: str | None, path: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound("no such id", path=path) from None


async def totals(info: Info, *, run_id: str | None, workflow_key: str | None,
                 customer_id: str | None, since: datetime | None) -> usage.Totals:
    return await usage.totals(info.context.session, info.context.actor,
                              run_id=_uuid(run_id, "runId"), workflow_key=workflow_key,
                              customer_id=_uuid(customer_id, "customerId"), since=since)


async def budget(info: Info) -> usage.Budget:
    return await usage.budget(info.context.session, info.context.actor)


async def set_budget(info: Info, *, monthly_tokens: int | None,
                     monthly_cost_usd: float | None) -> usage.Budget:
    return await usage.set_budget(info.context.session, info.context.actor,
                                  monthly_tokens=monthly_tokens,
                                  monthly_cost_usd=monthly_cost_usd, now=clock.now())
