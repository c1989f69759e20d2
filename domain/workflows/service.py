"""Workflow rules: resolution by key (tenant shadows core), listing, create, update, delete."""

from __future__ import annotations

import asyncio
import copy
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.saved_actions import service as saved_actions
from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError, Problem, ValidationFailed
from domain.shared.limits import MAX_DESCRIPTION, MAX_NAME, json_problem
from domain.shared.models import utcnow
from domain.shared.pagination import (
    CursorKind,
    Page,
    cursor_value,
    decode_cursor,
    encode_cursor,
    page_size,
)
from domain.users.models import User
from domain.workflows import repository
from domain.workflows.errors import CoreReadOnly, KeyTaken, WorkflowDeleted, WorkflowNotFound
from domain.workflows.listing import WorkflowFilter, WorkflowOrder, WorkflowSummary
from domain.workflows.models import Workflow
from domain.workflows.validation import validate

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,49}$")
MAX_TAGS = 20
CORE_TAG = "core"


def tenant_tags(tags: list[str]) -> list[str]:
    """A core workflow's tags as a tenant copy (clone, import of an export) may carry them."""
    return [tag for tag in tags if tag != CORE_TAG]


async def get(session: AsyncSession, workflow_id: UUID) -> Workflow | None:
    """Exactly that row if the tenant may see it (own or core), deleted ones included."""
    return await repository.get(session, workflow_id)


async def resolve_key(session: AsyncSession, key: str) -> Workflow | None:
    """The tenant's own live workflow with `key`, else the core one."""
    return await repository.by_key(session, key)


async def resolve_key_with_creator(session: AsyncSession, key: str
                                   ) -> tuple[Workflow, User | None] | None:
    """`resolve_key` and the workflow's author, in one query."""
    return await repository.by_key_with_creator(session, key)


async def list_workflows(session: AsyncSession, spec: WorkflowFilter, order: WorkflowOrder, *,
                         first: int | None, after: str | None) -> Page[WorkflowSummary]:
    """One page in `order`, keyset-paginated so concurrent inserts never duplicate rows."""
    size = page_size(first)
    position = decode_cursor(after, kinds=("text", "text", "uuid"))
    keyset: tuple[Any, UUID] | None = None
    if position is not None:
        if position[0] != order.value:
            raise DomainError("this cursor belongs to another ordering", path="after",
                              code="INVALID_CURSOR")
        kind: CursorKind = "text" if order.column == "name" else "datetime"
        keyset = (cursor_value(kind, position[1]), position[2])
    rows, total = await repository.list_page(session, spec, order, limit=size + 1, after=keyset)
    items = rows[:size]
    column = order.column
    cursors = [encode_cursor([order.value, _sort_value(row, column), str(row.id)])
               for row in items]
    return Page(items=items, cursors=cursors, has_next=len(rows) > size, total=total,
                has_previous=after is not None)


def _sort_value(row: WorkflowSummary, column: str) -> str:
    value = getattr(row, column)
    return value.isoformat() if isinstance(value, datetime) else str(value)


async def config_problems(session: AsyncSession, config: Any) -> list[Problem]:
    """Every problem with `config` for the current tenant (its saved actions included).

    The validator is pure CPU (up to ~0.2 s for the largest config allowed): it runs in a
    worker thread so one tenant's validation never holds the event loop.
    """
    known = await saved_actions.known_ids(session)
    return await asyncio.to_thread(validate, config, known_actions=known)


async def checked_config(session: AsyncSession, config: Any, *, key: str) -> dict[str, Any]:
    """A copy of `config` bound to `key`, or ValidationFailed with every problem."""
    if not isinstance(config, dict):
        raise ValidationFailed([Problem("INVALID_TYPE", "a workflow config is a JSON object",
                                        "$")])
    shape = json_problem(config, path="$")  # before deepcopy, which recurses
    if shape is not None:
        raise ValidationFailed([shape])
    bound = copy.deepcopy(config)
    bound["id"] = key  # the config's id is always its workflow's key (clones get new keys)
    problems = await config_problems(session, bound)
    if problems:
        raise ValidationFailed(problems)
    return bound


def clean_tags(tags: list[str] | None, *, path: str, workflow: bool = True) -> list[str]:
    """The tags, deduplicated; `core` marks the shared core workflows, never a tenant's."""
    if not tags:
        return []
    problems = [Problem("INVALID_TAG", f"tag {tag[:60]!r}: 1-50 letters, digits or . _ : / -",
                        f"{path}[{i}]") for i, tag in enumerate(tags) if not TAG.match(tag)]
    if workflow:
        problems += [Problem("RESERVED_TAG", f"'{CORE_TAG}' marks the core workflows",
                             f"{path}[{i}]") for i, tag in enumerate(tags) if tag == CORE_TAG]
    if len(tags) > MAX_TAGS:
        problems.append(Problem("TOO_MANY_TAGS", f"at most {MAX_TAGS} tags", path))
    if problems:
        raise ValidationFailed(problems)
    return list(dict.fromkeys(tags))


def _text(value: str | None, *, path: str, limit: int = MAX_DESCRIPTION) -> str:
    cleaned = (value or "").strip()
    if len(cleaned) > limit:
        raise DomainError(f"at most {limit} characters", path=path, code="TOO_LONG")
    return cleaned


