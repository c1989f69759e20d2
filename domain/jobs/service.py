"""Jobs as part of a transaction: deferred with the state change, or not at all."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.jobs import repository
from domain.jobs.models import Job


async def defer(session: AsyncSession, *jobs: Job) -> int:
    """Queue `jobs` in the current transaction: they exist only if it commits."""
    return await repository.defer_many(session, list(jobs))
