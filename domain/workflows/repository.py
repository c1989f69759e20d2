"""Every query for workflows and their versions."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.shared.db import tx_of
from domain.shared.models import from_row
from domain.users.models import User
from domain.workflows.listing import SUMMARY_COLUMNS, WorkflowFilter, WorkflowOrder, WorkflowSummary
from domain.workflows.models import Workflow, WorkflowVersion

_SET_ACTOR = text("SELECT set_config('app.user_id', :user, true), "
                  "set_config('app.change_description', :description, true)")
W = Workflow
_DIALECT = asyncpg_dialect.dialect()


async def set_actor(session: AsyncSession, user_id: UUID | None, description: str | None) -> None:
    """Who is writing and why, for the versioning trigger (transaction-local)."""
    await session.execute(_SET_ACTOR, {"user": str(user_id) if user_id else "",
                                       "description": description or ""})


async def add(session: AsyncSession, values: dict[str, Any]) -> Workflow:
    statement = insert(Workflow).values(**values).returning(Workflow)
    row: Workflow = (await session.scalars(
        statement, execution_options={"populate_existing": True})).one()
    return row


async def change(session: AsyncSession, workflow_id: UUID, values: dict[str, Any]
                 ) -> Workflow | None:
    """UPDATE one row and return it as stored (trigger-maintained columns included)."""
    statement = (update(Workflow).where(W.id == workflow_id).values(**values)  # type: ignore[arg-type]
                 .returning(Workflow))
    result = await session.scalars(statement, execution_options={
        "populate_existing": True, "synchronize_session": False})
    return result.one_or_none()


async def get(session: AsyncSession, workflow_id: UUID) -> Workflow | None:
    # RLS limits this to the caller's rows and core rows.
    rows = await session.scalars(select(Workflow).where(W.id == workflow_id)  # type: ignore[arg-type]
                                 .execution_options(populate_existing=True))
    return rows.one_or_none()


_WORKFLOW_MANY = ("SELECT " + ", ".join(Workflow.model_fields) +
               " FROM workflows WHERE id = ANY($1::uuid[])")


async def get_many(session: AsyncSession, ids: Sequence[UUID]) -> list[Workflow]:
    """By id, for the loaders (reads only: rows on the driver, models without the ORM)."""
    rows = await tx_of(session).fetch(_WORKFLOW_MANY, list(ids))
    return [from_row(Workflow, row) for row in rows]


async def by_key(session: AsyncSession, key: str) -> Workflow | None:
    """The tenant's own live workflow with `key`, else the core one (shadowing)."""
    statement = (select(Workflow)
                 .where(W.key == key, W.deleted_at.is_(None))  # type: ignore[union-attr,arg-type]
                 .order_by(W.tenant_id.is_(None)).limit(1)  # type: ignore[union-attr]
                 .execution_options(populate_existing=True))
    return (await session.scalars(statement)).first()


_WORKFLOW_COLUMNS = tuple(Workflow.model_fields)
_USER_COLUMNS = tuple(User.model_fields)
# `workflow(key:)`: the tenant's workflow, else the core one, with its author, in one round.
_BY_KEY_WITH_CREATOR = (
    "SELECT " + ", ".join(f"w.{c}" for c in _WORKFLOW_COLUMNS) + ", "
    + ", ".join(f"u.{c} AS author_{c}" for c in _USER_COLUMNS)
    + " FROM workflows w LEFT JOIN users u ON u.tenant_id = w.tenant_id AND u.id = w.created_by"
    " WHERE w.key = $1 AND w.deleted_at IS NULL ORDER BY w.tenant_id IS NULL LIMIT 1")


async def by_key_with_creator(session: AsyncSession, key: str
                              ) -> tuple[Workflow, User | None] | None:
    """`by_key` and its author in one query (the author is a user of the same tenant), on
    the driver: the builder opens a workflow by key on every screen."""
    row = await tx_of(session).fetchrow(_BY_KEY_WITH_CREATOR, key)
    if row is None:
        return None
    workflow = from_row(Workflow, {c: row[c] for c in _WORKFLOW_COLUMNS})
    if row["author_id"] is None:
        return workflow, None
    return workflow, from_row(User, {c: row[f"author_{c}"] for c in _USER_COLUMNS})


async def own_by_key(session: AsyncSession, tenant_id: UUID, key: str) -> Workflow | None:
    statement = select(Workflow).where(W.tenant_id == tenant_id, W.key == key)  # type: ignore[arg-type]
    return (await session.scalars(statement)).first()


def _shape(spec: WorkflowFilter, order: WorkflowOrder, paged: bool) -> tuple[Any, ...]:
    return (bool(spec.search), bool(spec.tags), spec.is_core, spec.is_template is not None,
            spec.include_deleted, order, paged)


