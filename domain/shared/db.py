"""Engines and the tenant transaction every request and job runs in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from domain.shared.settings import APP_ROLE

_SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant, true)")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # Behind PgBouncer in transaction mode prepared statements must be off; set
        # STEPWISE_APP_DATABASE_URL=...?prepared_statement_cache_size=0 there.
    )


class Database:
    """The app-role engine (RLS-bound) and, for operators, the owner engine."""

    def __init__(self, app_url: str, *, pool_size: int = 10) -> None:
        self.engine = make_engine(app_url, pool_size=pool_size)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    def new_session(self) -> AsyncSession:
        return self._sessions()

    async def user_exists(self, tenant_id: UUID, user_id: UUID) -> bool:
        """Whether the user still exists in the tenant (checked once per WebSocket)."""
        from domain.users import repository as users  # users build on this module

        session = self.new_session()
        try:
            await session.begin()
            return await users.enter_as(session, tenant_id, user_id) is not None
        finally:
            await session.rollback()
            await session.close()

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def owner_transaction(
    url: str, *, tenant_id: UUID | None = None
) -> AsyncIterator[AsyncSession]:
    """A transaction as the owner (the seed path): writes core rows, creates tenants.

    With `tenant_id`, the transaction acts for that tenant exactly as a request does (see
    `act_as_tenant`), so domain code run from the CLI is bound by the same policies.
    """
    engine = make_engine(url, pool_size=1)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            if tenant_id is not None:
                await act_as_tenant(session, tenant_id)
            yield session
    finally:
        await engine.dispose()


async def act_as_tenant(session: AsyncSession, tenant_id: UUID) -> None:
    """Drop to the app role for the rest of this transaction, with the tenant set.

    The owner (often a superuser) bypasses RLS; switching role keeps owner-path domain code
    from seeing or touching any other tenant's rows.
    """
    await session.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
    await session.execute(_SET_TENANT, {"tenant": str(tenant_id)})
