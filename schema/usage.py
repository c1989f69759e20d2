"""The token and cost ledger (totals per run, workflow, customer or tenant) and budgets."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.usage import prices
from domain.usage import service as domain_usage
from resolvers import usage as resolve
from schema.context import Info
from schema.errors import UserError, attempt, query_result


@strawberry.type(description="Settled LLM usage: tokens by kind and cost in USD.")
class Usage:
    calls: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    tokens: int
    cost_usd: float
    price_version: str = strawberry.field(description="The price table now in force.")

    @classmethod
    def of(cls, found: domain_usage.Totals) -> Usage:
        return cls(calls=found.calls, input_tokens=found.input_tokens,
                   output_tokens=found.output_tokens,
                   cache_creation_input_tokens=found.cache_creation_input_tokens,
                   cache_read_input_tokens=found.cache_read_input_tokens,
                   tokens=found.tokens, cost_usd=found.cost_micros / 1_000_000,
                   price_version=prices.VERSION)


@strawberry.type(description="The tenant's monthly LLM budget (calendar month, UTC); "
                             "null limits are unlimited.")
class LlmBudget:
    monthly_tokens: int | None
    monthly_cost_usd: float | None

    @classmethod
    def of(cls, found: domain_usage.Budget) -> LlmBudget:
        cost = found.monthly_cost_micros
        return cls(monthly_tokens=found.monthly_tokens,
                   monthly_cost_usd=None if cost is None else cost / 1_000_000)


@strawberry.input
class LlmBudgetInput:
    monthly_tokens: int | None = None
    monthly_cost_usd: float | None = None


@strawberry.type
class LlmBudgetPayload:
    budget: LlmBudget | None
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field(description="LLM usage of the tenant, or of one run, workflow (by key) "
                                  "or customer, optionally since a moment.")
    async def usage(self, info: Info, run_id: strawberry.ID | None = None,
                    workflow_key: str | None = None, customer_id: strawberry.ID | None = None,
                    since: datetime | None = None) -> Usage:
        return Usage.of(await query_result(lambda: resolve.totals(
            info, run_id=run_id, workflow_key=workflow_key, customer_id=customer_id,
            since=since)))

    @strawberry.field(description="The tenant's monthly LLM budget.")
    async def llm_budget(self, info: Info) -> LlmBudget:
        return LlmBudget.of(await query_result(lambda: resolve.budget(info)))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Admins set the tenant's monthly LLM budget (tokens "
                                     "and/or USD; null clears a limit).")
    async def set_llm_budget(self, info: Info, input: LlmBudgetInput) -> LlmBudgetPayload:
        found, errors = await attempt(info, lambda: resolve.set_budget(
            info, monthly_tokens=input.monthly_tokens,
            monthly_cost_usd=input.monthly_cost_usd))
        return LlmBudgetPayload(budget=LlmBudget.of(found) if found else None, errors=errors)
