"""Every query of the ledger and the budgets (driver SQL on the tenant transaction)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.db import tx_of

_SPENT = """
SELECT coalesce(sum(tokens), 0)::bigint AS tokens,
       coalesce(sum(cost_micros), 0)::bigint AS cost_micros
FROM llm_usage
WHERE tenant_id = $1 AND created_at >= $2
  AND (status = 'settled' OR (status = 'reserved' AND created_at >= $3))
"""


async def lock_budget(session: AsyncSession, tenant_id: UUID) -> dict[str, Any] | None:
    """The tenant's budget row, locked until the transaction ends (serialises reservations)."""
    row = await tx_of(session).fetchrow(
        "SELECT monthly_tokens, monthly_cost_micros FROM tenant_budgets "
        "WHERE tenant_id = $1 FOR UPDATE", tenant_id)
    return dict(row) if row else None


async def get_budget(session: AsyncSession, tenant_id: UUID) -> dict[str, Any] | None:
    row = await tx_of(session).fetchrow(
        "SELECT monthly_tokens, monthly_cost_micros, updated_at FROM tenant_budgets "
        "WHERE tenant_id = $1", tenant_id)
    return dict(row) if row else None


async def upsert_budget(session: AsyncSession, tenant_id: UUID, *, monthly_tokens: int | None,
                        monthly_cost_micros: int | None, now: datetime) -> None:
    await tx_of(session).execute(
        "INSERT INTO tenant_budgets (tenant_id, monthly_tokens, monthly_cost_micros, "
        "updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET "
        "monthly_tokens = excluded.monthly_tokens, "
        "monthly_cost_micros = excluded.monthly_cost_micros, updated_at = excluded.updated_at",
        tenant_id, monthly_tokens, monthly_cost_micros, now)


async def spent(session: AsyncSession, tenant_id: UUID, *, since: datetime,
                reserved_after: datetime) -> tuple[int, int]:
    """Tokens and micro-USD used since `since`, counting live reservations at their worst."""
    row = await tx_of(session).fetchrow(_SPENT, tenant_id, since, reserved_after)
    assert row is not None
    return int(row["tokens"]), int(row["cost_micros"])


# No budget to check (the common case): lock the budget row as `lock_budget` does and insert
# the reservation, in one round trip. With a budget nothing is inserted (id NULL) and the
# caller checks it, the row already locked.
_RESERVE_UNLESS_BUDGETED = """
WITH budget AS (SELECT monthly_tokens, monthly_cost_micros FROM tenant_budgets
                WHERE tenant_id = $1 FOR UPDATE),
     made AS (INSERT INTO llm_usage (tenant_id, purpose, model, price_version, tokens,
                                     cost_micros, run_id, step_id, workflow_key, customer_id,
                                     created_at)
              SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
              WHERE NOT EXISTS (SELECT FROM budget WHERE monthly_tokens IS NOT NULL
                                OR monthly_cost_micros IS NOT NULL)
              RETURNING id)
SELECT id FROM made
"""


async def reserve_unless_budgeted(session: AsyncSession, tenant_id: UUID, *, purpose: str,
                                  model: str, price_version: str, tokens: int,
                                  cost_micros: int, run_id: UUID | None, step_id: str | None,
                                  workflow_key: str | None, customer_id: UUID | None,
                                  now: datetime) -> UUID | None:
    """The reservation's id if the tenant has no budget limits; None (and the budget row
    locked) if it has."""
    found = await tx_of(session).fetchval(
        _RESERVE_UNLESS_BUDGETED, tenant_id, purpose, model, price_version, tokens,
        cost_micros, run_id, step_id, workflow_key, customer_id, now)
    return None if found is None else UUID(str(found))


async def insert_reservation(session: AsyncSession, tenant_id: UUID, *, purpose: str,
                             model: str, price_version: str, tokens: int, cost_micros: int,
                             run_id: UUID | None, step_id: str | None,
                             workflow_key: str | None, customer_id: UUID | None,
                             now: datetime) -> UUID:
    found = await tx_of(session).fetchval(
        "INSERT INTO llm_usage (tenant_id, purpose, model, price_version, tokens, "
        "cost_micros, run_id, step_id, workflow_key, customer_id, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        tenant_id, purpose, model, price_version, tokens, cost_micros, run_id, step_id,
        workflow_key, customer_id, now)
    return UUID(str(found))


