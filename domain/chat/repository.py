"""Every query of chat threads, messages and tool calls (driver SQL on the tenant tx)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.db import tx_of

_THREAD = ("id, run_id, step_id, branch_id, thread_type, status, return_to_step, "
           "system_prompt, model, max_tokens, total_tokens, next_seq, created_at, tools, "
           "context_data, temperature, last_activity_at, ended_at, end_reason")
_MESSAGE = ("id, thread_id, seq, role, content, message_type, metadata, tokens_used, "
            "created_at, reply_to")
_DELTA = "seq, message_id, reply_to, delta, done, error_code"
_JSON_KEYS = ("metadata", "tools", "context_data", "input", "output")


def _row(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    found = dict(row)
    for key in _JSON_KEYS:
        if isinstance(found.get(key), str):
            found[key] = json.loads(found[key])
    return found


async def get_thread(session: AsyncSession, thread_id: UUID, *, lock: bool = False
                     ) -> dict[str, Any] | None:
    suffix = " FOR UPDATE" if lock else ""
    return _row(await tx_of(session).fetchrow(
        f"SELECT {_THREAD} FROM chat_threads WHERE id = $1{suffix}", thread_id))


async def insert_thread(session: AsyncSession, tenant_id: UUID, *, run_id: UUID, step_id: str,
                        branch_id: str | None, thread_type: str, return_to_step: str | None,
                        system_prompt: str, max_tokens: int, tools: list[str],
                        context_data: dict[str, Any], now: datetime) -> dict[str, Any]:
    row = await tx_of(session).fetchrow(
        "INSERT INTO chat_threads (tenant_id, run_id, step_id, branch_id, thread_type, "
        "return_to_step, system_prompt, max_tokens, tools, context_data, last_activity_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11) "
        f"RETURNING {_THREAD}", tenant_id, run_id, step_id, branch_id, thread_type,
        return_to_step, system_prompt, max_tokens, json.dumps(tools),
        json.dumps(context_data, default=str), now)
    found = _row(row)
    assert found is not None
    return found


async def take_seq(session: AsyncSession, thread_id: UUID, *, now: datetime) -> int:
    """The thread's next message number (gapless: taken under the thread's row lock)."""
    return int(await tx_of(session).fetchval(
        "UPDATE chat_threads SET next_seq = next_seq + 1, updated_at = now(), "
        "last_activity_at = $2 WHERE id = $1 RETURNING next_seq", thread_id, now))


async def end_thread(session: AsyncSession, thread_id: UUID, *, status: str, reason: str,
                     now: datetime) -> bool:
    """Active -> completed | abandoned; False when it had ended already."""
    done = await tx_of(session).execute(
        "UPDATE chat_threads SET status = $2, end_reason = $3, ended_at = $4, updated_at = now() "
        "WHERE id = $1 AND status = 'active'", thread_id, status, reason, now)
    return str(done).endswith(" 1")


async def reply_exists(session: AsyncSession, reply_to: UUID) -> bool:
    return bool(await tx_of(session).fetchval(
        "SELECT EXISTS (SELECT FROM chat_messages WHERE reply_to = $1 AND role = 'assistant' "
        "AND message_type = 'text')", reply_to))


# The stream (see migration 0009 for why deltas are rows)


async def insert_delta(session: AsyncSession, tenant_id: UUID, *, thread_id: UUID,
                       message_id: UUID, reply_to: UUID, delta: str, done: bool = False,
                       error_code: str | None = None) -> int:
    """One flush of the stream, numbered in the thread's stream order (row-locked)."""
    tx = tx_of(session)
    seq = int(await tx.fetchval(
        "UPDATE chat_threads SET stream_seq = stream_seq + 1 WHERE id = $1 "
        "RETURNING stream_seq", thread_id))
    await tx.execute(
        "INSERT INTO chat_deltas (tenant_id, thread_id, seq, message_id, reply_to, delta, done, "
        "error_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", tenant_id, thread_id, seq,
        message_id, reply_to, delta, done, error_code)
    return seq


async def has_notice(session: AsyncSession, thread_id: UUID, reply_to: UUID, code: str
                     ) -> bool:
    return bool(await tx_of(session).fetchval(
        "SELECT EXISTS (SELECT FROM chat_deltas WHERE thread_id = $1 AND reply_to = $2 "
        "AND error_code = $3 AND NOT done)", thread_id, reply_to, code))


