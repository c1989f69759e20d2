"""Clone, export and import: a workflow as a portable JSON document."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.actor import Actor, Role
from domain.shared.errors import Problem, ValidationFailed
from domain.workflows import service as workflows
from domain.workflows.errors import WorkflowDeleted, WorkflowNotFound
from domain.workflows.listing import WorkflowSummary
from domain.workflows.models import Workflow

FORMAT = "stepwise.workflow"
FORMAT_VERSION = 1


async def clone(session: AsyncSession, actor: Actor, source_id: UUID, *, key: str,
                name: str | None) -> Workflow:
    """A new tenant workflow from a template, a core workflow or one of the tenant's own."""
    actor.require(Role.EDITOR)
    source = await workflows.get(session, source_id)
    if source is None:
        raise WorkflowNotFound("no such workflow", path="input.sourceId")
    if source.deleted_at is not None:
        raise WorkflowDeleted("a deleted workflow cannot be cloned", path="input.sourceId")
    return await workflows.create_workflow(
        session, actor, key=key, name=name or source.name, description=source.description,
        config=source.config, tags=workflows.tenant_tags(list(source.tags)),
        is_template=False, cloned_from=source.id,
        change_description=f"Cloned from {source.key} version {source.latest_version}",
    )


def export_document(row: Workflow | WorkflowSummary, config: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to recreate the workflow elsewhere; no ids, tenant or history."""
    return {
        "format": FORMAT, "formatVersion": FORMAT_VERSION, "key": row.key, "name": row.name,
        "description": row.description, "version": row.version, "tags": list(row.tags),
        "isTemplate": row.is_template, "config": config,
    }


def read_document(document: Any) -> list[Problem]:
    """Problems with a document's envelope (the config is checked by the validator)."""
    if not isinstance(document, dict):
        return [Problem("INVALID_TYPE", "an import is a JSON object", "document")]
    problems = []
    if document.get("format", FORMAT) != FORMAT:
        problems.append(Problem("UNKNOWN_FORMAT", f"format must be {FORMAT!r}", "document.format"))
    if document.get("formatVersion", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(Problem("UNKNOWN_FORMAT", f"formatVersion must be {FORMAT_VERSION}",
                                "document.formatVersion"))
    if not isinstance(document.get("config"), dict):
        problems.append(Problem("REQUIRED", "the document has no config object",
                                "document.config"))
    for name, kind in (("key", str), ("name", str), ("description", str), ("isTemplate", bool)):
        if name in document and document[name] is not None and not isinstance(document[name],
                                                                              kind):
            problems.append(Problem("INVALID_TYPE", f"{name} must be a {kind.__name__}",
                                    f"document.{name}"))
    tags = document.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(Problem("INVALID_TYPE", "tags must be a list of strings",
                                "document.tags"))
    return problems


async def import_document(session: AsyncSession, actor: Actor, document: Any, *,
                          key: str | None) -> Workflow:
    """Create a tenant workflow from an exported document; `key` overrides the document's."""
    actor.require(Role.EDITOR)
    problems = read_document(document)
    if problems:
        raise ValidationFailed(problems)
    config = document["config"]
    chosen = key or document.get("key") or config.get("id")
    if not isinstance(chosen, str):
        raise ValidationFailed([Problem("REQUIRED", "give a key", "key")])
    return await workflows.create_workflow(
        session, actor, key=chosen, name=document.get("name") or config.get("name") or chosen,
        description=document.get("description", config.get("description")),
        config=config, tags=workflows.tenant_tags(document.get("tags") or []),
        is_template=bool(document.get("isTemplate", False)),
        change_description="Imported", path="document" if key is None else "input",
    )
