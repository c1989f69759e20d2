"""The worker's answer to one user message: a bounded tool loop, streamed as it is written.

No model call happens inside a database transaction: each round is reserved in the ledger
in a short transaction, streamed with the SDK (text goes out through `DeltaWriter`), settled
in another; tools run in their own short transactions. The loop is bounded by rounds, wall
time and tokens; reaching a bound ends the reply cleanly (a closing sentence, streamed like
the rest, and `stopped` in the message's metadata). The stored assistant message is exactly
the concatenation of the streamed deltas.

One answer per user message (the user message's id is the idempotency key): an attempt
starts by writing a `begin` row to the stream under the thread's row lock, unless another
attempt wrote to it within the lease (then this one is scheduled for after the lease: a
doubly-run job neither pays twice nor streams twice, and one whose worker died is taken over
once the lease runs out); the answer is stored with `reply_to` after checking, under the
same lock, that none exists (a unique index backs it), so a retried job never stores a
second reply nor calls the model again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.chat import repository, tools
from domain.chat.stream import DeltaWriter
from domain.jobs import service as jobs
from domain.jobs.models import CHAT_REPLY, Job
from domain.shared import clock
from domain.shared.db import Database
from domain.usage import service as usage
from domain.usage.errors import BudgetExceeded

log = logging.getLogger("stepwise.chat")


@dataclass(frozen=True)
class Bounds:
    """How far one reply's tool loop may go."""

    rounds: int = 4  # model calls per reply
    seconds: float = 60.0
    tokens: int = 30_000  # input + output over the reply's rounds
    attempts: int = 3  # tries of a round that failed before any of its text went out

    @property
    def lease(self) -> float:
        """How long an attempt that stopped writing to its stream is presumed alive."""
        return self.seconds + 60.0

    @classmethod
    def from_env(cls) -> Bounds:
        return cls(rounds=int(os.environ.get("STEPWISE_CHAT_MAX_ROUNDS", cls.rounds)),
                   seconds=float(os.environ.get("STEPWISE_CHAT_MAX_SECONDS", cls.seconds)),
                   tokens=int(os.environ.get("STEPWISE_CHAT_MAX_TOKENS", cls.tokens)),
                   attempts=int(os.environ.get("STEPWISE_CHAT_LLM_ATTEMPTS", cls.attempts)))


STOPPED = {"rounds": "\n\n(I stopped here: this answer reached its limit of tool calls.)",
           "seconds": "\n\n(I stopped here: this answer took too long.)",
           "tokens": "\n\n(I stopped here: this answer reached its token limit.)",
           "budget": "\n\n(I stopped here: the team's LLM budget is used up.)"}