@lru_cache(maxsize=256)
def _list_statement(search: bool, tags: bool, is_core: bool | None, template: bool,
                    include_deleted: bool, order: WorkflowOrder, paged: bool) -> Any:
    """The list query for one filter shape, built once; values arrive as bind parameters.

    One CTE holds the visible rows' listed columns and sort key: counted for totalCount and
    ordered for the page, with no join back to the table (half the database's time of a
    narrow CTE joined back by id). `config` is left out: lists rarely show it, it is the
    bulk of a row, and a resolver loads it by id when asked.
    """
    conditions: list[Any] = []
    if not include_deleted:
        conditions.append(W.deleted_at.is_(None))  # type: ignore[union-attr]
    if search:
        pattern = bindparam("search", type_=Text)
        conditions.append(or_(W.name.ilike(pattern), W.description.ilike(pattern)))  # type: ignore[attr-defined]
    if tags:
        conditions.append(W.tags.contains(bindparam("tags", type_=ARRAY(Text))))  # type: ignore[attr-defined]
    if is_core is not None:
        conditions.append(W.tenant_id.is_(None) if is_core  # type: ignore[union-attr]
                          else W.tenant_id.is_not(None))  # type: ignore[union-attr]
    if template:
        conditions.append(W.is_template == bindparam("is_template", type_=Boolean))  # type: ignore[arg-type]
    # A core workflow is hidden where the tenant has its own live workflow with the same key.
    own = aliased(Workflow)
    shadowed = exists().where(own.key == W.key, own.tenant_id.is_not(None),  # type: ignore[union-attr,arg-type]
                              own.deleted_at.is_(None))  # type: ignore[union-attr]
    conditions.append(or_(W.tenant_id.is_not(None), ~shadowed))  # type: ignore[union-attr]
    # Every column in the CTE: the scan's rows are kept as they are, without a projection
    # (config is a TOAST pointer there, never read); the page picks the listed ones.
    visible = select(W).where(and_(*conditions)).cte("visible")
    total = select(func.count()).select_from(visible).scalar_subquery()
    statement = select(*(visible.c[name] for name in SUMMARY_COLUMNS), total.label("total"))
    sort = visible.c[order.column]
    if paged:
        position = tuple_(sort, visible.c.id)
        bound = tuple_(bindparam("after_value", type_=sort.type),
                       bindparam("after_id", type_=W.id.type))  # type: ignore[attr-defined]
        statement = statement.where(position < bound if order.descending else position > bound)
    ordering = ((sort.desc(), visible.c.id.desc()) if order.descending
                else (sort.asc(), visible.c.id.asc()))
    return statement.order_by(*ordering).limit(bindparam("limit", type_=Integer))


