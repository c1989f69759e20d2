"""Deferring a job inside the current tenant transaction (it commits with the change)."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from domain.jobs.models import QUEUE, Job
from domain.shared.db import tx_of

_DEFER = "SELECT stepwise_defer_job($1, $2::jsonb, $3, NULL, $4, $5, $6)"


async def defer(session: AsyncSession, job: Job) -> None:
    await tx_of(session).execute(_DEFER, job.task, json.dumps(job.payload()), job.scheduled_at,
                                 job.queueing_lock, job.priority, QUEUE)


async def defer_many(session: AsyncSession, jobs: list[Job]) -> None:
    for job in jobs:
        await defer(session, job)
