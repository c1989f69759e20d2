"""One reply per user message: the chat_reply job run twice at once answers once (the
second waits for the first's lease, paying and streaming nothing), and run again after the
answer it neither calls the model nor stores a second reply."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import pytest_asyncio

from domain.chat import reply as replies
from tests.chatlib import escalated, send, served, stream, thread
from tests.factories_runs import make_team
from tests.factories_workflows import seed_core

pytestmark = pytest.mark.asyncio
__all__ = ["served"]


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _scheduled_again(database_url: str, thread_id: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM jobs.procrastinate_jobs WHERE task_name = 'chat_reply' "
            "AND status = 'todo' AND args->>'thread_id' = $1",
            thread_id))
    finally:
        await conn.close()


class TestOneReplyPerMessage:
    async def test_a_job_run_twice_at_once_and_once_more_answers_once(
            self, gql, settings, app_db, fake_llm, database_url, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Answer me once, {customer['name']}"
        await fake_llm.script({"match": question, "text": "Exactly once.", "delay": 0.3,
                               "times": 5})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)  # queued; no worker runs in this test
        thread_id, message_id = sent["thread"]["id"], sent["message"]["id"]
        ids = (team.tenant.id, uuid.UUID(thread_id), uuid.UUID(message_id))
        results = await asyncio.gather(replies.reply(app_db, *ids),
                                       replies.reply(app_db, *ids))
        assert sorted(results) == ["answered", "busy"]
        # the busy attempt leaves one reply job queued (here the one sendChatMessage queued,
        # which holds the queueing lock; under a worker, a new one after the lease)
        assert await _scheduled_again(database_url, thread_id) == 1
        assert await replies.reply(app_db, *ids) == "duplicate"
        found = await thread(gql, team.tenant.token, thread_id)
        assert found is not None
        assert [(m["role"], m["content"]) for m in found["messages"]] == [
            ("user", question), ("assistant", "Exactly once.")]
        calls = [c for c in await fake_llm.calls() if question in json.dumps(c["messages"])]
        assert len(calls) == 1
        usage = await gql("query($r: ID) { usage(runId: $r) { calls } }", {"r": run_id},
                          token=team.tenant.token)
        assert usage["usage"]["calls"] == 1
        seen, _ = await stream(served, team.csm_token, thread_id)
        assert len({s["messageId"] for s in seen}) == 1
        assert "".join(s["delta"] for s in seen) == "Exactly once."
