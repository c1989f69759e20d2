"""Tools in chat: a rag branch cites the tenant's document (never another tenant's), a
database_query -> create_chart round trip stores a chart message, a failing tool is told to
the model and logged, and the loop bound ends a reply cleanly."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_asyncio

from tests.chatlib import answered, at_resolution, escalated, send, served, stream
from tests.factories_runs import make_team
from tests.factories_workflows import seed_core
from tests.workerlib import WorkerProcess, forget_queued_jobs, worker_env

pytestmark = pytest.mark.asyncio
__all__ = ["served"]
ADD = ("mutation($input: AddKnowledgeDocumentInput!) { addKnowledgeDocument(input: $input) "
       "{ document { id title } errors { code } } }")


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _document(gql: Any, token: str, title: str, content: str) -> str:
    data = await gql(ADD, {"input": {"title": title, "content": content}}, token=token)
    assert data["addKnowledgeDocument"]["errors"] == []
    return str(data["addKnowledgeDocument"]["document"]["id"])


def _tool_results(call: dict[str, Any]) -> list[dict[str, Any]]:
    last = call["messages"][-1]["content"]
    return [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"]


class TestRag:
    async def test_a_rag_branch_cites_the_tenants_document_and_never_anothers(
            self, gql, settings, worker, fake_llm, served) -> None:
        team, other = await make_team(gql, settings), await make_team(gql, settings)
        mine = await _document(gql, team.tenant.token, "War room checklist",
                               "Open the war room bridge within one hour and invite the "
                               "executive sponsor.")
        await _document(gql, other.tenant.token, "Their war room secrets",
                        "War room bridge code 4242 for the other tenant only.")
        run_id, customer = await at_resolution(gql, team)
        question = f"What does our war room checklist say for {customer['name']}?"
        await fake_llm.script(
            {"match": question, "tool_use": {"name": "rag_search",
                                             "input": {"query": "war room bridge"}}},
            {"match": question, "text": "Per the War room checklist: open the bridge within "
                                        "one hour."})
        sent = await send(gql, team, runId=run_id, stepId="emergency-resolution",
                          content=question)
        assert sent["errors"] == []
        thread_id = sent["thread"]["id"]
        seen, _ = await stream(served, team.csm_token, thread_id)
        thread = await answered(gql, team, thread_id)
        assert thread["threadType"] == "rag"
        reply = thread["messages"][1]
        assert reply["content"] == "".join(s["delta"] for s in seen)
        assert reply["content"].startswith("Per the War room checklist")
        citations = reply["metadata"]["citations"]
        assert [c["documentId"] for c in citations] == [mine]
        assert [c["title"] for c in citations] == ["War room checklist"]
        [call] = thread["toolCalls"]
        assert call["toolName"] == "rag_search"
        assert call["success"] is True
        assert call["input"] == {"query": "war room bridge"}
        assert [r["title"] for r in call["output"]["results"]] == ["War room checklist"]
        assert call["durationMs"] >= 0
        calls = [c for c in await fake_llm.calls() if question in json.dumps(c["messages"])]
        assert len(calls) == 2
        assert [t["name"] for t in calls[0]["tools"]] == ["rag_search"]
        [result] = _tool_results(calls[1])
        assert "executive sponsor" in result["content"]
        assert "4242" not in json.dumps(calls)
        assert "secrets" not in json.dumps(calls)
        # the tool calls are the tenant's only
        theirs = await gql("query($id: ID!) { chatThread(id: $id) { id } }",
                           {"id": thread_id}, token=other.tenant.token)
        assert theirs["chatThread"] is None


class TestDataTools:
    async def test_database_query_then_create_chart_stores_a_chart_message(
            self, gql, settings, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Chart the ARR of my customers, like {customer['name']}"
        sql = "SELECT name, arr FROM query_api.customers ORDER BY arr DESC"
        await fake_llm.script(
            {"match": question, "tool_use": {"name": "database_query",
                                             "input": {"question": "ARR per customer"}}},
            {"match": "ARR per customer", "text": sql,
             "usage": {"input_tokens": 30, "output_tokens": 10}},
            {"match": question, "tool_use": {"name": "create_chart", "input": {
                "title": "ARR by customer", "mark": "bar", "x": "name", "y": "arr"}}},
            {"match": question, "text": "Here is the chart."})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        thread = await answered(gql, team, sent["thread"]["id"], messages=3)
        kinds = [(m["seq"], m["role"], m["messageType"]) for m in thread["messages"]]
        assert kinds == [(1, "user", "text"), (2, "assistant", "text"),
                         (3, "assistant", "chart")]
        assert thread["messages"][1]["content"] == "Here is the chart."
        chart = thread["messages"][2]
        spec = chart["metadata"]["spec"]
        assert spec["$schema"].endswith("vega-lite/v5.json")
        assert spec["mark"] == "bar"
        assert spec["encoding"]["y"] == {"field": "arr", "type": "quantitative"}
        assert {"name": customer["name"], "arr": 300000} in spec["data"]["values"]
        query_call, chart_call = thread["toolCalls"]
        assert query_call["toolName"] == "database_query"
        assert query_call["success"] is True
        assert query_call["output"]["rowCount"] == 1
        assert "query_api.customers" in query_call["output"]["sql"]
        assert chart_call["toolName"] == "create_chart"
        assert chart_call["success"] is True
        usage = await gql("query($r: ID) { usage(runId: $r) { calls } }", {"r": run_id},
                          token=team.tenant.token)
        assert usage["usage"]["calls"] == 4  # three chat rounds and the SQL

    async def test_a_failing_tool_is_told_to_the_model_and_logged(
            self, gql, settings, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Just chart it for {customer['name']}"
        await fake_llm.script(
            {"match": question, "tool_use": {"name": "create_chart", "input": {
                "title": "T", "mark": "bar", "x": "a", "y": "b"}}},
            {"match": question, "text": "I need data first."})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        thread = await answered(gql, team, sent["thread"]["id"])
        [call] = thread["toolCalls"]
        assert call["success"] is False
        assert "database_query" in call["error"]
        assert thread["messages"][1]["content"] == "I need data first."
        second = [c for c in await fake_llm.calls() if question in json.dumps(c["messages"])][1]
        [result] = _tool_results(second)
        assert result["is_error"] is True


class TestBounds:
    async def test_a_model_that_keeps_calling_tools_is_stopped_cleanly(
            self, gql, settings, worker, fake_llm, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Search forever about {customer['name']}"
        await fake_llm.script({"match": question, "times": 20, "text": "Searching. ",
                               "tool_use": {"name": "rag_search", "input": {"query": "x"}}})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        thread_id = sent["thread"]["id"]
        seen, end = await stream(served, team.csm_token, thread_id)
        assert end["type"] == "complete"
        assert seen[-1]["done"] is True
        thread = await answered(gql, team, thread_id)
        reply = thread["messages"][1]
        assert reply["metadata"]["stopped"] == "rounds"
        assert reply["metadata"]["rounds"] == 4
        assert reply["content"] == "".join(s["delta"] for s in seen)
        assert reply["content"].startswith("Searching. Searching. Searching. Searching.")
        assert "limit of tool calls" in reply["content"]
        assert len(thread["toolCalls"]) == 3  # the fourth round's request is not run
        calls = [c for c in await fake_llm.calls() if question in json.dumps(c["messages"])]
        assert len(calls) == 4
        assert thread["status"] == "active"  # the conversation goes on

    async def test_a_reply_over_its_token_bound_is_stopped_cleanly(
            self, gql, settings, worker, fake_llm, served) -> None:
        team = await make_team(gql, settings)
        run_id, customer = await escalated(gql, team)
        question = f"Search with many tokens about {customer['name']}"
        # Each call spends 16,000 tokens: after the second the bound (30,000) is reached.
        await fake_llm.script({"match": question, "times": 20, "text": "Looking. ",
                               "usage": {"input_tokens": 15000, "output_tokens": 1000},
                               "tool_use": {"name": "rag_search", "input": {"query": "x"}}})
        sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                          content=question)
        seen, end = await stream(served, team.csm_token, sent["thread"]["id"])
        assert end["type"] == "complete"
        thread = await answered(gql, team, sent["thread"]["id"])
        reply = thread["messages"][1]
        assert reply["metadata"]["stopped"] == "tokens"
        assert reply["metadata"]["rounds"] == 2
        assert "token limit" in reply["content"]
        assert reply["content"] == "".join(s["delta"] for s in seen)
        assert len(thread["toolCalls"]) == 1  # the second round's request is not run

    async def test_a_reply_over_its_time_bound_is_stopped_cleanly(
            self, gql, settings, fake_llm, served, database_url, clock_file, tmp_path) -> None:
        # A worker of this test's own whose replies may take no time at all: the first round
        # that asks for a tool has already taken longer than that.
        env = worker_env(database_url, clock_file=clock_file, log_dir=tmp_path,
                         extra={**fake_llm.env, "STEPWISE_CHAT_MAX_SECONDS": "0"})
        await forget_queued_jobs(database_url)
        process = WorkerProcess(env).start()
        try:
            team = await make_team(gql, settings)
            run_id, customer = await escalated(gql, team)
            question = f"Search slowly about {customer['name']}"
            await fake_llm.script({"match": question, "times": 20, "text": "Hm. ",
                                   "tool_use": {"name": "rag_search", "input": {"query": "x"}}})
            sent = await send(gql, team, runId=run_id, stepId="executive-escalation",
                              content=question)
            _, end = await stream(served, team.csm_token, sent["thread"]["id"])
            assert end["type"] == "complete"
            thread = await answered(gql, team, sent["thread"]["id"])
        finally:
            process.stop()
        reply = thread["messages"][1]
        assert reply["metadata"]["stopped"] == "seconds"
        assert reply["metadata"]["rounds"] == 1
        assert "took too long" in reply["content"]
        assert thread["toolCalls"] == []
