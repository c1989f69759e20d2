"""The token and cost ledger and the tenant's monthly budget.

Before each LLM call a reservation is written at the call's worst case (the prompt's
estimated tokens plus max_tokens, priced); it is checked against the month's budget under a
lock on the tenant's budget row, so concurrent calls cannot overshoot together. After the
call the reservation is reconciled to the real usage, or released if no answer came.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError
from domain.usage import prices, repository
from domain.usage.errors import BudgetExceeded

# A reservation never reconciled (its worker died) stops counting after this long.
RESERVATION_TTL = timedelta(minutes=15)
CHARS_PER_TOKEN = 3  # a generous estimate of the prompt's tokens (real ones are ~4 chars)


def retry_after() -> timedelta:
    """How long work held back by the budget waits before it asks again (real time)."""
    return timedelta(seconds=float(os.environ.get("STEPWISE_BUDGET_RETRY_SECONDS", "600")))


@dataclass(frozen=True)
class Call:
    """What a reservation is for."""

    purpose: str
    model: str
    prompt_chars: int
    max_tokens: int
    run_id: UUID | None = None
    step_id: str | None = None
    workflow_key: str | None = None
    customer_id: UUID | None = None


def month_start(now: datetime) -> datetime:
    moment = now.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def worst_case(call: Call) -> tuple[int, int]:
    """Tokens and micro-USD the call can cost at most (by the estimate)."""
    prompt = -(-call.prompt_chars // CHARS_PER_TOKEN)
    cost = prices.cost_micros(call.model, input_tokens=prompt, output_tokens=call.max_tokens)
    return prompt + call.max_tokens, cost


async def reserve(session: AsyncSession, tenant_id: UUID, call: Call, *, now: datetime
                  ) -> UUID:
    """A reservation for `call`; BudgetExceeded if the month's budget cannot cover it."""
    tokens, cost = worst_case(call)
    fields: dict[str, Any] = {
        "purpose": call.purpose, "model": call.model, "price_version": prices.VERSION,
        "tokens": tokens, "cost_micros": cost, "run_id": call.run_id, "step_id": call.step_id,
        "workflow_key": call.workflow_key, "customer_id": call.customer_id, "now": now}
    made = await repository.reserve_unless_budgeted(session, tenant_id, **fields)
    if made is not None:
        return made
    budget = await repository.lock_budget(session, tenant_id)  # locked already: re-read
    if budget is not None and (budget["monthly_tokens"] is not None
                               or budget["monthly_cost_micros"] is not None):
        used_tokens, used_cost = await repository.spent(
            session, tenant_id, since=month_start(now), reserved_after=now - RESERVATION_TTL)
        limit_tokens, limit_cost = budget["monthly_tokens"], budget["monthly_cost_micros"]
        if limit_tokens is not None and used_tokens + tokens > limit_tokens:
            raise BudgetExceeded(f"the monthly token budget ({limit_tokens}) is used up")
        if limit_cost is not None and used_cost + cost > limit_cost:
            raise BudgetExceeded(
                f"the monthly cost budget (${limit_cost / 1_000_000:.2f}) is used up")
    return await repository.insert_reservation(session, tenant_id, **fields)


def _counts(usage: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(usage.get(key) or 0) for key in (
        "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens")}


async def settle(session: AsyncSession, tenant_id: UUID, usage_id: UUID, *, model: str,
                 usage: Mapping[str, Any], now: datetime) -> None:
    """Reconcile a reservation to what the call used (once: a second settle is a no-op)."""
    await repository.settle(session, settlement(tenant_id, usage_id, model=model, usage=usage,
                                                now=now))


def settlement(tenant_id: UUID, usage_id: UUID, *, model: str, usage: Mapping[str, Any],
               now: datetime) -> str:
    """`settle` as the parameter of repository.SETTLE_CTE, for a statement that carries it."""
    counts = _counts(usage)
    return repository.settlement(tenant_id, usage_id, model=model,
                                 price_version=prices.VERSION,
                                 cost_micros=prices.cost_micros(model, **counts), now=now,
                                 **counts)


async def release(session: AsyncSession, tenant_id: UUID, usage_id: UUID, *,
                  now: datetime) -> None:
    """The call produced no answer: its reservation stops counting."""
    await repository.release(session, tenant_id, usage_id, now=now)


@dataclass(frozen=True)
class Totals:
    calls: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_micros: int

    @property
    def tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_input_tokens
                + self.cache_read_input_tokens)


async def totals(session: AsyncSession, actor: Actor, *, run_id: UUID | None = None,
                 workflow_key: str | None = None, customer_id: UUID | None = None,
                 since: datetime | None = None) -> Totals:
    """Settled usage of the tenant, optionally of one run, workflow or customer."""
    row = await repository.totals(session, actor.tenant_id, run_id=run_id,
                                  workflow_key=workflow_key, customer_id=customer_id,
                                  since=since)
    return Totals(calls=int(row["calls"]), input_tokens=int(row["input_tokens"]),
                  output_tokens=int(row["output_tokens"]),
                  cache_creation_input_tokens=int(row["cache_creation"]),
                  cache_read_input_tokens=int(row["cache_read"]),
                  cost_micros=int(row["cost_micros"]))


MAX_MONTHLY_COST_USD = 1_000_000_000.0  # a billion dollars a month is no limit at all


@dataclass(frozen=True)
class Budget:
    monthly_tokens: int | None
    monthly_cost_micros: int | None


async def budget(session: AsyncSession, actor: Actor) -> Budget:
    row = await repository.get_budget(session, actor.tenant_id)
    return Budget(row["monthly_tokens"] if row else None,
                  row["monthly_cost_micros"] if row else None)


async def set_budget(session: AsyncSession, actor: Actor, *, monthly_tokens: int | None,
                     monthly_cost_usd: float | None, now: datetime) -> Budget:
    """Admins set (or clear, with nulls) the tenant's monthly budget."""
    actor.require(Role.ADMIN)
    if monthly_tokens is not None and monthly_tokens < 0:
        raise DomainError("must be zero or more", path="monthlyTokens")
    if monthly_cost_usd is not None and monthly_cost_usd < 0:
        raise DomainError("must be zero or more", path="monthlyCostUsd")
    if monthly_cost_usd is not None and monthly_cost_usd > MAX_MONTHLY_COST_USD:
        # Stored in micro-dollars (bigint): a larger figure would overflow the column.
        raise DomainError(f"must be at most {MAX_MONTHLY_COST_USD:,.0f}",
                          path="monthlyCostUsd", code="OUT_OF_RANGE")
    cost = None if monthly_cost_usd is None else round(monthly_cost_usd * 1_000_000)
    await repository.upsert_budget(session, actor.tenant_id, monthly_tokens=monthly_tokens,
                                   monthly_cost_micros=cost, now=now)
    return Budget(monthly_tokens, cost)
