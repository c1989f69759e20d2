"""Delivering one outbox row, at most once.

Two transactions around the send: the first claims the row (`sending`, one more attempt),
the send happens outside any transaction, the second records the outcome. A known failure
puts the row back to `pending` and raises, so the job retries it with backoff; a row found
still `sending` by a retried job means a worker stopped mid-send with the outcome unknown:
it is marked failed, never sent again.
"""

from __future__ import annotations

import logging
from uuid import UUID

from domain.jobs import service as jobs
from domain.notifications import repository
from domain.notifications.service import IMPLICIT, delivery_job
from domain.notifications.transports import Retryable, Send, Undeliverable
from domain.shared import clock
from domain.shared.db import Database

log = logging.getLogger("stepwise.notifications")
ENDED = ("completed", "failed", "cancelled")


class RetryLater(Exception):
    """A known failure; the job should run again after its backoff."""


async def deliver(db: Database, tenant_id: UUID, notification_id: UUID, *, send: Send,
                  final: bool) -> str:
    async with db.transaction(tenant_id) as tx:
        found = await repository.lock_with_run(tx.session, notification_id)
        if found is None:
            return "missing"
        row, _ = found
        now = clock.now()
        if row.status == "sending":
            row.status = "failed"
            row.last_error = "outcome unknown: the worker stopped while sending (not resent)"
            await repository.update_state(tx.session, row, now=now)
            return "unknown"
        if row.status != "pending":
            return "stale"
        if row.channel in IMPLICIT:  # the inbox is ours: delivering is recording it
            row.status, row.sent_at, row.attempts = "sent", now, row.attempts + 1
            await repository.update_state(tx.session, row, now=now)
            return "sent"
        channel = await repository.channel(tx.session, row.channel_id) \
            if row.channel_id else None
        if channel is None or not channel.enabled:
            row.status, row.last_error = "dropped", "the channel was removed or disabled"
            await repository.update_state(tx.session, row, now=now)
            return "dropped"
        row.status, row.attempts = "sending", row.attempts + 1
        await repository.update_state(tx.session, row, now=now)
    error: str | None = None
    retry = False
    try:
        await send(channel, row)
    except Retryable as failure:
        error, retry = str(failure), not final
    except Undeliverable as failure:
        error = str(failure)
    async with db.transaction(tenant_id) as tx:
        found = await repository.lock_with_run(tx.session, notification_id)
        if found is None:
            return "missing"
        row, _ = found
        now = clock.now()
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", now, None
        else:
            row.status, row.last_error = ("pending" if retry else "failed"), error[:500]
        await repository.update_state(tx.session, row, now=now)
    if retry:
        raise RetryLater(error)
    return "sent" if error is None else "failed"


async def release(db: Database, tenant_id: UUID, notification_id: UUID) -> str:
    """A scheduled notification whose moment came: queued for delivery, or dropped if its
    run has ended."""
    async with db.transaction(tenant_id) as tx:
        found = await repository.lock_with_run(tx.session, notification_id)
        if found is None:
            return "missing"
        row, run_status = found
        now = clock.now()
        if row.status != "scheduled":
            return "stale"
        if row.deliver_at is not None and row.deliver_at > now:
            return "not_due"
        if run_status in ENDED:
            row.status, row.last_error = "dropped", f"the run was {run_status} before it was due"
            await repository.update_state(tx.session, row, now=now)
            return "dropped"
        row.status = "pending"
        await repository.update_state(tx.session, row, now=now)
        await jobs.defer(tx.session, delivery_job(row))
    return "released"
