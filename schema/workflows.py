"""Workflows, versions, diffs, the config schema and validation, chat branches."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.shared.errors import Problem
from domain.workflows.diff import ConfigDiff
from domain.workflows.listing import WorkflowFilter as FilterSpec
from domain.workflows.listing import WorkflowOrder as OrderModel
from domain.workflows.listing import WorkflowSummary
from domain.workflows.models import Workflow as WorkflowModel
from domain.workflows.models import WorkflowVersion as VersionModel
from resolvers import workflows as resolve
from schema.context import Info
from schema.errors import UserError, query_result
from schema.relay import Connection
from schema.users import User

WorkflowOrder = strawberry.enum(OrderModel, name="WorkflowOrder")


@strawberry.enum
class ChangeKind(Enum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    CHANGED = "CHANGED"


@strawberry.type(description="One config as it was; numbers start at 1.")
class WorkflowVersion:
    number: int
    changed_at: datetime
    _workflow_id: strawberry.Private[UUID]
    _row: strawberry.Private[VersionModel | None]

    @classmethod
    def of(cls, row: VersionModel) -> WorkflowVersion:
        return cls(number=row.number, changed_at=row.changed_at, _workflow_id=row.workflow_id,
                   _row=row)

    async def _load(self, info: Info) -> VersionModel:
        if self._row is None:
            self._row = await resolve.version(info, self._workflow_id, self.number)
            if self._row is None:
                raise LookupError("version vanished")
        return self._row

    @strawberry.field
    async def config(self, info: Info) -> JSON:
        return (await self._load(info)).config  # type: ignore[return-value]

    @strawberry.field
    async def change_description(self, info: Info) -> str | None:
        return (await self._load(info)).change_description

    @strawberry.field
    async def tags(self, info: Info) -> list[str]:
        return list((await self._load(info)).tags)

    @strawberry.field
    async def changed_by(self, info: Info) -> User | None:
        found = await resolve.changed_by(info, await self._load(info))
        return User.of(found) if found else None


@strawberry.type
class Workflow:
    id: strawberry.ID
    key: str
    name: str
    description: str | None
    version: str = strawberry.field(description="The config's semantic version.")
    tags: list[str]
    is_core: bool
    is_template: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    latest_version: WorkflowVersion = strawberry.field(
        description="The current config's version (number and time come with the row).")
    _row: strawberry.Private[WorkflowModel | WorkflowSummary]

    @classmethod
    def of(cls, row: WorkflowModel | WorkflowSummary) -> Workflow:
        latest = WorkflowVersion(number=row.latest_version,
                                 changed_at=row.latest_version_at or row.updated_at,
                                 _workflow_id=row.id, _row=None)
        return cls(id=strawberry.ID(str(row.id)), key=row.key, name=row.name,
                   description=row.description, version=row.version, tags=row.tags,
                   is_core=row.tenant_id is None, is_template=row.is_template,
                   created_at=row.created_at, updated_at=row.updated_at,
                   deleted_at=row.deleted_at, latest_version=latest, _row=row)

    @strawberry.field
    async def config(self, info: Info) -> JSON:
        return await resolve.config(info, self._row)  # type: ignore[return-value]

    @strawberry.field
    async def created_by(self, info: Info) -> User | None:
        found = await resolve.creator(info, self._row)
        return User.of(found) if found else None

    @strawberry.field(description="Newest first.")
    async def versions(self, info: Info, first: int | None = None, after: str | None = None
                       ) -> Connection[WorkflowVersion]:
        page = await query_result(lambda: resolve.history(info, self._row.id, first=first,
                                                          after=after))
        return Connection.of(page, WorkflowVersion.of)

    @strawberry.field
    async def version_by_number(self, info: Info, number: int) -> WorkflowVersion | None:
        found = await resolve.version(info, self._row.id, number)
        return WorkflowVersion.of(found) if found else None

    @strawberry.field(description="A portable JSON document for importWorkflow.")
    async def export_document(self, info: Info) -> JSON:
        return resolve.export_document(self._row, await resolve.config(info, self._row))  # type: ignore[return-value]

    @strawberry.field(description="How many of the tenant's workflows were cloned from this one.")
    async def usage_count(self, info: Info) -> int:
        return await resolve.usage_count(info, self._row.id)


@strawberry.type
class ConfigChange:
    kind: ChangeKind
    path: str
    before: JSON | None
    after: JSON | None


@strawberry.type
class WorkflowDiff:
    from_version: int
    to_version: int
    steps_added: list[str]
    steps_removed: list[str]
    steps_changed: list[str]
    changes: list[ConfigChange]

    @classmethod
    def of(cls, diff: ConfigDiff, from_version: int, to_version: int) -> WorkflowDiff:
        return cls(from_version=from_version, to_version=to_version,
                   steps_added=diff.steps_added, steps_removed=diff.steps_removed,
                   steps_changed=diff.steps_changed,
                   changes=[ConfigChange(kind=ChangeKind(c.kind), path=c.path, before=c.before,
                                         after=c.after) for c in diff.changes])


@strawberry.type
class ValidationResult:
    valid: bool
    errors: list[UserError]


@strawberry.type
class ChatBranch:
    id: str
    label: str
    type: str
    user_prompts: list[str] | None
    response: str | None
    next: str | None
    saved_action: str | None
    allow_off_script: bool | None
    return_to_step: str | None
    triggers_action: str | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> ChatBranch:
        return cls(id=data.get("id", ""), label=data.get("label", ""), type=data.get("type", ""),
                   user_prompts=data.get("userPrompts"), response=data.get("response"),
                   next=data.get("next"), saved_action=data.get("savedAction"),
                   allow_off_script=data.get("allowOffScript"),
                   return_to_step=data.get("returnToStep"),
                   triggers_action=data.get("triggersAction"))


def _errors(problems: list[Problem]) -> list[UserError]:
    return [UserError(code=p.code, message=p.message, path=p.path) for p in problems]


@strawberry.input
class WorkflowFilter:
    search: str | None = None
    tags: list[str] | None = None
    is_core: bool | None = None
    is_template: bool | None = None
    include_deleted: bool | None = None

    def spec(self) -> FilterSpec:
        return FilterSpec(search=(self.search or "").strip() or None, tags=self.tags or [],
                          is_core=self.is_core, is_template=self.is_template,
                          include_deleted=bool(self.include_deleted))


@strawberry.type
class Query:
    @strawberry.field(description="Own and core workflows; a core one is hidden where the "
                                  "tenant has its own with the same key.")
    async def workflows(self, info: Info, first: int | None = None, after: str | None = None,
                        filter: WorkflowFilter | None = None,
                        order_by: WorkflowOrder | None = None,  # type: ignore[valid-type]
                        ) -> Connection[Workflow]:
        spec = filter.spec() if filter else FilterSpec()
        order = OrderModel(order_by.value) if order_by else OrderModel.UPDATED_AT_DESC  # type: ignore[attr-defined]
        page = await query_result(lambda: resolve.page(info, first=first, after=after, spec=spec,
                                                       order=order))
        return Connection.of(page, Workflow.of)

    @strawberry.field(description="By key the tenant's own workflow shadows the core one; by "
                                  "id exactly that row (deleted ones too).")
    async def workflow(self, info: Info, id: strawberry.ID | None = None,
                       key: str | None = None) -> Workflow | None:
        row = await resolve.one(info, workflow_id=id, key=key)
        return Workflow.of(row) if row else None

    @strawberry.field(description="Null when the workflow or either version is not visible.")
    async def workflow_diff(self, info: Info, id: strawberry.ID,
                            from_version: int, to_version: int) -> WorkflowDiff | None:
        found = await resolve.diff(info, id, from_version, to_version)
        return WorkflowDiff.of(found, from_version, to_version) if found else None

    @strawberry.field(description="The JSON Schema (draft 2020-12) of a workflow config.")
    def workflow_config_schema(self) -> JSON:
        return resolve.config_schema()  # type: ignore[return-value]

    @strawberry.field(description="Every problem at once, as {code, message, path}.")
    async def validate_workflow_config(self, info: Info, config: JSON) -> ValidationResult:
        problems = await resolve.validate_config(info, config)
        return ValidationResult(valid=not problems, errors=_errors(problems))

    @strawberry.field(description="Null when the workflow (by key) or the step does not exist.")
    async def chat_branches(self, info: Info, workflow_key: str, from_step_id: str
                            ) -> list[ChatBranch] | None:
        found = await resolve.chat_branches(info, workflow_key, from_step_id)
        return [ChatBranch.of(b) for b in found] if found is not None else None
