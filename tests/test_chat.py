"""Chat on a core workflow's llm branch, without streaming: sendChatMessage stores the user's
message and the worker stores the model's reply (the fake's text and usage) on the thread;
the thread is the tenant's only; bad input is refused with a path and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from tests.factories import contract_operation as contract
from tests.factories_runs import Team, make_customer, make_team, start
from tests.factories_workflows import seed_core
from tests.test_isolation import as_tenant
from tests.workerlib import eventually

pytestmark = pytest.mark.asyncio
SPENT = {"input_tokens": 40, "output_tokens": 12, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 3}


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _escalated(gql: Any, team: Team) -> tuple[str, dict[str, Any]]:
    customer = await make_customer(gql, team, days=10, arr=300000)
    run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
    return run_id, customer


async def _send(gql: Any, team: Team, token: str | None = None, **input_: Any
                ) -> dict[str, Any]:
    data = await gql(contract("SendChatMessage"), {"input": input_},
                     token=token or team.csm_token)
    payload: dict[str, Any] = data["sendChatMessage"]
    return payload


async def _thread(gql: Any, token: str, thread_id: str) -> dict[str, Any] | None:
    data = await gql(contract("ChatThread"), {"id": thread_id}, token=token)
    found: dict[str, Any] | None = data["chatThread"]
    return found


async def _held(database_url: str, thread_id: str) -> bool:
    """A chat_reply job of the thread waits, scheduled for later (the job table, as owner)."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM jobs.procrastinate_jobs WHERE task_name = 'chat_reply' "
            "AND status = 'todo' AND scheduled_at IS NOT NULL AND args->>'thread_id' = $1",
            thread_id))
    finally:
        await conn.close()


class TestChat:
    async def test_a_message_on_the_llm_branch_is_answered_on_the_thread(
            self, gql, settings, worker, fake_llm, app_connection_factory) -> None:
        team, other = await make_team(gql, settings), await make_team(gql, settings)
        run_id, customer = await _escalated(gql, team)
        question = f"What should I tell {customer['name']}?"
        await fake_llm.script({"match": question, "text": "Lead with the 12-month term.",
                               "usage": SPENT})
        sent = await _send(gql, team, runId=run_id, stepId="executive-escalation",
                           content=question)
        assert sent["errors"] == []
        assert sent["thread"]["status"] == "active"
        assert sent["message"] == {"id": sent["message"]["id"], "seq": 1, "role": "user",
                                   "content": question, "messageType": "text"}
        thread_id = sent["thread"]["id"]

        async def answered() -> dict[str, Any] | None:
            found = await _thread(gql, team.tenant.token, thread_id)
            return found if found and len(found["messages"]) == 2 else None

        thread = await eventually(answered, deadline=30, what="the assistant's reply")
        assert thread["threadType"] == "llm"
        assert thread["stepId"] == "executive-escalation"
        assert [(m["seq"], m["role"]) for m in thread["messages"]] == [(1, "user"),
                                                                      (2, "assistant")]
        reply = thread["messages"][1]
        assert reply["content"] == "Lead with the 12-month term."
        assert reply["tokensUsed"] == 52
        assert thread["totalTokens"] == 52
        assert thread["toolCalls"] == []
        call = next(c for c in await fake_llm.calls() if question in str(c))
        assert customer["name"] in str(call["system"])  # the customer's context is there
        usage = await gql("query($r: ID) { usage(runId: $r) { calls inputTokens "
                          "cacheReadInputTokens } }", {"r": run_id}, token=team.tenant.token)
        assert usage["usage"] == {"calls": 1, "inputTokens": 40, "cacheReadInputTokens": 3}
        # another tenant: not over GraphQL, not as the app role
        assert await _thread(gql, other.tenant.token, thread_id) is None
        conn = await app_connection_factory()
        await as_tenant(conn, other.tenant.id)
        for table in ("chat_threads", "chat_messages", "chat_tool_calls"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert await conn.execute("UPDATE chat_threads SET status = 'abandoned'") == "UPDATE 0"
        await conn.execute("ROLLBACK")
        # a follow-up on the same thread continues the gapless sequence
        follow = await _send(gql, team, runId=run_id, stepId="executive-escalation",
                             content="And the price?", threadId=thread_id)
        assert follow["errors"] == []
        assert follow["message"]["seq"] == 3

    async def test_a_reply_over_budget_waits_until_the_budget_allows_it(
            self, gql, settings, database_url, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await _escalated(gql, team)
        budget = ("mutation($t: Int) { setLlmBudget(input: {monthlyTokens: $t}) "
                  "{ errors { code } } }")
        await gql(budget, {"t": 10}, token=team.tenant.token)
        question = f"Budget question about {customer['name']}?"
        await fake_llm.script({"match": question, "text": "Within budget now."})
        sent = await _send(gql, team, runId=run_id, stepId="executive-escalation",
                           content=question)
        thread_id = sent["thread"]["id"]
        await eventually(lambda: _held(database_url, thread_id), deadline=30,
                         what="the held-back reply to be scheduled again")
        assert all(question not in str(c) for c in await fake_llm.calls())
        found = await _thread(gql, team.tenant.token, thread_id)
        assert found is not None
        assert len(found["messages"]) == 1
        await gql(budget, {"t": 1_000_000}, token=team.tenant.token)

        async def answered() -> dict[str, Any] | None:
            found = await _thread(gql, team.tenant.token, thread_id)
            return found if found and len(found["messages"]) == 2 else None

        thread = await eventually(answered, deadline=30, what="the reply after the raise")
        assert thread["messages"][1]["content"] == "Within budget now."

    async def test_bad_messages_are_refused_and_nothing_is_written(
            self, gql, settings, app_connection_factory) -> None:
        team, other = await make_team(gql, settings), await make_team(gql, settings)
        run_id, _ = await _escalated(gql, team)
        cases = [
            ({"stepId": "executive-escalation", "content": "  "}, "content", None),
            ({"stepId": "critical-status-assessment", "content": "hi"}, "stepId",
             "INVALID_BRANCH"),
            ({"stepId": "executive-escalation", "content": "hi", "branchId": "snooze"},
             "branchId", "INVALID_BRANCH"),
            ({"stepId": "nope", "content": "hi"}, "stepId", "NOT_FOUND"),
            ({"stepId": "executive-escalation", "content": "hi",
              "threadId": "00000000-0000-0000-0000-000000000000"}, "threadId", "NOT_FOUND"),
        ]
        for input_, path, code in cases:
            payload = await _send(gql, team, runId=run_id, **input_)
            assert payload["thread"] is None, input_
            assert payload["errors"][0]["path"] == path, payload
            if code:
                assert payload["errors"][0]["code"] == code
        theirs = await _send(gql, other, runId=run_id, stepId="executive-escalation",
                             content="hi")
        assert theirs["errors"][0]["code"] == "NOT_FOUND"
        assert await _thread(gql, team.tenant.token, "not-an-id") is None
        conn = await app_connection_factory()
        for tenant in (team.tenant.id, other.tenant.id):
            await as_tenant(conn, tenant)
            assert await conn.fetchval("SELECT count(*) FROM chat_threads") == 0
            assert await conn.fetchval("SELECT count(*) FROM chat_messages") == 0
            await conn.execute("ROLLBACK")
