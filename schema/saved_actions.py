"""Saved actions: core (global) and the tenant's own; handlers name registered code only."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from domain.saved_actions.models import SavedAction as SavedActionModel
from resolvers import saved_actions as resolve
from schema.context import Info
from schema.errors import UserError, attempt


@strawberry.type
class SavedAction:
    id: strawberry.ID
    action_id: str
    name: str
    type: str = strawberry.field(description="snooze | skip | escalation | script")
    handler: str = strawberry.field(description="Registered server-side code, e.g. code:snooze.")
    config: JSON
    available_globally: bool
    is_core: bool

    @classmethod
    def of(cls, row: SavedActionModel) -> SavedAction:
        return cls(id=strawberry.ID(str(row.id)), action_id=row.action_id, name=row.name,
                   type=row.type, handler=row.handler, config=row.config,  # type: ignore[arg-type]
                   available_globally=row.available_globally, is_core=row.tenant_id is None)


@strawberry.input
class CreateSavedActionInput:
    action_id: str
    name: str
    type: str
    handler: str | None = None
    config: JSON | None = None


@strawberry.input(description="Fields left out keep their value; the type never changes.")
class UpdateSavedActionInput:
    action_id: str
    name: str | None = None
    handler: str | None = None
    config: JSON | None = None


@strawberry.type
class SavedActionPayload:
    saved_action: SavedAction | None
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field(description="Core actions and the tenant's own.")
    async def saved_actions(self, info: Info) -> list[SavedAction]:
        return [SavedAction.of(row) for row in await resolve.visible(info)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="A tenant action; the handler must be registered code "
                                     "for its type (default: the type's own).")
    async def create_saved_action(self, info: Info, input: CreateSavedActionInput
                                  ) -> SavedActionPayload:
        row, errors = await attempt(info, lambda: resolve.create(
            info, action_id=input.action_id, name=input.name, action_type=input.type,
            handler=input.handler, config=input.config))
        return SavedActionPayload(saved_action=SavedAction.of(row) if row else None,
                                  errors=errors)

    @strawberry.mutation(description="Change an own action's name, handler or config.")
    async def update_saved_action(self, info: Info, input: UpdateSavedActionInput
                                  ) -> SavedActionPayload:
        row, errors = await attempt(info, lambda: resolve.change(
            info, action_id=input.action_id, name=input.name, handler=input.handler,
            config=input.config))
        return SavedActionPayload(saved_action=SavedAction.of(row) if row else None,
                                  errors=errors)

    @strawberry.mutation(description="Delete an own action; refused (IN_USE) while a workflow "
                                     "calls it.")
    async def delete_saved_action(self, info: Info, action_id: str) -> SavedActionPayload:
        row, errors = await attempt(info, lambda: resolve.remove(info, action_id))
        return SavedActionPayload(saved_action=SavedAction.of(row) if row else None,
                                  errors=errors)
