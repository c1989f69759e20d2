"""Version history: list, get, diff, rollback (a new version equal to an old one), tags."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.actor import Actor, Role
from domain.shared.errors import NotFound
from domain.shared.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.workflows import repository
from domain.workflows import service as workflows
from domain.workflows.diff import ConfigDiff, diff_configs
from domain.workflows.models import Workflow, WorkflowVersion


def history_position(first: int | None, after: str | None) -> tuple[int, int | None]:
    """(page size, the version number the page starts below) from Relay arguments."""
    size = page_size(first)
    position = decode_cursor(after, kinds=("int",))
    return size, position[0] if position else None


async def histories(session: AsyncSession, workflow_ids: list[UUID], *, size: int,
                    before: int | None) -> dict[UUID, Page[WorkflowVersion]]:
    """Each workflow's versions, newest first, one page each, in one query."""
    found = await repository.versions_pages(session, workflow_ids, limit=size + 1,
                                            before=before)
    pages = {}
    for workflow_id, (rows, total) in found.items():
        items = rows[:size]
        pages[workflow_id] = Page(items=items, cursors=[encode_cursor([v.number]) for v in items],
                                  has_next=len(rows) > size, total=total,
                                  has_previous=before is not None)
    return pages


async def get_version(session: AsyncSession, workflow_id: UUID, number: int
                      ) -> WorkflowVersion | None:
    return await repository.version(session, workflow_id, number)


async def versions_many(session: AsyncSession, keys: list[tuple[UUID, int]]
                        ) -> list[WorkflowVersion]:
    return await repository.versions_many(session, keys)


async def compare(session: AsyncSession, workflow_id: UUID, from_version: int, to_version: int
                  ) -> ConfigDiff | None:
    """None when the workflow or either version is not visible."""
    old = await repository.version(session, workflow_id, from_version)
    new = await repository.version(session, workflow_id, to_version)
    if old is None or new is None:
        return None
    return diff_configs(old.config, new.config)


async def rollback(session: AsyncSession, actor: Actor, workflow_id: UUID, to_version: int
                   ) -> Workflow:
    """A new version whose config equals `to_version` (a no-op when it already does)."""
    actor.require(Role.EDITOR)
    row = await workflows.writable(session, workflow_id, path="id")
    target = await repository.version(session, workflow_id, to_version)
    if target is None:
        raise NotFound(f"version {to_version} does not exist", path="toVersion")
    bound = await workflows.checked_config(session, target.config, key=row.key)
    await repository.set_actor(session, actor.user_id, f"Rolled back to version {to_version}")
    changed = await repository.change(session, row.id, {"config": bound,
                                                        "version": bound["version"]})
    assert changed is not None
    return changed


async def tag(session: AsyncSession, actor: Actor, workflow_id: UUID, number: int, name: str
              ) -> WorkflowVersion:
    """Put a tag ("production", "v1.2.0") on a version; it leaves any other version."""
    actor.require(Role.EDITOR)
    await workflows.writable(session, workflow_id, path="id", allow_deleted=True)
    name = name.strip()
    workflows.clean_tags([name], path="tag", workflow=False)
    tagged = await repository.tag_version(session, workflow_id, number, name)
    if tagged is None:
        raise NotFound(f"version {number} does not exist", path="number")
    return tagged
