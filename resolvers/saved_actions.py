"""Resolvers for saved actions: thin calls into the domain."""

from __future__ import annotations

from typing import Any

from domain.saved_actions import service as saved_actions
from domain.saved_actions.models import SavedAction
from schema.context import Info


async def visible(info: Info) -> list[SavedAction]:
    return await saved_actions.visible(info.context.session)


async def create(info: Info, *, action_id: str, name: str, action_type: str,
                 handler: str | None, config: Any) -> SavedAction:
    return await saved_actions.create(info.context.session, info.context.actor,
                                      action_id=action_id, name=name,
                                      action_type=action_type, handler=handler, config=config)


async def change(info: Info, *, action_id: str, name: str | None, handler: str | None,
                 config: Any) -> SavedAction:
    return await saved_actions.change(info.context.session, info.context.actor,
                                      action_id=action_id, name=name,
                                      handler=handler, config=config)


async def remove(info: Info, action_id: str) -> SavedAction:
    return await saved_actions.delete_own(info.context.session, info.context.actor,
                                          action_id=action_id)
