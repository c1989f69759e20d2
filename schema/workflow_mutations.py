"""Workflow mutations: every one returns a payload with `errors` and writes nothing on error."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from resolvers import workflows as resolve
from schema.context import Info
from schema.errors import UserError, attempt
from schema.workflows import Workflow, WorkflowVersion


@strawberry.input
class CreateWorkflowInput:
    key: str = strawberry.field(description="1-64 lowercase letters, digits, - or _.")
    name: str = strawberry.field(description="1-200 characters.")
    config: JSON = strawberry.field(description="At most 256 kB, nested at most 32 levels; "
                                    "see workflowConfigSchema.")
    description: str | None = strawberry.field(default=None,
                                               description="At most 2000 characters.")
    tags: list[str] | None = strawberry.field(
        default=None, description="At most 20 tags of 1-50 letters, digits or . _ : / -; "
        "'core' is reserved for core workflows (a clone drops it).")
    is_template: bool | None = None


@strawberry.input(description="Fields left out keep their value; only a config change makes a "
                              "new version.")
class UpdateWorkflowInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    config: JSON | None = None
    tags: list[str] | None = None
    is_template: bool | None = None
    change_description: str | None = None


@strawberry.input
class CloneWorkflowInput:
    source_id: strawberry.ID
    key: str
    name: str | None = None


@strawberry.input(description="Replaces the step's branch with the same id, or appends it.")
class ChatBranchInput:
    workflow_id: strawberry.ID
    from_step_id: str
    id: str
    label: str
    type: str
    user_prompts: list[str] | None = None
    response: str | None = None
    next: str | None = None
    saved_action: str | None = None
    allow_off_script: bool | None = None
    return_to_step: str | None = None
    triggers_action: str | None = None

    def branch(self) -> dict[str, Any]:
        values = {"id": self.id, "label": self.label, "type": self.type,
                  "userPrompts": self.user_prompts, "response": self.response,
                  "next": self.next, "savedAction": self.saved_action,
                  "allowOffScript": self.allow_off_script, "returnToStep": self.return_to_step,
                  "triggersAction": self.triggers_action}
        return {k: v for k, v in values.items() if v is not None}


@strawberry.type
class WorkflowPayload:
    workflow: Workflow | None
    errors: list[UserError]


@strawberry.type
class WorkflowVersionPayload:
    version: WorkflowVersion | None
    errors: list[UserError]


def _payload(row: Any, errors: list[UserError]) -> WorkflowPayload:
    return WorkflowPayload(workflow=Workflow.of(row) if row is not None else None, errors=errors)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="A tenant workflow and its version 1.")
    async def create_workflow(self, info: Info, input: CreateWorkflowInput
                              ) -> WorkflowPayload:
        data = {"key": input.key, "name": input.name, "description": input.description,
                "config": input.config, "tags": input.tags,
                "is_template": bool(input.is_template)}
        return _payload(*await attempt(info, lambda: resolve.create(info, data)))

    @strawberry.mutation(description="A config change makes a new version; name, description "
                                     "or tags alone do not.")
    async def update_workflow(self, info: Info, input: UpdateWorkflowInput
                              ) -> WorkflowPayload:
        data = {"name": input.name, "description": input.description, "config": input.config,
                "tags": input.tags, "is_template": input.is_template,
                "change_description": input.change_description}
        return _payload(*await attempt(info, lambda: resolve.change(info, input.id, data)))

    @strawberry.mutation(description="A new version whose config equals version `toVersion`.")
    async def rollback_workflow(self, info: Info, id: strawberry.ID,
                                to_version: int) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.rollback(info, id, to_version)))

    @strawberry.mutation(description="A tag names one version of a workflow: it moves here.")
    async def tag_workflow_version(self, info: Info, id: strawberry.ID,
                                   number: int, tag: str) -> WorkflowVersionPayload:
        found, errors = await attempt(info, lambda: resolve.tag(info, id, number, tag))
        return WorkflowVersionPayload(version=WorkflowVersion.of(found) if found else None,
                                      errors=errors)

    @strawberry.mutation(description="Clone a template, a core or an own workflow into a new "
                                     "key.")
    async def clone_workflow(self, info: Info, input: CloneWorkflowInput
                             ) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.clone(
            info, input.source_id, input.key, input.name)))

    @strawberry.mutation(description="Soft delete: restorable, hidden from lists by default.")
    async def delete_workflow(self, info: Info, id: strawberry.ID
                              ) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.remove(info, id)))

    @strawberry.mutation
    async def restore_workflow(self, info: Info, id: strawberry.ID
                               ) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.restore(info, id)))

    @strawberry.mutation(description="Create a workflow from an exportDocument; `key` overrides "
                                     "the document's.")
    async def import_workflow(self, info: Info, document: JSON, key: str | None = None
                              ) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.import_document(info, document,
                                                                             key)))

    @strawberry.mutation(description="Branches live in the versioned config: an edit makes a "
                                     "new version.")
    async def upsert_chat_branch(self, info: Info, input: ChatBranchInput
                                 ) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.upsert_branch(
            info, input.workflow_id, input.from_step_id, input.branch())))

    @strawberry.mutation(description="Remove a step's chat branch (a new version); refused if "
                                     "the config would become invalid.")
    async def delete_chat_branch(self, info: Info, workflow_id: strawberry.ID,
                                 from_step_id: str, branch_id: str) -> WorkflowPayload:
        return _payload(*await attempt(info, lambda: resolve.remove_branch(
            info, workflow_id, from_step_id, branch_id)))
