"""Every query for the outbox and the channels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.notifications.models import Channel, Notification, WorkflowChannel
from domain.shared.db import tx_of

_COLUMNS = ("tenant_id, id, run_id, step_id, notification_id, channel, channel_id, priority, "
            "title, message, recipients, reason, status, deliver_at, attempts, last_error, "
            "sent_at, read_at, created_at, updated_at")
_CHANNEL_COLUMNS = "tenant_id, id, type, name, config, secret, enabled, created_at, updated_at"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def insert(session: AsyncSession, items: Sequence[Notification]) -> None:
    if not items:
        return
    await tx_of(session).execute(
        "INSERT INTO notifications (tenant_id, id, run_id, step_id, notification_id, channel, "
        "channel_id, priority, title, message, recipients, reason, status, deliver_at, "
        "last_error) SELECT n.tenant_id, n.id, n.run_id, n.step_id, n.notification_id, "
        "n.channel, n.channel_id, n.priority, n.title, n.message, n.recipients, n.reason, "
        "n.status, n.deliver_at, n.last_error FROM jsonb_to_recordset($1::jsonb) AS n("
        "tenant_id uuid, id uuid, run_id uuid, step_id text, notification_id text, "
        "channel text, channel_id uuid, priority text, title text, message text, "
        "recipients text[], reason text, status text, deliver_at timestamptz, last_error text)",
        _dumps([{
            "tenant_id": n.tenant_id, "id": n.id, "run_id": n.run_id, "step_id": n.step_id,
            "notification_id": n.notification_id, "channel": n.channel,
            "channel_id": n.channel_id, "priority": n.priority, "title": n.title,
            "message": n.message, "recipients": n.recipients, "reason": n.reason,
            "status": n.status, "last_error": n.last_error,
            "deliver_at": n.deliver_at.isoformat() if n.deliver_at else None,
        } for n in items]))


async def for_runs(session: AsyncSession, run_ids: Sequence[UUID]) -> list[Notification]:
    rows = await tx_of(session).fetch(
        f"SELECT {_COLUMNS} FROM notifications WHERE run_id = ANY($1::uuid[]) "
        "ORDER BY created_at, id", list(run_ids))
    return [Notification(**dict(row)) for row in rows]


async def lock(session: AsyncSession, notification_id: UUID) -> Notification | None:
    row = await tx_of(session).fetchrow(
        f"SELECT {_COLUMNS} FROM notifications WHERE id = $1 FOR UPDATE", notification_id)
    return None if row is None else Notification(**dict(row))


async def update_state(session: AsyncSession, notification: Notification, *, now: datetime
                       ) -> None:
    await tx_of(session).execute(
        "UPDATE notifications SET status = $2, attempts = $3, last_error = $4, sent_at = $5, "
        "deliver_at = $6, read_at = $7, updated_at = $8 WHERE id = $1",
        notification.id, notification.status, notification.attempts, notification.last_error,
        notification.sent_at, notification.deliver_at, notification.read_at, now)


async def drop_undelivered(session: AsyncSession, run_id: UUID, *, reason: str,
                           now: datetime) -> list[UUID]:
    """Scheduled and queued notifications of a run that will never be sent now."""
    rows = await tx_of(session).fetch(
        "UPDATE notifications SET status = 'dropped', last_error = $2, updated_at = $3 "
        "WHERE run_id = $1 AND status IN ('scheduled', 'pending') RETURNING id",
        run_id, reason, now)
    return [row["id"] for row in rows]


async def inbox(session: AsyncSession, email: str, *, unread_only: bool, limit: int
                ) -> list[Notification]:
    """In-app notifications addressed to `email` (case-insensitively), newest first."""
    rows = await tx_of(session).fetch(
        f"SELECT {_COLUMNS} FROM notifications WHERE channel = 'in_app' "
        "AND status = 'sent' AND recipients && ARRAY[$1, lower($1)] "
        "AND ($2 = false OR read_at IS NULL) ORDER BY created_at DESC, id DESC LIMIT $3",
        email, unread_only, limit)
    return [Notification(**dict(row)) for row in rows]


# Channels


async def channels(session: AsyncSession) -> list[Channel]:
    rows = await tx_of(session).fetch(
        f"SELECT {_CHANNEL_COLUMNS} FROM notification_channels ORDER BY type, name")
    return [Channel(**dict(row)) for row in rows]


async def channel(session: AsyncSession, channel_id: UUID) -> Channel | None:
    row = await tx_of(session).fetchrow(
        f"SELECT {_CHANNEL_COLUMNS} FROM notification_channels WHERE id = $1", channel_id)
    return None if row is None else Channel(**dict(row))


async def upsert_channel(session: AsyncSession, item: Channel, *, now: datetime) -> Channel:
    row = await tx_of(session).fetchrow(
        "INSERT INTO notification_channels (tenant_id, id, type, name, config, secret, enabled, "
        "created_at, updated_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $8) "
        "ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, "
        "config = excluded.config, secret = excluded.secret, enabled = excluded.enabled, "
        f"updated_at = excluded.updated_at RETURNING {_CHANNEL_COLUMNS}",
        item.tenant_id, item.id, item.type, item.name, _dumps(item.config), item.secret,
        item.enabled, now)
    assert row is not None
    return Channel(**dict(row))


async def delete_channel(session: AsyncSession, channel_id: UUID) -> bool:
    status = await tx_of(session).execute(
        "DELETE FROM notification_channels WHERE id = $1", channel_id)
    return status.endswith(" 1")


async def workflow_channels(session: AsyncSession, workflow_key: str
                            ) -> list[WorkflowChannel]:
    rows = await tx_of(session).fetch(
        "SELECT workflow_key, channel_id, enabled, priority FROM workflow_channels "
        "WHERE workflow_key = $1", workflow_key)
    return [WorkflowChannel(**dict(row)) for row in rows]


async def set_workflow_channels(session: AsyncSession, tenant_id: UUID, workflow_key: str,
                                items: Sequence[WorkflowChannel], *, now: datetime) -> None:
    """Replace the workflow's channel settings."""
    tx = tx_of(session)
    await tx.execute("DELETE FROM workflow_channels WHERE workflow_key = $1", workflow_key)
    for item in items:
        await tx.execute(
            "INSERT INTO workflow_channels (tenant_id, workflow_key, channel_id, enabled, "
            "priority, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            tenant_id, workflow_key, item.channel_id, item.enabled, item.priority, now)


async def lock_with_run(session: AsyncSession, notification_id: UUID
                        ) -> tuple[Notification, str] | None:
    """The notification (row-locked) and its run's status."""
    row = await tx_of(session).fetchrow(
        f"SELECT {', '.join('n.' + c for c in _COLUMNS.split(', '))}, r.status AS run_status "
        "FROM notifications n JOIN runs r ON r.tenant_id = n.tenant_id AND r.id = n.run_id "
        "WHERE n.id = $1 FOR UPDATE OF n", notification_id)
    if row is None:
        return None
    values = dict(row)
    run_status = values.pop("run_status")
    return Notification(**values), run_status


async def mark_read(session: AsyncSession, notification_id: UUID, email: str, *,
                    now: datetime) -> Notification | None:
    row = await tx_of(session).fetchrow(
        "UPDATE notifications SET read_at = coalesce(read_at, $3), updated_at = $3 "
        "WHERE id = $1 AND channel = 'in_app' AND status = 'sent' "
        f"AND recipients && ARRAY[$2, lower($2)] RETURNING {_COLUMNS}",
        notification_id, email, now)
    return None if row is None else Notification(**dict(row))
