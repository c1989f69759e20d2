"""What chat tests share: a run on the core `critical` workflow, sending, reading threads,
and a graphql-transport-ws reader of chatStream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest_asyncio

from schema.app import create_app
from tests.conftest import serving
from tests.factories import contract_operation as contract
from tests.factories_runs import Team, act, make_customer, start
from tests.test_live import Socket
from tests.workerlib import eventually

CHAT_STREAM = ("subscription($threadId: ID!, $afterSeq: Int) { chatStream(threadId: $threadId, "
               "afterSeq: $afterSeq) { threadId messageId seq delta done errorCode } }")
THREAD = ("query($id: ID!) { chatThread(id: $id) { id status threadType stepId totalTokens "
          "returnToStep messages { id seq role content messageType metadata tokensUsed } "
          "toolCalls { toolName input output success error durationMs } } }")


@pytest_asyncio.fixture
async def served(settings):  # type: ignore[no-untyped-def]
    """A server of this test's own (its broker listening), for WebSocket subscriptions."""
    application = create_app(settings)
    async with serving(application) as address:
        await asyncio.wait_for(application.state.broker.listening.wait(), 10)
        yield address


async def escalated(gql: Any, team: Team, *, key: str = "critical"
                    ) -> tuple[str, dict[str, Any]]:
    """A run waiting on `executive-escalation` (its `ask` llm branch)."""
    customer = await make_customer(gql, team, days=10, arr=300000)
    run_id = (await start(gql, team, key, customer["id"]))["run"]["id"]
    return run_id, customer


async def at_resolution(gql: Any, team: Team) -> tuple[str, dict[str, Any]]:
    """A run waiting on `emergency-resolution` (its `knowledge` rag branch)."""
    run_id, customer = await escalated(gql, team)
    chosen = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                       branchId="activate-war-room")
    assert chosen["errors"] == [], chosen
    assert chosen["run"]["currentStepId"] == "emergency-resolution"
    return run_id, customer


async def send(gql: Any, team: Team, token: str | None = None, **input_: Any) -> dict[str, Any]:
    data = await gql(contract("SendChatMessage"), {"input": input_},
                     token=token or team.csm_token)
    payload: dict[str, Any] = data["sendChatMessage"]
    return payload


async def thread(gql: Any, token: str, thread_id: str) -> dict[str, Any] | None:
    data = await gql(THREAD, {"id": thread_id}, token=token)
    found: dict[str, Any] | None = data["chatThread"]
    return found


async def answered(gql: Any, team: Team, thread_id: str, *, messages: int = 2,
                   deadline: float = 30) -> dict[str, Any]:
    """The thread once it holds `messages` messages."""
    async def probe() -> dict[str, Any] | None:
        found = await thread(gql, team.tenant.token, thread_id)
        return found if found and len(found["messages"]) >= messages else None

    return await eventually(probe, deadline=deadline, what=f"{messages} messages")


async def stream(address: str, token: str, thread_id: str, *, after_seq: int | None = None,
                 wait: float = 30) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every chatStream item until the operation ends, and the message that ended it."""
    socket = await Socket.open(address, token)
    try:
        await socket.subscribe(CHAT_STREAM, {"threadId": thread_id, "afterSeq": after_seq})
        seen: list[dict[str, Any]] = []
        while True:
            message = await socket.message(wait)
            if message["type"] == "next" and "errors" not in message["payload"]:
                seen.append(message["payload"]["data"]["chatStream"])
            else:
                return seen, message
    finally:
        await socket.close()
