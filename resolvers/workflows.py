"""Resolvers for workflows and versions: thin calls into the domain, loaders for lists."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from strawberry.dataloader import DataLoader

from domain.shared.errors import Problem
from domain.shared.ids import parse_id
from domain.shared.pagination import Page
from domain.users.models import User
from domain.workflows import branches, transfer, versions
from domain.workflows import service as workflows
from domain.workflows.config_schema import CONFIG_SCHEMA
from domain.workflows.diff import ConfigDiff
from domain.workflows.listing import WorkflowFilter, WorkflowOrder, WorkflowSummary
from domain.workflows.models import Workflow, WorkflowVersion
from resolvers.users import user_by_id
from schema.context import Info
from schema.loaders import by_key


def _workflow_id(value: str | None, *, path: str) -> UUID:
    return parse_id(value, path=path, message="no such workflow")


def _maybe_id(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


async def page(info: Info, *, first: int | None, after: str | None, spec: WorkflowFilter,
               order: WorkflowOrder) -> Page[WorkflowSummary]:
    return await workflows.list_workflows(info.context.session, spec, order, first=first,
                                          after=after)


async def one(info: Info, *, workflow_id: str | None, key: str | None) -> Workflow | None:
    if workflow_id is not None:
        parsed = _maybe_id(workflow_id)
        if parsed is None:
            return None
        loaded: Workflow | None = await info.context.loaders.get(
            "workflow", lambda c: by_key(c, _get_many)).load(parsed)
        return loaded
    if key is not None:
        found = await workflows.resolve_key_with_creator(info.context.session, key)
        if found is None:
            return None
        row, author = found
        if author is not None:
            # The author came with the row: later `createdBy` loads cost no query.
            info.context.loaders.user.prime(author.id, author)
        return row
    return None


async def _get_many(session: Any, ids: Any) -> list[Workflow]:
    return await workflows.get_many(session, list(ids))


async def config(info: Info, row: Workflow | WorkflowSummary) -> dict[str, Any]:
    """The config, batched by id for rows loaded without it (lists)."""
    loaded = workflows.loaded_config(row)
    if loaded is not None:
        return loaded

    async def fetch(keys: list[UUID]) -> list[Any]:
        found = await workflows.configs(info.context.session, keys)
        return [found.get(k) for k in keys]

    loader = info.context.loaders.get("workflow_config", lambda c: DataLoader(load_fn=fetch))
    value: dict[str, Any] = await loader.load(row.id)
    return value


def export_document(row: Workflow | WorkflowSummary, config_: dict[str, Any]) -> dict[str, Any]:
    return transfer.export_document(row, config_)


async def creator(info: Info, row: Workflow | WorkflowSummary) -> User | None:
    return await user_by_id(info, row.created_by)


async def changed_by(info: Info, version: WorkflowVersion) -> User | None:
    return await user_by_id(info, version.changed_by)


async def _versions_many(session: Any, keys: Any) -> list[WorkflowVersion]:
    return await versions.versions_many(session, list(keys))


async def version(info: Info, workflow_id: UUID, number: int) -> WorkflowVersion | None:
    """One version, batched with every other version this request asks for."""
    loader = info.context.loaders.get("workflow_version", lambda c: by_key(
        c, _versions_many, key=lambda v: (v.workflow_id, v.number)))
    found: WorkflowVersion | None = await loader.load((workflow_id, number))
    return found


async def usage_count(info: Info, workflow_id: UUID) -> int:
    async def fetch(keys: list[UUID]) -> list[int]:
        counts = await workflows.usage_counts(info.context.session, keys)
        return [counts.get(k, 0) for k in keys]

    loader = info.context.loaders.get("workflow_usage", lambda c: DataLoader(load_fn=fetch))
    count: int = await loader.load(workflow_id)
    return count


async def history(info: Info, workflow_id: UUID, *, first: int | None, after: str | None
                  ) -> Page[WorkflowVersion]:
    """One page of versions, batched with every other workflow's page in this request."""
    size, before = versions.history_position(first, after)

    async def fetch(keys: list[UUID]) -> list[Page[WorkflowVersion]]:
        pages = await versions.histories(info.context.session, keys, size=size, before=before)
        return [pages[k] for k in keys]

    loader = info.context.loaders.get(f"workflow_history:{size}:{before}",
                                      lambda c: DataLoader(load_fn=fetch))
    page: Page[WorkflowVersion] = await loader.load(workflow_id)
    return page


async def diff(info: Info, workflow_id: str, from_version: int, to_version: int
               ) -> ConfigDiff | None:
    parsed = _maybe_id(workflow_id)
    if parsed is None:
        return None
    return await versions.compare(info.context.session, parsed, from_version, to_version)


def config_schema() -> dict[str, Any]:
    return CONFIG_SCHEMA


async def validate_config(info: Info, config: Any) -> list[Problem]:
    return await workflows.config_problems(info.context.session, config)


async def chat_branches(info: Info, key: str, step_id: str) -> list[dict[str, Any]] | None:
    return await branches.for_step(info.context.session, key, step_id)


# Mutations (called inside schema.errors.attempt, so DomainErrors become payload errors)


async def create(info: Info, data: dict[str, Any]) -> Workflow:
    me = info.context.actor
    return await workflows.create_workflow(info.context.session, me, **data)


async def change(info: Info, workflow_id: str, data: dict[str, Any]) -> Workflow:
    me = info.context.actor
    return await workflows.update_workflow(info.context.session, me,
                                           _workflow_id(workflow_id, path="input.id"), **data)


async def rollback(info: Info, workflow_id: str, to_version: int) -> Workflow:
    me = info.context.actor
    return await versions.rollback(info.context.session, me, _workflow_id(workflow_id, path="id"),
                                   to_version)


async def tag(info: Info, workflow_id: str, number: int, name: str) -> WorkflowVersion:
    me = info.context.actor
    workflow = _workflow_id(workflow_id, path="id")
    return await versions.tag(info.context.session, me, workflow, number, name)


async def clone(info: Info, source_id: str, key: str, name: str | None) -> Workflow:
    me = info.context.actor
    return await transfer.clone(info.context.session, me,
                                _workflow_id(source_id, path="input.sourceId"), key=key, name=name)


async def remove(info: Info, workflow_id: str) -> Workflow:
    me = info.context.actor
    workflow = _workflow_id(workflow_id, path="id")
    return await workflows.soft_delete(info.context.session, me, workflow)


async def restore(info: Info, workflow_id: str) -> Workflow:
    me = info.context.actor
    return await workflows.restore(info.context.session, me, _workflow_id(workflow_id, path="id"))


async def import_document(info: Info, document: Any, key: str | None) -> Workflow:
    me = info.context.actor
    return await transfer.import_document(info.context.session, me, document, key=key)


async def upsert_branch(info: Info, workflow_id: str, from_step_id: str,
                        branch: dict[str, Any]) -> Workflow:
    me = info.context.actor
    return await branches.upsert(info.context.session, me,
                                 _workflow_id(workflow_id, path="input.workflowId"), from_step_id,
                                 branch)


async def remove_branch(info: Info, workflow_id: str, from_step_id: str, branch_id: str
                        ) -> Workflow:
    me = info.context.actor
    return await branches.remove(info.context.session, me,
                                 _workflow_id(workflow_id, path="workflowId"), from_step_id,
                                 branch_id)