def _check_name(name: str, *, path: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME:
        raise DomainError(f"a workflow needs a name of 1-{MAX_NAME} characters", path=path,
                          code="REQUIRED" if not cleaned else "TOO_LONG")
    return cleaned


async def create_workflow(session: AsyncSession, actor: Actor, *, key: str, name: str,
                          description: str | None, config: Any, tags: list[str] | None = None,
                          is_template: bool = False, cloned_from: UUID | None = None,
                          change_description: str = "Created", path: str = "input"
                          ) -> Workflow:
    """A tenant workflow and its version 1, or nothing when anything is wrong."""
    actor.require(Role.EDITOR)
    if not KEY.match(key):
        raise DomainError("keys are 1-64 lowercase letters, digits, - or _, starting with a "
                          "letter or digit", path=f"{path}.key", code="INVALID_KEY")
    name = _check_name(name, path=f"{path}.name")
    tags = clean_tags(tags, path=f"{path}.tags")
    bound = await checked_config(session, config, key=key)
    taken = await repository.own_by_key(session, actor.tenant_id, key)
    if taken is not None:
        hint = " (deleted: restore it or pick another key)" if taken.deleted_at else ""
        raise KeyTaken(f"this tenant already has a workflow {key!r}{hint}", path=f"{path}.key")
    await repository.set_actor(session, actor.user_id, change_description)
    return await repository.add(session, {
        "tenant_id": actor.tenant_id, "key": key, "name": name,
        "description": _text(description, path=f"{path}.description"),
        "version": bound["version"], "tags": tags,
        "config": bound, "is_core": False, "is_template": is_template,
        "created_by": actor.user_id, "cloned_from": cloned_from,
    })


async def writable(session: AsyncSession, workflow_id: UUID, *, path: str,
                   allow_deleted: bool = False) -> Workflow:
    """The tenant's own workflow; core rows are refused, other tenants' look missing."""
    row = await repository.get(session, workflow_id)
    if row is None:
        raise WorkflowNotFound("no such workflow", path=path)
    if row.tenant_id is None:
        raise CoreReadOnly(f"'{row.key}' is a core workflow: clone it to change it", path=path)
    if row.deleted_at is not None and not allow_deleted:
        raise WorkflowDeleted("this workflow is deleted: restore it first", path=path)
    return row


async def update_workflow(session: AsyncSession, actor: Actor, workflow_id: UUID, *,
                          name: str | None = None, description: str | None = None,
                          config: Any = None, tags: list[str] | None = None,
                          is_template: bool | None = None, change_description: str | None = None,
                          ) -> Workflow:
    """Apply the given fields; only a config that really changes makes a version (trigger)."""
    actor.require(Role.EDITOR)
    row = await writable(session, workflow_id, path="input.id")
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = _check_name(name, path="input.name")
    if description is not None:
        values["description"] = _text(description, path="input.description")
    if tags is not None:
        values["tags"] = clean_tags(tags, path="input.tags")
    if is_template is not None:
        values["is_template"] = is_template
    if config is not None:
        bound = await checked_config(session, config, key=row.key)
        values["config"] = bound
        values["version"] = bound["version"]
    if not values:
        return row
    why = _text(change_description, path="input.changeDescription", limit=500) or "Updated"
    await repository.set_actor(session, actor.user_id, why)
    changed = await repository.change(session, row.id, values)
    if changed is None:
        raise WorkflowNotFound("no such workflow", path="input.id")
    return changed


async def soft_delete(session: AsyncSession, actor: Actor, workflow_id: UUID) -> Workflow:
    actor.require(Role.EDITOR)
    row = await writable(session, workflow_id, path="id", allow_deleted=True)
    if row.deleted_at is not None:
        return row
    await repository.set_actor(session, actor.user_id, None)
    changed = await repository.change(session, row.id, {"deleted_at": utcnow()})
    assert changed is not None
    return changed


async def restore(session: AsyncSession, actor: Actor, workflow_id: UUID) -> Workflow:
    actor.require(Role.EDITOR)
    row = await writable(session, workflow_id, path="id", allow_deleted=True)
    if row.deleted_at is None:
        return row
    await repository.set_actor(session, actor.user_id, None)
    changed = await repository.change(session, row.id, {"deleted_at": None})
    assert changed is not None
    return changed


async def usage_counts(session: AsyncSession, ids: list[UUID]) -> dict[UUID, int]:
    return await repository.usage_counts(session, ids)


async def get_many(session: AsyncSession, ids: list[UUID]) -> list[Workflow]:
    return await repository.get_many(session, ids)


def loaded_config(row: Workflow | WorkflowSummary) -> dict[str, Any] | None:
    """The config if the row carries it (lists leave it out), else None."""
    return repository.loaded_config(row)


async def configs(session: AsyncSession, ids: list[UUID]) -> dict[UUID, Any]:
    return dict(await repository.configs(session, ids))


async def upsert_core(session: AsyncSession, *, config: dict[str, Any], tags: list[str],
                      source: str) -> str:
    """Owner path: insert or refresh one core workflow; a version only if its config changed."""
    await repository.set_actor(session, None, f"Seeded from {source}")
    return await repository.upsert_core(session, {
        "key": config["id"], "name": config["name"], "description": config["description"],
        "version": config["version"], "tags": tags, "config": config, "is_template": True,
    })
