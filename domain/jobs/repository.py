"""Deferring jobs inside the current tenant transaction (they commit with the change)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from domain.jobs.models import QUEUE, Job
from domain.shared.db import tx_of

# Queues the jobs of a JSON array (`payload`); a statement of another concept may call it
# too, to defer its jobs in the same round trip as its writes.
DEFER_CALL = "stepwise_defer_jobs({}::jsonb)"
_DEFER_MANY = "SELECT " + DEFER_CALL.format("$1")


def payload(jobs: Sequence[Job]) -> str:
    """The jobs as the JSON array DEFER_CALL takes."""
    return json.dumps([{"task": job.task, "args": job.payload(), "queue": QUEUE,
                        "scheduled_at": job.scheduled_at.isoformat() if job.scheduled_at
                        else None, "queueing_lock": job.queueing_lock,
                        "priority": job.priority} for job in jobs],
                      separators=(",", ":"), default=str)


async def defer_many(session: AsyncSession, jobs: Sequence[Job]) -> int:
    """Queue the jobs in one round trip; a job whose queueing lock is already queued is
    skipped (one queued nudge per key is enough). Returns how many were queued."""
    if not jobs:
        return 0
    queued: int = await tx_of(session).fetchval(_DEFER_MANY, payload(jobs))
    return queued
