"""How chat threads end, and how replies fail: the CSM returns to the workflow (the run
resumes at returnToStep), an idle thread is abandoned by the worker's tick (the controllable
clock, no sleeping), a 529 is retried then surfaced as a clean error on the stream, and a
budget reached mid-conversation stops or holds the reply with BUDGET_EXCEEDED."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from domain.shared import clock
from domain.shared.settings import PROJECT_ROOT
from tests.chatlib import answered, escalated, send, served, stream, thread
from tests.factories_runs import make_team, run
from tests.factories_workflows import make_workflow, seed_core
from tests.test_live import Socket
from tests.workerlib import eventually

pytestmark = pytest.mark.asyncio
__all__ = ["served"]
RETURN = ("mutation($t: ID!) { returnToWorkflow(threadId: $t) { thread { id status } "
          "run { id status currentStepId } errors { code message path } } }")
BUDGET = "mutation($t: Int) { setLlmBudget(input: {monthlyTokens: $t}) { errors { code } } }"


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _return(gql: Any, token: str, thread_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = (await gql(RETURN, {"t": thread_id}, token=token))[
        "returnToWorkflow"]
    return payload


def _critical_returning_to(step: str, key: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(
        (PROJECT_ROOT / "seeds" / "workflows" / "critical.json").read_text())
    config["id"] = key
    escalation = next(s for s in config["steps"] if s["id"] == "executive-escalation")
    ask = next(b for b in escalation["chatBranches"] if b["id"] == "ask")
    ask["returnToStep"] = step
    return config


class TestReturnToWorkflow:
    async def test_the_run_resumes_at_return_to_step(self, gql, settings, worker,
                                                     fake_llm) -> None:
        team, other = await make_team(gql, settings), await make_team(gql, settings)
        await make_workflow(gql, team.tenant, key="critical-chat",
                            config_=_critical_returning_to("emergency-resolution",
                                                           "critical-chat"))
        run_id, customer = await escalated(gql, team, key="critical-chat")
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=f"Quick question about {customer['name']}")
        thread_id = sent["thread"]["id"]
        await answered(gql, team, thread_id)
        assert (await _return(gql, other.csm_token, thread_id))["errors"][0]["code"] \
            == "NOT_FOUND"
        back = await _return(gql, team.csm_token, thread_id)
        assert back["errors"] == []
        assert back["thread"]["status"] == "completed"
        assert back["run"]["currentStepId"] == "emergency-resolution"
        assert back["run"]["status"] == "waiting"
        detail = await run(gql, team, run_id)
        ended = [e for e in detail["events"] if e["type"] == "chat_ended"]
        assert ended[0]["payload"]["returnToStep"] == "emergency-resolution"
        steps = {s["stepId"]: s["status"] for s in detail["steps"]}
        assert steps["executive-escalation"] == "completed"
        again = await _return(gql, team.csm_token, thread_id)
        assert again["errors"][0]["code"] == "WRONG_STATE"
        late = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content="one more", threadId=thread_id)
        assert late["errors"][0]["code"] == "WRONG_STATE"

    async def test_returning_to_the_same_step_keeps_it_waiting_for_a_choice(
            self, gql, settings) -> None:
        team = await make_team(gql, settings)
        run_id, _ = await escalated(gql, team)  # core `ask` returns to its own step
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content="Before I choose: anything else?")
        back = await _return(gql, team.csm_token, sent["thread"]["id"])
        assert back["errors"] == []
        assert back["run"]["currentStepId"] == "executive-escalation"
        assert back["run"]["status"] == "waiting"


class TestIdle:
    async def test_an_idle_thread_is_abandoned_when_the_clock_passes_the_timeout(
            self, gql, settings, worker, fake_llm, clock_file) -> None:
        team = await make_team(gql, settings)
        run_id, _ = await escalated(gql, team)
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content="Idle question")
        thread_id = sent["thread"]["id"]
        await answered(gql, team, thread_id)
        clock.advance(timedelta(minutes=20), path=clock_file)
        still = await thread(gql, team.tenant.token, thread_id)
        assert still is not None
        assert still["status"] == "active"  # 20 minutes is not idle yet (30 are)
        clock.advance(timedelta(minutes=11), path=clock_file)

        async def abandoned() -> dict[str, Any] | None:
            found = await thread(gql, team.tenant.token, thread_id)
            return found if found and found["status"] == "abandoned" else None

        await eventually(abandoned, deadline=30, what="the idle thread to be abandoned")
        late = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content="Still there?", threadId=thread_id)
        assert late["errors"][0]["code"] == "WRONG_STATE"


class TestFailures:
    async def test_a_529_is_retried_then_answered(self, gql, settings, worker, fake_llm,
                                                  served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Overloaded once for {customer['name']}?"
        await fake_llm.script(
            {"match": question, "error": {"status": 529, "retry_after": 0.05}},
            {"match": question, "text": "Recovered."})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        seen, _ = await stream(served, team.csm_token, sent["thread"]["id"])
        assert "".join(s["delta"] for s in seen) == "Recovered."
        assert seen[-1]["errorCode"] is None
        calls = [c for c in await fake_llm.calls() if question in json.dumps(c["messages"])]
        assert [c["status"] for c in calls] == [529, 200]

    async def test_a_529_that_persists_ends_the_reply_with_a_clean_error(
            self, gql, settings, worker, fake_llm, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Always overloaded for {customer['name']}?"
        await fake_llm.script({"match": question, "times": 5, "error": {
            "status": 529, "retry_after": 0.05, "message": "Overloaded (req_secret_123)"}})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        thread_id = sent["thread"]["id"]
        seen, end = await stream(served, team.csm_token, thread_id)
        assert end["type"] == "complete"
        assert seen[-1]["done"] is True
        assert seen[-1]["errorCode"] == "LLM_OVERLOADED"
        assert "".join(s["delta"] for s in seen) == ""  # the reply's begin, then its end
        assert "req_secret" not in json.dumps(seen)
        calls = [c for c in await fake_llm.calls() if question in json.dumps(c["messages"])]
        assert [c["status"] for c in calls] == [529, 529, 529]  # three attempts, then done
        found = await thread(gql, team.tenant.token, thread_id)
        assert found is not None
        assert [m["role"] for m in found["messages"]] == ["user"]  # no reply stored
        usage = await gql("query($r: ID) { usage(runId: $r) { calls tokens } }",
                          {"r": run_id}, token=team.tenant.token)
        assert usage["usage"]["tokens"] == 0  # released, not charged
        # the thread goes on: the next message is answered
        await fake_llm.script({"match": "Try again", "text": "Back."})
        await send(gql, team, runId=run_id, stepId="executive-escalation",
                   content="Try again", threadId=thread_id)
        again = await answered(gql, team, thread_id, messages=3)
        assert again["messages"][-1]["content"] == "Back."


class TestBudget:
    async def test_a_budget_reached_inside_a_reply_stops_it_cleanly(
            self, gql, settings, worker, fake_llm, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        await gql(BUDGET, {"t": 4000}, token=team.tenant.token)
        question = f"Expensive question about {customer['name']}"
        # Round one fits the budget and spends most of it; round two's reservation cannot.
        await fake_llm.script(
            {"match": question, "text": "Let me look. ", "usage": {"output_tokens": 3500},
             "tool_use": {"name": "rag_search", "input": {"query": "pricing"}}},
            {"match": question, "text": "never sent"})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        seen, _ = await stream(served, team.csm_token, sent["thread"]["id"])
        assert seen[-1]["done"] is True
        assert seen[-1]["errorCode"] == "BUDGET_EXCEEDED"
        found = await answered(gql, team, sent["thread"]["id"])
        reply = found["messages"][1]
        assert reply["content"] == "".join(s["delta"] for s in seen)
        assert reply["content"].startswith("Let me look. ")
        assert "budget is used up" in reply["content"]
        assert reply["metadata"]["stopped"] == "budget"
        assert [c["toolName"] for c in found["toolCalls"]] == ["rag_search"]
        assert "never sent" in json.dumps(await fake_llm.pending())

    async def test_a_budget_used_up_between_messages_holds_the_reply_and_says_so(
            self, gql, settings, worker, fake_llm, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        first = f"First question for {customer['name']}"
        await fake_llm.script({"match": first, "text": "First answer.",
                               "usage": {"input_tokens": 900, "output_tokens": 100}})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=first)
        thread_id = sent["thread"]["id"]
        await answered(gql, team, thread_id)
        await gql(BUDGET, {"t": 1500}, token=team.tenant.token)  # 1000 spent, 1024 needed
        await fake_llm.script({"match": "Second question", "text": "Second answer."})
        await send(gql, team, runId=run_id, stepId="executive-escalation",
                   content="Second question", threadId=thread_id)
        socket = await Socket.open(served, team.csm_token)
        try:
            await socket.subscribe("subscription($t: ID!) { chatStream(threadId: $t) "
                                   "{ delta done errorCode } }", {"t": thread_id})
            notice = await socket.message(30)
            assert notice["payload"]["data"]["chatStream"] == {
                "delta": "", "done": False, "errorCode": "BUDGET_EXCEEDED"}
            held = await thread(gql, team.tenant.token, thread_id)
            assert held is not None
            assert len(held["messages"]) == 3  # the question waits, unanswered
            await gql(BUDGET, {"t": 1_000_000}, token=team.tenant.token)
            text = ""
            while True:
                item = (await socket.message(30))["payload"]["data"]["chatStream"]
                text += item["delta"]
                if item["done"]:
                    break
            assert text == "Second answer."
        finally:
            await socket.close()