# Settling a reservation to what the call used, as a data-modifying CTE: alone (`settle`),
# or carried by another concept's statement (the run save of the transaction that finishes
# the call: one round trip less). Its values travel in one JSON parameter (`settlement`);
# only a reservation still reserved is settled, so a second settle is a no-op.
SETTLE_CTE = (
    "settled AS (UPDATE llm_usage u SET status = 'settled', model = j.model, "
    "price_version = j.price_version, input_tokens = j.input_tokens, "
    "output_tokens = j.output_tokens, "
    "cache_creation_input_tokens = j.cache_creation_input_tokens, "
    "cache_read_input_tokens = j.cache_read_input_tokens, "
    "tokens = j.input_tokens::bigint + j.output_tokens + j.cache_creation_input_tokens "
    "+ j.cache_read_input_tokens, cost_micros = j.cost_micros, settled_at = j.settled_at "
    "FROM jsonb_to_record({}::jsonb) AS j(tenant_id uuid, id uuid, model text, "
    "price_version text, input_tokens int, output_tokens int, "
    "cache_creation_input_tokens int, cache_read_input_tokens int, cost_micros bigint, "
    "settled_at timestamptz) "
    "WHERE u.tenant_id = j.tenant_id AND u.id = j.id AND u.status = 'reserved' "
    "RETURNING u.id)")
_SETTLE = f"WITH {SETTLE_CTE.format('$1')} SELECT count(*) FROM settled"


async def settle(session: AsyncSession, settlement: str) -> bool:
    """Apply a `settlement`; whether the reservation was still reserved."""
    return bool(await tx_of(session).fetchval(_SETTLE, settlement) == 1)


def settlement(tenant_id: UUID, usage_id: UUID, *, model: str, price_version: str,
               input_tokens: int, output_tokens: int, cache_creation_input_tokens: int,
               cache_read_input_tokens: int, cost_micros: int, now: datetime) -> str:
    """SETTLE_CTE's parameter."""
    return json.dumps({
        "tenant_id": str(tenant_id), "id": str(usage_id), "model": model,
        "price_version": price_version, "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens, "cost_micros": cost_micros,
        "settled_at": now.isoformat()}, separators=(",", ":"))


async def release(session: AsyncSession, tenant_id: UUID, usage_id: UUID, *,
                  now: datetime) -> None:
    await tx_of(session).execute(
        "UPDATE llm_usage SET status = 'released', tokens = 0, cost_micros = 0, "
        "settled_at = $3 WHERE tenant_id = $1 AND id = $2 AND status = 'reserved'",
        tenant_id, usage_id, now)


async def totals(session: AsyncSession, tenant_id: UUID, *, run_id: UUID | None,
                 workflow_key: str | None, customer_id: UUID | None,
                 since: datetime | None) -> dict[str, Any]:
    """Settled totals, filtered by whatever is given (nothing: the whole tenant)."""
    row = await tx_of(session).fetchrow(
        "SELECT count(*) AS calls, coalesce(sum(input_tokens), 0)::bigint AS input_tokens, "
        "coalesce(sum(output_tokens), 0)::bigint AS output_tokens, "
        "coalesce(sum(cache_creation_input_tokens), 0)::bigint AS cache_creation, "
        "coalesce(sum(cache_read_input_tokens), 0)::bigint AS cache_read, "
        "coalesce(sum(cost_micros), 0)::bigint AS cost_micros FROM llm_usage "
        "WHERE tenant_id = $1 AND status = 'settled' "
        "AND ($2::uuid IS NULL OR run_id = $2) AND ($3::text IS NULL OR workflow_key = $3) "
        "AND ($4::uuid IS NULL OR customer_id = $4) "
        "AND ($5::timestamptz IS NULL OR created_at >= $5)",
        tenant_id, run_id, workflow_key, customer_id, since)
    assert row is not None
    return dict(row)
