"""chatStream over graphql-transport-ws: a reply streams as deltas then done, the deltas
concatenate to the stored assistant message, a late subscriber gets the whole reply from the
log, and another tenant cannot subscribe to the thread."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import pytest_asyncio

from tests.chatlib import answered, escalated, send, served, stream
from tests.factories_runs import make_team
from tests.factories_workflows import seed_core
from tests.test_isolation import as_tenant

pytestmark = pytest.mark.asyncio
__all__ = ["served"]
SPENT = {"input_tokens": 55, "output_tokens": 21, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 0}
ANSWER = ("Lead with the twelve-month term, then offer the payment plan; keep the "
          "discount for the last call and name the executive sponsor in your follow-up.")


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


class TestChatStream:
    async def test_deltas_then_done_and_the_stored_reply_is_their_concatenation(
            self, gql, settings, worker, fake_llm, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"How do I open the call with {customer['name']}?"
        # Many small deltas, slowly: the stream must carry them as they come.
        await fake_llm.script({"match": question, "text": ANSWER, "chunks": 12,
                               "delta_delay": 0.05, "usage": SPENT})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        assert sent["errors"] == []
        thread_id = sent["thread"]["id"]
        seen, end = await stream(served, team.csm_token, thread_id)
        assert end["type"] == "complete", end
        assert seen[-1]["done"] is True
        assert seen[-1]["errorCode"] is None
        assert all(not item["done"] for item in seen[:-1])
        assert len(seen) >= 3  # streamed in pieces, not in one go
        assert [s["seq"] for s in seen] == sorted({s["seq"] for s in seen})
        assert {s["threadId"] for s in seen} == {thread_id}
        assert len({s["messageId"] for s in seen}) == 1
        found = await answered(gql, team, thread_id)
        reply = found["messages"][1]
        assert "".join(s["delta"] for s in seen) == reply["content"] == ANSWER
        assert reply["id"] == seen[0]["messageId"]
        assert reply["tokensUsed"] == found["totalTokens"] == 76
        # A subscriber arriving after the end replays the reply from the log, then done.
        again, end = await stream(served, team.csm_token, thread_id)
        assert end["type"] == "complete"
        assert "".join(s["delta"] for s in again) == ANSWER
        assert again[-1]["done"]
        # ...and one resuming after the last seq it saw waits for the next reply.
        await fake_llm.script({"match": "And then?", "text": "Then the sponsor."})
        follow = await send(gql, team, runId=run_id, stepId="executive-escalation",
                            content="And then?", threadId=thread_id)
        assert follow["errors"] == []
        resumed, _ = await stream(served, team.csm_token, thread_id,
                                  after_seq=seen[-1]["seq"])
        assert "".join(s["delta"] for s in resumed) == "Then the sponsor."

    async def test_another_tenant_cannot_subscribe_to_the_thread(
            self, gql, settings, worker, fake_llm, served, app_connection_factory) -> None:
        team, other = await make_team(gql, settings), await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Private question about {customer['name']}"
        await fake_llm.script({"match": question, "text": "A private answer.",
                               "delta_delay": 0.02})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        thread_id = sent["thread"]["id"]
        for token, target in ((other.csm_token, thread_id),
                              (team.csm_token, str(uuid.uuid4())),
                              (team.csm_token, "not-an-id")):
            seen, end = await stream(served, token, target)
            assert seen == []
            errors = end["payload"] if end["type"] == "error" else end["payload"]["errors"]
            assert errors[0]["extensions"]["code"] == "NOT_FOUND", end
            assert "private" not in str(end).lower()
        mine, _ = await stream(served, team.csm_token, thread_id)
        assert "".join(s["delta"] for s in mine) == "A private answer."
        # the stream's rows, as the app role under the other tenant: invisible, unplantable
        conn = await app_connection_factory()
        await as_tenant(conn, other.tenant.id)
        assert await conn.fetchval("SELECT count(*) FROM chat_deltas") == 0
        assert await conn.execute("DELETE FROM chat_deltas") == "DELETE 0"
        await conn.execute("ROLLBACK")
        await as_tenant(conn, other.tenant.id)
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(
                "INSERT INTO chat_deltas (tenant_id, thread_id, seq, message_id, reply_to, "
                "delta) VALUES ($1, $2, 999, $2, $2, 'planted')", team.tenant.id,
                uuid.UUID(thread_id))
        await conn.execute("ROLLBACK")
