"""Chat threads on a run's step (M8).

`send_message` stores the user's message (opening the thread on first use, with its LLM
context: system prompt, tools, the step's prompt and earlier outputs) and queues the reply;
the worker answers it (reply.py), streaming through chat_deltas (stream.py). A thread ends
when the CSM returns to the workflow (`return_to_workflow`) or when it has been idle for
`idle_after()` (`expire_idle`, found by the worker's tick).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.chat import repository, tools
from domain.jobs import service as jobs
from domain.jobs.models import CHAT_REPLY, Job
from domain.runs import actions, engine
from domain.runs.models import RunStatus, StepStatus
from domain.runs.steps import system_prompt
from domain.shared import clock
from domain.shared.actor import Actor, Role
from domain.shared.db import Database
from domain.shared.errors import DomainError, NotFound
from domain.shared.ids import parse_id
from domain.templating.engine import TemplateError, render

log = logging.getLogger("stepwise.chat")
MAX_TOKENS = 1024
MAX_CONTENT = 8000
CHAT_KINDS = ("llm", "rag")


_CHAT_SYSTEM = (resources.files("domain.chat") / "prompts" / "chat_system.txt").read_text()


async def _context_data(work: engine.Work, step: Mapping[str, Any]) -> dict[str, Any]:
    """What the thread's model knows of the run: the step's prompt, rendered, and what the
    earlier steps produced."""
    execution = step.get("execution") if isinstance(step.get("execution"), Mapping) else {}
    prompt = str((execution or {}).get("llmPrompt") or "")
    try:
        rendered = render(prompt, await work.context()) if prompt else ""
    except TemplateError:
        rendered = prompt
    return {"stepPrompt": rendered,
            "earlierSteps": dict(work.outputs)}


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
        context_data = await _context_data(work, step)
        thread = await repository.insert_thread(
            session, actor.tenant_id, run_id=work.run.id, step_id=step_id,
            branch_id=branch.get("id"), thread_type=str(kind),
            return_to_step=branch.get("returnToStep"),
            system_prompt=_CHAT_SYSTEM.format(
                system_prompt=system_prompt(work.config, await work.customer_context()),
                step_prompt=context_data["stepPrompt"] or step.get("name", ""),
                earlier_steps=json.dumps(context_data["earlierSteps"], default=str)[:20000],
            ).strip(),
            max_tokens=MAX_TOKENS, tools=tools.FOR_THREAD.get(str(kind), []),
            context_data=context_data, now=clock.now())
    seq = await repository.take_seq(session, thread["id"], now=clock.now())
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
    """The model's answer to the thread's last user message (the worker; see reply.py)."""
    from domain.chat import reply as replies

    return await replies.reply(db, tenant_id, thread_id, message_id)


# Endings


@dataclass(frozen=True)
class Ended:
    thread: dict[str, Any]
    run: Any  # domain.runs.models.Run


async def return_to_workflow(session: AsyncSession, actor: Actor, thread_id: str) -> Ended:
    """The CSM is done chatting: the thread completes and the run resumes at the branch's
    `returnToStep` (staying on the step keeps it waiting for a choice)."""
    actor.require(Role.EDITOR)
    found = await repository.get_thread(session, parse_id(thread_id, path="threadId"))
    if found is None:
        raise NotFound("no such thread", path="threadId")
    work = await engine.load(session, actor, found["run_id"], path="threadId",
                             steps=(found["step_id"],))
    found = await repository.get_thread(session, found["id"], lock=True)
    assert found is not None
    if found["status"] != "active":
        raise DomainError("this thread has ended", path="threadId", code="WRONG_STATE")
    now = clock.now()
    await repository.end_thread(session, found["id"], status="completed", reason="returned",
                                now=now)
    record = work.steps.get(found["step_id"])
    target = found.get("return_to_step") or found["step_id"]
    waiting = (work.run.status == RunStatus.WAITING and work.run.current_step_id
               == found["step_id"] and record is not None
               and record.status == StepStatus.WAITING)
    work.emit("chat_ended", found["step_id"], threadId=str(found["id"]), reason="returned",
              returnToStep=target if waiting else None)
    if waiting and record is not None:
        if target == record.step_id:
            await actions.resume_at(work, record, target)
        else:
            engine.complete_step(work, record, {"threadId": str(found["id"]),
                                                "returnToStep": target},
                                 branchId=found.get("branch_id"), threadId=str(found["id"]))
            await engine.go_to(work, target)
    await engine.save(work)
    ended = await repository.get_thread(session, found["id"])
    assert ended is not None
    return Ended(thread=ended, run=work.run)


def idle_after() -> timedelta:
    """How long a thread may sit without a message before it is abandoned."""
    return timedelta(seconds=float(os.environ.get("STEPWISE_CHAT_IDLE_SECONDS", "1800")))


async def expire_idle(db: Database, tenant_id: UUID, thread_id: UUID) -> str:
    """Abandon a thread idle since before now - idle_after() (the worker's tick found it)."""
    now = clock.now()
    async with db.transaction(tenant_id) as tx:
        found = await repository.get_thread(tx.session, thread_id, lock=True)
        if found is None or found["status"] != "active":
            return "ended"
        if found["last_activity_at"] > now - idle_after():
            return "active"  # a message came meanwhile
        await repository.end_thread(tx.session, thread_id, status="abandoned", reason="idle",
                                    now=now)
    return "abandoned"


# The stream


def stream_topic(tenant_id: UUID, thread_id: UUID) -> str:
    """The live topic of a thread's stream (as migration 0009 notifies it)."""
    return f"chat:{tenant_id}:{thread_id}"


async def stream_start(session: AsyncSession, thread_id: str) -> tuple[UUID, int] | None:
    """The thread's id and the seq its current reply's stream starts after (None: not the
    tenant's or no such thread)."""
    parsed = parse_id(thread_id, path="threadId")
    if await repository.get_thread(session, parsed) is None:
        return None
    return parsed, await repository.stream_start(session, parsed)


async def stream_after(session: AsyncSession, thread_id: UUID, *, after_seq: int, limit: int
                       ) -> list[dict[str, Any]]:
    return await repository.deltas(session, thread_id, after_seq=after_seq, limit=limit)
