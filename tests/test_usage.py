"""The token and cost ledger and monthly budgets: every LLM call of a run (llm and query
steps) is recorded with its tokens and priced; totals per run, workflow, customer and tenant
over GraphQL, the tenant's own only; a budget that cannot cover a call holds the step back
(it waits, then runs once the budget allows) and concurrent reservations never overshoot."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from domain.shared import clock
from domain.usage import prices
from domain.usage import service as usage
from domain.usage.errors import BudgetExceeded
from tests.factories_runs import make_customer, make_team, run, start
from tests.factories_workflows import config, make_workflow
from tests.test_isolation import as_tenant
from tests.workerlib import eventually, run_in_status

pytestmark = pytest.mark.asyncio

USAGE = """
query($runId: ID, $workflowKey: String, $customerId: ID) {
  usage(runId: $runId, workflowKey: $workflowKey, customerId: $customerId) {
    calls inputTokens outputTokens cacheCreationInputTokens cacheReadInputTokens tokens
    costUsd priceVersion
  }
}"""
SET_BUDGET = """
mutation($input: LlmBudgetInput!) {
  setLlmBudget(input: $input) { budget { monthlyTokens monthlyCostUsd }
                                errors { code message path } }
}"""
SPENT = {"input_tokens": 120, "output_tokens": 30, "cache_creation_input_tokens": 5,
         "cache_read_input_tokens": 10}


def _two_step_config(key: str) -> dict[str, Any]:
    return config(key, steps=[
        {"id": "count", "name": "Count", "type": "query",
         "execution": {"llmPrompt": "Count accounts like {{customer.name}}"},
         "routing": {"defaultRoute": "advice"}},
        {"id": "advice", "name": "Advice", "type": "llm",
         "execution": {"llmPrompt": "Advise on {{customer.name}}: {{{steps.count.output.csv}}}"}},
    ])


async def _script(fake_llm: Any, customer: dict[str, Any]) -> None:
    await fake_llm.script(
        {"match": f"Count accounts like {customer['name']}", "usage": SPENT,
         "text": "SELECT count(*) AS n FROM query_api.customers"},
        {"match": f"Advise on {customer['name']}", "usage": SPENT, "text": "Call them."})


class TestLedger:
    async def test_every_call_of_a_run_is_recorded_and_priced(
            self, gql, settings, worker, fake_llm) -> None:
        team, other = await make_team(gql, settings), await make_team(gql, settings)
        await make_workflow(gql, team.tenant, key="ledger", config_=_two_step_config("ledger"))
        customer = await make_customer(gql, team, days=30)
        await _script(fake_llm, customer)
        run_id = (await start(gql, team, "ledger", customer["id"]))["run"]["id"]
        await run_in_status(gql, team, run_id, "completed")
        assert prices.cost_micros("claude-sonnet-4-5", **SPENT) == 832  # 831.75, rounded up
        # The worker's model (claude-fake-1) is not in the table: priced as the dearest.
        one = prices.cost_micros("claude-fake-1", **SPENT)
        assert one == prices.cost_micros("claude-opus-4-1", **SPENT) == 4159
        expected = {"calls": 2, "inputTokens": 240, "outputTokens": 60,
                    "cacheCreationInputTokens": 10, "cacheReadInputTokens": 20,
                    "tokens": 330, "costUsd": 2 * one / 1_000_000,
                    "priceVersion": prices.VERSION}
        for variables in ({"runId": run_id}, {"workflowKey": "ledger"},
                          {"customerId": customer["id"]}, {}):
            found = (await gql(USAGE, variables, token=team.tenant.token))["usage"]
            assert found == expected, variables
        theirs = (await gql(USAGE, {"runId": run_id}, token=other.tenant.token))["usage"]
        assert theirs["calls"] == 0
        assert theirs["tokens"] == 0

    async def test_the_ledger_is_invisible_to_another_tenant(
            self, gql, settings, app_db, app_connection_factory) -> None:
        a, b = await make_team(gql, settings), await make_team(gql, settings)
        async with app_db.transaction(a.tenant.id, user_id=a.tenant.admin_id) as tx:
            await usage.set_budget(tx.session, tx.acting, monthly_tokens=10_000,
                                   monthly_cost_usd=None, now=clock.now())
            await usage.reserve(tx.session, a.tenant.id, usage.Call(
                purpose="test", model="claude-sonnet-4-5", prompt_chars=30, max_tokens=10),
                now=clock.now())
        conn = await app_connection_factory()
        await as_tenant(conn, b.tenant.id)
        assert await conn.fetchval("SELECT count(*) FROM llm_usage") == 0
        assert await conn.fetchval("SELECT count(*) FROM tenant_budgets") == 0
        assert await conn.execute("UPDATE llm_usage SET tokens = 0") == "UPDATE 0"
        with pytest.raises(Exception, match="row-level security"):
            await conn.execute("INSERT INTO llm_usage (tenant_id, purpose, model, "
                               "price_version) VALUES ($1, 'x', 'm', 'v')", a.tenant.id)
        await conn.execute("ROLLBACK")
        await as_tenant(conn, a.tenant.id)
        with pytest.raises(Exception, match="permission denied"):
            await conn.execute("DELETE FROM llm_usage")
        await conn.execute("ROLLBACK")


class TestBudget:
    async def test_only_admins_set_it_and_it_must_be_positive(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        denied = (await gql(SET_BUDGET, {"input": {"monthlyTokens": 5}},
                            token=team.csm_token))["setLlmBudget"]
        assert denied["budget"] is None
        assert denied["errors"][0]["code"] == "FORBIDDEN"
        bad = (await gql(SET_BUDGET, {"input": {"monthlyCostUsd": -1}},
                         token=team.tenant.token))["setLlmBudget"]
        assert bad["errors"][0]["path"] == "monthlyCostUsd"
        made = (await gql(SET_BUDGET, {"input": {"monthlyTokens": 5, "monthlyCostUsd": 2.5}},
                          token=team.tenant.token))["setLlmBudget"]
        assert made == {"budget": {"monthlyTokens": 5, "monthlyCostUsd": 2.5}, "errors": []}
        shown = await gql("{ llmBudget { monthlyTokens monthlyCostUsd } }",
                          token=team.tenant.token)
        assert shown["llmBudget"] == {"monthlyTokens": 5, "monthlyCostUsd": 2.5}

    async def test_an_exceeded_budget_holds_the_llm_step_until_it_is_raised(
            self, gql, settings, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        await make_workflow(gql, team.tenant, key="budgeted",
                            config_=_two_step_config("budgeted"))
        customer = await make_customer(gql, team, days=30)
        await _script(fake_llm, customer)
        set_low = await gql(SET_BUDGET, {"input": {"monthlyTokens": 100}},
                            token=team.tenant.token)
        assert set_low["setLlmBudget"]["errors"] == []
        run_id = (await start(gql, team, "budgeted", customer["id"]))["run"]["id"]

        async def held() -> dict[str, Any] | None:
            detail = await run(gql, team, run_id)
            waits = [e for e in detail["events"] if e["type"] == "step_waiting"
                     and (e["payload"] or {}).get("waitingFor") == "budget"]
            return detail if len(waits) >= 2 else None  # asked again, still held back

        detail = await eventually(held, deadline=30, what="the step to wait for budget")
        assert detail["status"] == "running"
        assert detail["events"][-1]["payload"]["code"] == "BUDGET_EXCEEDED"
        assert await fake_llm.calls() == [] or all(
            customer["name"] not in str(c) for c in await fake_llm.calls())
        await gql(SET_BUDGET, {"input": {"monthlyTokens": 1_000_000}}, token=team.tenant.token)
        await run_in_status(gql, team, run_id, "completed")
        found = (await gql(USAGE, {"runId": run_id}, token=team.tenant.token))["usage"]
        assert found["calls"] == 2  # the held-back attempts cost nothing


class TestReservations:
    async def test_concurrent_calls_never_overshoot(self, gql, settings, app_db) -> None:
        team = await make_team(gql, settings)
        async with app_db.transaction(team.tenant.id, user_id=team.tenant.admin_id) as tx:
            await usage.set_budget(tx.session, tx.acting, monthly_tokens=3_500,
                                   monthly_cost_usd=None, now=clock.now())
        call = usage.Call(purpose="test", model="claude-sonnet-4-5", prompt_chars=0,
                          max_tokens=1000)

        async def one() -> uuid.UUID | None:
            try:
                async with app_db.transaction(team.tenant.id) as tx:
                    return await usage.reserve(tx.session, team.tenant.id, call,
                                               now=clock.now())
            except BudgetExceeded:
                return None

        made = await asyncio.gather(*(one() for _ in range(8)))
        kept = [m for m in made if m is not None]
        assert len(kept) == 3
        async with app_db.transaction(team.tenant.id) as tx:
            # Reconciled to what one call used, the freed room admits another reservation.
            await usage.settle(tx.session, team.tenant.id, kept[0], model="claude-sonnet-4-5",
                               usage={"input_tokens": 10, "output_tokens": 5}, now=clock.now())
        assert await one() is not None
        assert await one() is None
        async with app_db.transaction(team.tenant.id) as tx:
            await usage.release(tx.session, team.tenant.id, kept[1], now=clock.now())
            totals = await usage.totals(tx.session, tx.acting)
        assert (totals.calls, totals.tokens) == (1, 15)
        assert await one() is not None

    async def test_a_cost_budget_is_checked_in_micro_dollars(self, gql, settings,
                                                             app_db) -> None:
        team = await make_team(gql, settings)
        async with app_db.transaction(team.tenant.id, user_id=team.tenant.admin_id) as tx:
            await usage.set_budget(tx.session, tx.acting, monthly_tokens=None,
                                   monthly_cost_usd=0.01, now=clock.now())
        # 1000 output tokens of sonnet cost $0.015: more than the whole budget
        with pytest.raises(BudgetExceeded, match="cost budget"):
            async with app_db.transaction(team.tenant.id) as tx:
                await usage.reserve(tx.session, team.tenant.id, usage.Call(
                    purpose="test", model="claude-sonnet-4-5", prompt_chars=0,
                    max_tokens=1000), now=clock.now())