@lru_cache(maxsize=256)
def _list_sql(shape: tuple[Any, ...], dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """The shape's statement compiled once for the driver, with its parameter order."""
    compiled = _list_statement(*shape).compile(dialect=dialect)
    return compiled.string, tuple(compiled.positiontup or ())


async def _run_list(session: AsyncSession, shape: tuple[Any, ...], params: dict[str, Any]
                    ) -> list[Any]:
    # Straight to the driver: this runs on every list request, and the statement is fixed per
    # shape, so SQLAlchemy's per-execution work (cache key, result processing) buys nothing.
    sql, names = _list_sql(shape, _DIALECT)
    return await tx_of(session).fetch(sql, *(params[name] for name in names))


async def list_page(session: AsyncSession, spec: WorkflowFilter, order: WorkflowOrder, *,
                    limit: int, after: tuple[Any, UUID] | None
                    ) -> tuple[list[WorkflowSummary], int]:
    """Up to `limit` rows after the keyset position, and the filter's total, in one query."""
    params: dict[str, Any] = {"limit": limit}
    if spec.search:
        params["search"] = "%" + spec.search.replace("\\", "\\\\").replace(
            "%", "\\%").replace("_", "\\_") + "%"
    if spec.tags:
        params["tags"] = list(spec.tags)
    if spec.is_template is not None:
        params["is_template"] = spec.is_template
    if after is not None:
        params["after_value"], params["after_id"] = after
    rows = await _run_list(session, _shape(spec, order, after is not None), params)
    if rows:
        return [WorkflowSummary(*row[:-1]) for row in rows], int(rows[0][-1])
    # An empty page still reports the total: the same filter without the cursor, one row.
    count_only = {**params, "limit": 1}
    counted = await _run_list(session, _shape(spec, order, False), count_only)
    return [], int(counted[0][-1]) if counted else 0


def loaded_config(row: Workflow | WorkflowSummary) -> dict[str, Any] | None:
    """The row's config if it was loaded (list summaries have none), else None."""
    return row.__dict__.get("config") if isinstance(row, Workflow) else None


async def configs(session: AsyncSession, ids: Sequence[UUID]) -> list[tuple[UUID, Any]]:
    statement = select(W.id, W.config).where(W.id == any_(list(ids)))  # type: ignore[arg-type,call-overload]
    rows: Sequence[Any] = (await session.execute(statement)).all()
    return [(i, c) for i, c in rows]


async def usage_counts(session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, int]:
    """How many visible workflows were cloned from each of `ids`."""
    statement = (select(W.cloned_from, func.count()).where(W.cloned_from.in_(ids))  # type: ignore[union-attr,call-overload]
                 .group_by(W.cloned_from))
    rows: Sequence[Any] = (await session.execute(statement)).all()
    return {source: count for source, count in rows}


async def upsert_core(session: AsyncSession, values: dict[str, Any]) -> str:
    """Insert or refresh one core workflow; 'created', 'updated' or 'unchanged'."""
    statement = insert(Workflow).values(**values, tenant_id=None, is_core=True)
    changing = ("name", "description", "version", "tags", "config", "is_template")
    excluded = statement.excluded
    current = tuple_(*(getattr(Workflow, c) for c in changing), W.deleted_at)
    incoming = tuple_(*(excluded[c] for c in changing), literal(None, W.deleted_at.type))  # type: ignore[union-attr]
    statement = statement.on_conflict_do_update(  # type: ignore[call-overload]
        constraint="uq_workflows_tenant_key",
        set_={**{c: excluded[c] for c in changing}, "deleted_at": None},
        where=current.is_distinct_from(incoming),
    ).returning(W.latest_version, (text("xmax = 0")))
    result = (await session.execute(statement)).first()
    if result is None:
        return "unchanged"
    return "created" if result[1] else "updated"


# Versions


async def versions_pages(session: AsyncSession, workflow_ids: Sequence[UUID], *, limit: int,
                         before: int | None
                         ) -> dict[UUID, tuple[list[WorkflowVersion], int]]:
    """For each workflow: newest first, `limit` versions below `before`, and its version count.

    One query for any number of workflows (window functions), so a list asking for each
    workflow's history costs the same as one workflow.
    """
    V = WorkflowVersion
    counted = (select(V, func.count().over(partition_by=V.workflow_id)  # type: ignore[arg-type]
                      .label("total"))
               .where(V.workflow_id == any_(list(workflow_ids))).subquery())  # type: ignore[arg-type]
    ranked_from = select(counted, func.row_number().over(
        partition_by=counted.c.workflow_id, order_by=counted.c.number.desc()).label("rank"))
    if before is not None:
        ranked_from = ranked_from.where(counted.c.number < before)
    ranked = ranked_from.subquery()
    version = aliased(V, ranked)
    statement = (select(version, ranked.c.total).where(ranked.c.rank <= limit)
                 .order_by(ranked.c.workflow_id, ranked.c.number.desc()))
    pages: dict[UUID, tuple[list[WorkflowVersion], int]] = {}
    rows: Sequence[Any] = (await session.execute(statement)).all()
    for row, total in rows:
        items, _ = pages.get(row.workflow_id, ([], 0))
        items.append(row)
        pages[row.workflow_id] = (items, int(total))
    missing = [i for i in workflow_ids if i not in pages]
    if missing:  # no version below the cursor: the counts still come from one query
        totals = select(V.workflow_id, func.count()).where(  # type: ignore[call-overload]
            V.workflow_id == any_(missing)).group_by(V.workflow_id)  # type: ignore[arg-type]
        found = dict((await session.execute(totals)).all())
        for workflow_id in missing:
            pages[workflow_id] = ([], int(found.get(workflow_id, 0)))
    return pages


async def version(session: AsyncSession, workflow_id: UUID, number: int
                  ) -> WorkflowVersion | None:
    V = WorkflowVersion
    statement = select(V).where(V.workflow_id == workflow_id, V.number == number)  # type: ignore[arg-type]
    return (await session.scalars(statement)).one_or_none()


async def versions_many(session: AsyncSession, keys: Sequence[tuple[UUID, int]]
                        ) -> list[WorkflowVersion]:
    V = WorkflowVersion
    statement = select(V).where(tuple_(V.workflow_id, V.number).in_(list(keys)))
    return list(await session.scalars(statement))


async def tag_version(session: AsyncSession, workflow_id: UUID, number: int, tag: str
                      ) -> WorkflowVersion | None:
    """Put `tag` on one version and take it off the workflow's others (a tag names one version)."""
    V = WorkflowVersion
    await session.execute(
        update(V).where(V.workflow_id == workflow_id, V.number != number,  # type: ignore[arg-type]
                        V.tags.contains([tag]))  # type: ignore[attr-defined]
        .values(tags=func.array_remove(V.tags, tag)),
        execution_options={"synchronize_session": False})
    statement = (update(V).where(V.workflow_id == workflow_id, V.number == number)  # type: ignore[arg-type]
                 .values(tags=func.array_append(func.array_remove(V.tags, tag), tag))
                 .returning(V))
    result = await session.scalars(statement, execution_options={
        "populate_existing": True, "synchronize_session": False})
    return result.one_or_none()



async def keys_using_action(session: AsyncSession, action_id: str) -> list[str]:
    """Keys of the tenant's workflows (deleted ones too) with a branch calling `action_id`."""
    uses = func.jsonb_path_exists(
        W.config, text("'$.steps[*].chatBranches[*] ? (@.savedAction == $action)'::jsonpath"),
        func.jsonb_build_object("action", action_id))
    statement = (select(W.key).where(W.tenant_id.is_not(None), uses)  # type: ignore[union-attr,call-overload]
                 .order_by(W.key))
    return list(await session.scalars(statement))