def _turns(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The thread as Messages API turns: text messages only (charts are shown, not said)."""
    turns: list[dict[str, Any]] = []
    for message in history:
        if message["message_type"] != "text" or not message["content"]:
            continue
        if turns and turns[-1]["role"] == message["role"]:
            turns[-1]["content"] += "\n\n" + message["content"]
        else:
            turns.append({"role": message["role"], "content": message["content"]})
    return turns


def _system(thread: dict[str, Any], allowed: list[str]) -> str:
    from importlib import resources

    base = str(thread["system_prompt"] or "")
    if not allowed:
        return base
    guide = (resources.files("domain.chat") / "prompts" / "tools_system.txt").read_text()
    return base + "\n" + guide.replace("{tools}", ", ".join(allowed))


class _Call:
    """One round's ledger entry: reserved before the call, settled or released after."""

    def __init__(self, db: Database, tenant_id: UUID, thread: dict[str, Any]) -> None:
        self.db, self.tenant_id, self.thread = db, tenant_id, thread

    def call(self, prompt_chars: int) -> usage.Call:
        from domain.shared import llm

        return usage.Call(purpose="chat", model=llm.config().model, prompt_chars=prompt_chars,
                          max_tokens=int(self.thread["max_tokens"]),
                          run_id=self.thread["run_id"], step_id=self.thread["step_id"])

    async def reserve(self, prompt_chars: int) -> UUID:
        async with self.db.transaction(self.tenant_id) as tx:
            return await usage.reserve(tx.session, self.tenant_id, self.call(prompt_chars),
                                       now=clock.now())


async def reply(db: Database, tenant_id: UUID, thread_id: UUID, message_id: UUID, *,
                bounds: Bounds | None = None) -> str:
    """Answer the user message `message_id` (idempotent per message)."""
    from domain.shared import llm

    limits = bounds or Bounds.from_env()
    async with db.transaction(tenant_id) as tx:
        thread = await repository.get_thread(tx.session, thread_id, lock=True)
        if thread is None or thread["status"] != "active":
            return "ended"
        if await repository.reply_exists(tx.session, message_id):
            return "duplicate"  # answered already (a retried or doubly-run job)
        history = await repository.messages(tx.session, thread_id)
        users = [m for m in history if m["role"] == "user"]
        if not users or users[-1]["id"] != message_id:
            return "stale"  # a newer message took over: its own job answers the thread
        job = Job(CHAT_REPLY, tenant_id, {"thread_id": str(thread_id),
                                          "message_id": str(message_id)},
                  queueing_lock=f"chat:{thread_id}:{users[-1]['seq']}")
        if await repository.live_attempt(tx.session, thread_id, message_id,
                                         lease_seconds=limits.lease):
            await jobs.defer(tx.session, replace(job, scheduled_at=datetime.now(UTC)
                                                 + timedelta(seconds=limits.lease)))
            return "busy"
        allowed = [t for t in thread.get("tools") or [] if t in tools.BY_NAME]
        system = _system(thread, allowed)
        turns = _turns(history)
        ledger = _Call(db, tenant_id, thread)
        chars = len(system) + sum(len(t["content"]) for t in turns)
        try:
            reservation: UUID | None = await usage.reserve(tx.session, tenant_id,
                                                           ledger.call(chars), now=clock.now())
        except BudgetExceeded:
            # Held back, not dropped: asks again later (an admin may raise the budget).
            await jobs.defer(tx.session, replace(
                job, scheduled_at=datetime.now(UTC) + usage.retry_after()))
            if not await repository.has_notice(tx.session, thread_id, message_id,
                                               "BUDGET_EXCEEDED"):
                # Subscribers learn why nothing comes yet (once; not a `done`).
                await repository.insert_delta(tx.session, tenant_id, thread_id=thread_id,
                                              message_id=message_id, reply_to=message_id,
                                              delta="", error_code="BUDGET_EXCEEDED")
            log.info("chat reply held back by the budget: thread %s", thread_id)
            return "budget_exceeded"
        await repository.forget_deltas(tx.session, thread_id, keep_reply_to=message_id)
        answer_id = uuid4()
        # The claim (and the subscribers' first sight of the reply's messageId).
        await repository.insert_delta(tx.session, tenant_id, thread_id=thread_id,
                                      message_id=answer_id, reply_to=message_id, delta="")

    box = tools.ToolBox(db=db, tenant_id=tenant_id, thread=thread, allowed=allowed)
    definitions = tools.definitions(allowed)
    started = time.monotonic()
    spent = 0
    model = llm.config().model
    stopped: str | None = None
    failure: llm.LLMError | None = None
    rounds = 0
    async with DeltaWriter(db, tenant_id, thread_id=thread_id, message_id=answer_id,
                           reply_to=message_id) as writer:
        while True:
            rounds += 1
            if reservation is None:
                try:
                    reservation = await ledger.reserve(chars)
                except BudgetExceeded:
                    stopped = "budget"
                    break
            try:
                completion = await _round(writer, system=system, turns=turns,
                                          definitions=definitions, limits=limits,
                                          max_tokens=int(thread["max_tokens"]))
            except llm.LLMError as error:
                async with db.transaction(tenant_id) as tx:
                    await usage.release(tx.session, tenant_id, reservation, now=clock.now())
                failure = error
                break
            async with db.transaction(tenant_id) as tx:
                await usage.settle(tx.session, tenant_id, reservation, model=completion.model,
                                   usage=completion.usage.__dict__, now=clock.now())
            reservation = None
            model = completion.model
            spent += completion.usage.input_tokens + completion.usage.output_tokens
            if not completion.tool_uses:
                break
            if rounds >= limits.rounds:
                stopped = "rounds"
            elif time.monotonic() - started > limits.seconds:
                stopped = "seconds"
            elif spent + box.tokens >= limits.tokens:
                stopped = "tokens"
            if stopped:
                break
            results = []
            for use in completion.tool_uses:
                content, is_error = await box.run(use.name, use.input)
                results.append(llm.tool_result(use.id, content, is_error=is_error))
            turns = [*turns, completion.assistant_message(), {"role": "user", "content": results}]
            chars += sum(len(str(block.get("content", ""))) for block in results) + 200
        if stopped:
            writer.add(STOPPED[stopped])
    return await _store(db, tenant_id, thread_id, message_id, answer_id=answer_id,
                        text=writer.published, box=box, tokens=spent + box.tokens, model=model,
                        stopped=stopped, rounds=rounds, failure=failure)


async def _round(writer: DeltaWriter, *, system: str, turns: list[dict[str, Any]],
                 definitions: list[dict[str, Any]], limits: Bounds, max_tokens: int) -> Any:
    """One model call, streamed; retried (after retry-after) while none of its text is out."""
    from domain.shared import llm

    for attempt in range(max(1, limits.attempts)):
        before = writer.written
        try:
            async for event in llm.stream(system=system or None, messages=turns,
                                          max_tokens=max_tokens, tools=definitions or None):
                if isinstance(event, llm.TextDelta):
                    writer.add(event.text)
                elif isinstance(event, llm.Completion):
                    return event
            raise llm.LLMUnavailable()
        except llm.LLMError as error:
            shown = writer.written > before
            if shown or not error.retryable or attempt + 1 >= limits.attempts:
                raise
            wait = error.retry_after if error.retry_after is not None else 0.5 * 2 ** attempt
            log.info("chat round failed (%s), retrying in %.2fs", error.code, wait)
            await asyncio.sleep(min(wait, 10.0))
    raise llm.LLMUnavailable()


async def _store(db: Database, tenant_id: UUID, thread_id: UUID, message_id: UUID, *,
                 answer_id: UUID, text: str, box: tools.ToolBox, tokens: int, model: str,
                 stopped: str | None, rounds: int, failure: Exception | None) -> str:
    """The reply, its charts and tool calls, and the stream's `done`, in one transaction."""
    code = getattr(failure, "code", None) or ("BUDGET_EXCEEDED" if stopped == "budget" else None)
    async with db.transaction(tenant_id) as tx:
        session = tx.session
        await repository.get_thread(session, thread_id, lock=True)
        if await repository.reply_exists(session, message_id):
            log.warning("chat reply to %s stored by another attempt; this one dropped",
                        message_id)
            return "duplicate"
        stored: UUID | None = None
        now = clock.now()
        if text or failure is None:
            metadata: dict[str, Any] = {"model": model, "rounds": rounds}
            if box.citations:
                metadata["citations"] = box.citations
            if stopped:
                metadata["stopped"] = stopped
            if code:
                metadata["error"] = code
            seq = await repository.take_seq(session, thread_id, now=now)
            await repository.insert_message(session, tenant_id, id=answer_id,
                                            thread_id=thread_id, seq=seq, role="assistant",
                                            content=text, tokens_used=tokens,
                                            metadata=metadata, reply_to=message_id)
            stored = answer_id
            for chart in box.charts:
                seq = await repository.take_seq(session, thread_id, now=now)
                await repository.insert_message(
                    session, tenant_id, thread_id=thread_id, seq=seq, role="assistant",
                    content=chart["title"], message_type="chart", reply_to=message_id,
                    metadata={"spec": chart["spec"], "format": "vega-lite"})
        await repository.insert_tool_calls(session, tenant_id, thread_id=thread_id,
                                           message_id=stored, calls=box.calls)
        await repository.add_tokens(session, thread_id, tokens, model)
        await repository.insert_delta(session, tenant_id, thread_id=thread_id,
                                      message_id=answer_id, reply_to=message_id, delta="",
                                      done=True, error_code=code)
    if failure is not None:
        log.warning("chat reply failed: thread %s (%s)", thread_id, code)
        return "failed"
    return "answered"
