"""Every query for saved actions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.saved_actions.models import SavedAction

A = SavedAction


async def visible(session: AsyncSession) -> list[SavedAction]:
    """Core actions and the tenant's own (RLS), core first."""
    statement = select(A).order_by(A.tenant_id.is_not(None), A.action_id)  # type: ignore[union-attr]
    return list(await session.scalars(statement))


async def visible_ids(session: AsyncSession) -> set[str]:
    return set(await session.scalars(select(A.action_id)))  # type: ignore[call-overload]


async def by_action_id(session: AsyncSession, action_id: str) -> SavedAction | None:
    """The tenant's own action with this id, else the core one."""
    statement = (select(A).where(A.action_id == action_id)  # type: ignore[arg-type]
                 .order_by(A.tenant_id.is_(None)).limit(1))  # type: ignore[union-attr]
    return (await session.scalars(statement)).first()


async def own(session: AsyncSession, action_id: str) -> SavedAction | None:
    """The tenant's own action with this id (never a core one)."""
    statement = select(A).where(A.action_id == action_id, A.tenant_id.is_not(None))  # type: ignore[arg-type,union-attr]
    return (await session.scalars(statement)).first()


async def change(session: AsyncSession, action_id: UUID, values: dict[str, Any]) -> SavedAction:
    statement = (update(A).where(A.id == action_id).values(**values, updated_at=func.now())  # type: ignore[arg-type]
                 .returning(A))
    result = await session.scalars(statement, execution_options={
        "populate_existing": True, "synchronize_session": False})
    return result.one()


async def remove(session: AsyncSession, action: SavedAction) -> None:
    await session.delete(action)
    await session.flush()


async def add(session: AsyncSession, action: SavedAction) -> SavedAction:
    session.add(action)
    await session.flush()
    return action


async def upsert_core(session: AsyncSession, values: dict[str, Any]) -> str:
    """Insert or refresh one core action; 'created', 'updated' or 'unchanged'."""
    statement = insert(A).values(**values, tenant_id=None, is_core=True)
    changing = ("name", "type", "handler", "config", "available_globally")
    excluded = statement.excluded
    current = tuple_(*(getattr(A, c) for c in changing))
    incoming = tuple_(*(excluded[c] for c in changing))
    statement = statement.on_conflict_do_update(  # type: ignore[call-overload]
        constraint="uq_saved_actions_tenant_action",
        set_={**{c: excluded[c] for c in changing}, "updated_at": func.now()},
        where=current.is_distinct_from(incoming),
    ).returning(A.id, text("xmax = 0"))
    result = (await session.execute(statement)).first()
    if result is None:
        return "unchanged"
    return "created" if result[1] else "updated"
