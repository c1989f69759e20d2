"""Chat threads on a run's step (M8), answered without streaming for now.

`send_message` stores the user's message (opening the thread on first use) and queues the
reply; `reply` runs in the worker: it reads the thread, calls the model outside any
transaction (reserved in the token ledger first), and stores the assistant message. The
live stream (chatStream) comes with the broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.chat import repository
from domain.jobs import service as jobs
from domain.jobs.models import CHAT_REPLY, Job
from domain.runs import engine
from domain.runs.steps import system_prompt
from domain.shared import clock
from domain.shared.actor import Actor, Role
from domain.shared.db import Database
from domain.shared.errors import DomainError, NotFound
from domain.shared.ids import parse_id
from domain.usage import service as usage
from domain.usage.errors import BudgetExceeded

log = logging.getLogger("stepwise.chat")
MAX_TOKENS = 1024
MAX_CONTENT = 8000
CHAT_KINDS = ("llm", "rag")


@dataclass(frozen=True)
class Sent:
    thread: dict[str, Any]
    message: dict[str, Any]


def _chat_branch(step: dict[str, Any], branch_id: str | None) -> dict[str, Any]:
    branches = [b for b in step.get("chatBranches") or [] if isinstance(b, dict)]
    if branch_id is not None:
        found = next((b for b in branches if b.get("id") == branch_id), None)
        if found is None or (found.get("type") not in CHAT_KINDS
                             and not found.get("allowOffScript")):
            raise DomainError(f"step has no chat branch {branch_id!r}", path="branchId",
                              code="INVALID_BRANCH")
        return found
    found = next((b for b in branches if b.get("type") in CHAT_KINDS
                  or b.get("allowOffScript")), None)
    if found is None:
        raise DomainError("this step has no llm or rag branch", path="stepId",
                          code="INVALID_BRANCH")
    return found


async def send_message(session: AsyncSession, actor: Actor, *, run_id: str, step_id: str,
                       content: str, thread_id: str | None = None,
                       branch_id: str | None = None) -> Sent:
    """Store the user's message and queue the model's reply."""
    actor.require(Role.EDITOR)
    text = content.strip()
    if not text:
        raise DomainError("a message needs some text", path="content")
    if len(text) > MAX_CONTENT:
        raise DomainError(f"at most {MAX_CONTENT} characters", path="content")
    work = await engine.load(session, actor, parse_id(run_id, path="runId"))
    step = work.step_config(step_id)
    if step is None:
        raise NotFound("no such step", path="stepId")
    if thread_id is not None:
        thread = await repository.get_thread(session, parse_id(thread_id, path="threadId"),
                                             lock=True)
        if thread is None or thread["run_id"] != work.run.id or thread["step_id"] != step_id:
            raise NotFound("no such thread", path="threadId")
        if thread["status"] != "active":
            raise DomainError("this thread has ended", path="threadId", code="WRONG_STATE")
    else:
        branch = _chat_branch(step, branch_id)
        kind = branch.get("type") if branch.get("type") in CHAT_KINDS else "custom"
        thread = await repository.insert_thread(
            session, actor.tenant_id, run_id=work.run.id, step_id=step_id,
            branch_id=branch.get("id"), thread_type=str(kind),
            return_to_step=branch.get("returnToStep"),
            system_prompt=system_prompt(work.config, await work.customer_context()),
            max_tokens=MAX_TOKENS)
    seq = await repository.take_seq(session, thread["id"])
    message = await repository.insert_message(session, actor.tenant_id, thread_id=thread["id"],
                                              seq=seq, role="user", content=text)
    await jobs.defer(session, Job(CHAT_REPLY, actor.tenant_id,
                                  {"thread_id": str(thread["id"]),
                                   "message_id": str(message["id"])},
                                  queueing_lock=f"chat:{thread['id']}:{seq}"))
    return Sent(thread=thread, message=message)


async def thread(session: AsyncSession, actor: Actor, thread_id: str) -> dict[str, Any] | None:
    """The thread with its messages and tool calls, or None (missing or not the tenant's)."""
    try:
        found = await repository.get_thread(session, parse_id(thread_id, path="id"))
    except NotFound:
        return None
    if found is None:
        return None
    return {**found, "messages": await repository.messages(session, found["id"]),
            "tool_calls": await repository.tool_calls(session, found["id"])}


async def reply(db: Database, tenant_id: UUID, thread_id: UUID, message_id: UUID) -> str:
    """The model's answer to the thread's last user message (idempotent per message)."""
    from domain.shared import llm

    async with db.transaction(tenant_id) as tx:
        found = await repository.get_thread(tx.session, thread_id)
        history = await repository.messages(tx.session, thread_id) if found else []
        if found is None or not history or history[-1]["id"] != message_id:
            return "stale"  # answered already, or a newer message took over
        turns = [{"role": m["role"], "content": m["content"]} for m in history]
        prompt_chars = len(found["system_prompt"]) + sum(len(t["content"]) for t in turns)
        try:
            reservation = await usage.reserve(tx.session, tenant_id, usage.Call(
                purpose="chat", model=llm.config().model, prompt_chars=prompt_chars,
                max_tokens=int(found["max_tokens"]), run_id=found["run_id"],
                step_id=found["step_id"]), now=clock.now())
        except BudgetExceeded:
            # Held back, not dropped: asks again later (an admin may raise the budget).
            await jobs.defer(tx.session, Job(
                CHAT_REPLY, tenant_id, {"thread_id": str(thread_id),
                                        "message_id": str(message_id)},
                scheduled_at=datetime.now(UTC) + usage.retry_after(),
                queueing_lock=f"chat:{thread_id}:{history[-1]['seq']}"))
            log.info("chat reply held back by the budget: thread %s", thread_id)
            return "budget_exceeded"
    try:
        completion = await llm.complete(system=found["system_prompt"] or None, messages=turns,
                                        max_tokens=int(found["max_tokens"]))
    except llm.LLMError:
        async with db.transaction(tenant_id) as tx:
            await usage.release(tx.session, tenant_id, reservation, now=clock.now())
        raise
    spent = completion.usage
    async with db.transaction(tenant_id) as tx:
        await usage.settle(tx.session, tenant_id, reservation, model=completion.model,
                           usage=spent.__dict__, now=clock.now())
        await repository.get_thread(tx.session, thread_id, lock=True)
        seq = await repository.take_seq(tx.session, thread_id)
        tokens = spent.input_tokens + spent.output_tokens
        await repository.insert_message(tx.session, tenant_id, thread_id=thread_id, seq=seq,
                                        role="assistant", content=completion.text,
                                        tokens_used=tokens,
                                        metadata={"model": completion.model})
        await repository.add_tokens(tx.session, thread_id, tokens, completion.model)
    return "answered"
