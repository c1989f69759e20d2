"""Running checked SQL: READ ONLY, as the query role, with the tenant set and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from domain.queries.errors import QueryFailed
from domain.shared.db import Database
from domain.shared.settings import QUERY_ROLE


@dataclass(frozen=True)
class Rows:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool


def _reason(error: asyncpg.PostgresError) -> str:
    if isinstance(error, asyncpg.QueryCanceledError):
        return "the query ran out of time"
    if isinstance(error, asyncpg.LockNotAvailableError):
        return "the query waited too long for a lock"
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        return "the query reads something it may not"
    state = getattr(error, "sqlstate", "") or ""
    # Syntax, unknown column and data errors are about the query's own text: say which.
    if state.startswith(("42", "22")):
        return f"the database refused the query: {str(error)[:200]}"
    return "the database could not run the query"


async def run_read_only(db: Database, tenant_id: UUID, sql: str, *, row_limit: int,
                        statement_timeout_ms: int, lock_timeout_ms: int) -> Rows:
    """At most `row_limit` rows of `sql`, read by the query role for `tenant_id`; always
    rolled back. QueryFailed if the database refuses it or the tenant setting moved."""
    tx = await db.begin(tenant_id, read_only=True)
    try:
        await tx.execute(
            f"SET LOCAL ROLE {QUERY_ROLE}; "
            f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")

        async def fetch() -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
            statement = await tx.driver.prepare(sql)  # extended protocol: one statement only
            columns = tuple(a.name for a in statement.get_attributes())
            cursor = await statement.cursor()
            return columns, [tuple(r) for r in await cursor.fetch(row_limit + 1)]

        try:
            columns, rows = await tx.serialised(fetch)
            setting = await tx.fetchval("SELECT current_setting('app.tenant_id', true)")
        except asyncpg.PostgresError as error:
            raise QueryFailed(_reason(error)) from error
        if setting != str(tenant_id):  # the parser is the first line; never trust it alone
            raise QueryFailed("the query changed its tenant setting")
    finally:
        await tx.rollback()
    return Rows(columns=columns, rows=rows[:row_limit], truncated=len(rows) > row_limit)
