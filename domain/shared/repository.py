"""Queries about the database itself (readiness)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def migration_revision(connection: AsyncConnection) -> str | None:
    """The Alembic revision the database is at (readable by the app role)."""
    result = await connection.execute(text("SELECT version_num FROM alembic_version"))
    return result.scalar_one_or_none()