async def live_attempt(session: AsyncSession, thread_id: UUID, reply_to: UUID, *,
                       lease_seconds: float) -> bool:
    """Whether another attempt at this reply wrote to its stream within the lease (and has
    not finished): it is still running, or died so recently that it may be."""
    return bool(await tx_of(session).fetchval(
        "SELECT NOT d.done AND d.error_code IS NULL "
        "AND d.created_at > now() - make_interval(secs => $3) "
        "FROM chat_deltas d WHERE d.thread_id = $1 AND d.reply_to = $2 "
        "ORDER BY d.seq DESC LIMIT 1", thread_id, reply_to, lease_seconds))


async def forget_deltas(session: AsyncSession, thread_id: UUID, *, keep_reply_to: UUID) -> None:
    """Drop the transport rows of the thread's earlier replies (their messages are stored)."""
    await tx_of(session).execute(
        "DELETE FROM chat_deltas WHERE thread_id = $1 AND reply_to <> $2", thread_id,
        keep_reply_to)


async def deltas(session: AsyncSession, thread_id: UUID, *, after_seq: int, limit: int
                 ) -> list[dict[str, Any]]:
    rows = await tx_of(session).fetch(
        f"SELECT {_DELTA} FROM chat_deltas WHERE thread_id = $1 AND seq > $2 ORDER BY seq "
        "LIMIT $3", thread_id, after_seq, limit)
    return [dict(row) for row in rows]


async def stream_start(session: AsyncSession, thread_id: UUID) -> int:
    """The seq just before the stream of the thread's latest user message's reply."""
    return int(await tx_of(session).fetchval(
        "SELECT coalesce(min(d.seq) - 1, t.stream_seq) FROM chat_threads t "
        "LEFT JOIN chat_deltas d ON d.thread_id = t.id AND d.reply_to = ("
        "  SELECT m.id FROM chat_messages m WHERE m.thread_id = t.id AND m.role = 'user' "
        "  ORDER BY m.seq DESC LIMIT 1) "
        "WHERE t.id = $1 GROUP BY t.stream_seq", thread_id) or 0)


async def add_tokens(session: AsyncSession, thread_id: UUID, tokens: int, model: str) -> None:
    await tx_of(session).execute(
        "UPDATE chat_threads SET total_tokens = total_tokens + $2, model = $3 WHERE id = $1",
        thread_id, tokens, model)


async def insert_message(session: AsyncSession, tenant_id: UUID, *, thread_id: UUID, seq: int,
                         role: str, content: str, tokens_used: int = 0,
                         metadata: dict[str, Any] | None = None, message_type: str = "text",
                         reply_to: UUID | None = None, id: UUID | None = None
                         ) -> dict[str, Any]:
    row = await tx_of(session).fetchrow(
        "INSERT INTO chat_messages (id, tenant_id, thread_id, seq, role, content, tokens_used, "
        "metadata, message_type, reply_to) "
        "VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10) "
        f"RETURNING {_MESSAGE}", id, tenant_id, thread_id, seq, role, content, tokens_used,
        json.dumps(metadata or {}, default=str), message_type, reply_to)
    found = _row(row)
    assert found is not None
    return found


async def messages(session: AsyncSession, thread_id: UUID) -> list[dict[str, Any]]:
    rows = await tx_of(session).fetch(
        f"SELECT {_MESSAGE} FROM chat_messages WHERE thread_id = $1 ORDER BY seq", thread_id)
    return [r for r in (_row(row) for row in rows) if r is not None]


async def insert_tool_calls(session: AsyncSession, tenant_id: UUID, *, thread_id: UUID,
                            message_id: UUID | None, calls: list[dict[str, Any]]) -> None:
    if not calls:
        return
    # One statement for all of them (a turn makes a handful at most).
    await tx_of(session).execute(
        "INSERT INTO chat_tool_calls (tenant_id, thread_id, message_id, tool_name, input, "
        "output, success, error, duration_ms, created_at) "
        "SELECT $1, $2, $3, c.tool_name, c.input, c.output, c.success, c.error, c.duration_ms, "
        "now() + n * interval '1 microsecond' "  # keeps the order they were made in
        "FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS e(item, n), "
        "jsonb_to_record(e.item) AS c(tool_name text, input jsonb, output jsonb, "
        "success boolean, error text, duration_ms integer)",
        tenant_id, thread_id, message_id, json.dumps(calls, default=str))


async def tool_calls(session: AsyncSession, thread_id: UUID) -> list[dict[str, Any]]:
    rows = await tx_of(session).fetch(
        "SELECT tool_name, input, output, success, error, duration_ms FROM chat_tool_calls "
        "WHERE thread_id = $1 ORDER BY created_at, id", thread_id)
    found = []
    for row in rows:
        item = dict(row)
        for key in ("input", "output"):
            if isinstance(item.get(key), str):
                item[key] = json.loads(item[key])
        found.append(item)
    return found
