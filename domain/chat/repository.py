"""Every query of chat threads, messages and tool calls (driver SQL on the tenant tx)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.db import tx_of

_THREAD = ("id, run_id, step_id, branch_id, thread_type, status, return_to_step, "
           "system_prompt, model, max_tokens, total_tokens, next_seq, created_at")
_MESSAGE = "id, thread_id, seq, role, content, message_type, metadata, tokens_used, created_at"


def _row(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    found = dict(row)
    if isinstance(found.get("metadata"), str):
        found["metadata"] = json.loads(found["metadata"])
    return found


async def get_thread(session: AsyncSession, thread_id: UUID, *, lock: bool = False
                     ) -> dict[str, Any] | None:
    suffix = " FOR UPDATE" if lock else ""
    return _row(await tx_of(session).fetchrow(
        f"SELECT {_THREAD} FROM chat_threads WHERE id = $1{suffix}", thread_id))


async def insert_thread(session: AsyncSession, tenant_id: UUID, *, run_id: UUID, step_id: str,
                        branch_id: str | None, thread_type: str, return_to_step: str | None,
                        system_prompt: str, max_tokens: int) -> dict[str, Any]:
    row = await tx_of(session).fetchrow(
        "INSERT INTO chat_threads (tenant_id, run_id, step_id, branch_id, thread_type, "
        "return_to_step, system_prompt, max_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        f"RETURNING {_THREAD}", tenant_id, run_id, step_id, branch_id, thread_type,
        return_to_step, system_prompt, max_tokens)
    found = _row(row)
    assert found is not None
    return found


async def take_seq(session: AsyncSession, thread_id: UUID) -> int:
    """The thread's next message number (gapless: taken under the thread's row lock)."""
    return int(await tx_of(session).fetchval(
        "UPDATE chat_threads SET next_seq = next_seq + 1, updated_at = now() "
        "WHERE id = $1 RETURNING next_seq", thread_id))


async def add_tokens(session: AsyncSession, thread_id: UUID, tokens: int, model: str) -> None:
    await tx_of(session).execute(
        "UPDATE chat_threads SET total_tokens = total_tokens + $2, model = $3 WHERE id = $1",
        thread_id, tokens, model)


async def insert_message(session: AsyncSession, tenant_id: UUID, *, thread_id: UUID, seq: int,
                         role: str, content: str, tokens_used: int = 0,
                         metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    row = await tx_of(session).fetchrow(
        "INSERT INTO chat_messages (tenant_id, thread_id, seq, role, content, tokens_used, "
        f"metadata) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING {_MESSAGE}",
        tenant_id, thread_id, seq, role, content, tokens_used, json.dumps(metadata or {}))
    found = _row(row)
    assert found is not None
    return found


async def messages(session: AsyncSession, thread_id: UUID) -> list[dict[str, Any]]:
    rows = await tx_of(session).fetch(
        f"SELECT {_MESSAGE} FROM chat_messages WHERE thread_id = $1 ORDER BY seq", thread_id)
    return [r for r in (_row(row) for row in rows) if r is not None]


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
