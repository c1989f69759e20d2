"""Deferring jobs inside the current tenant transaction (they commit with the change)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from domain.jobs.models import QUEUE, Job
from domain.shared.db import tx_of

_DEFER_MANY = "SELECT stepwise_defer_jobs($1::jsonb)"


async def defer_many(session: AsyncSession, jobs: Sequence[Job]) -> int:
    """Queue the jobs in one round trip; a job whose queueing lock is already queued is
    skipped (one queued nudge per key is enough). Returns how many were queued."""
    if not jobs:
        return 0
    payload = [{"task": job.task, "args": job.payload(), "queue": QUEUE,
                "scheduled_at": job.scheduled_at.isoformat() if job.scheduled_at else None,
                "queueing_lock": job.queueing_lock, "priority": job.priority} for job in jobs]
    queued: int = await tx_of(session).fetchval(
        _DEFER_MANY, json.dumps(payload, separators=(",", ":"), default=str))
    return queued
