"""Resolvers for saved actions: thin calls into the domain."""

from __future__ import annotations

from typing import Any

from domain.saved_actions import service as saved_actions
from domain.saved_actions.models import SavedAction
from domain.users.models import Role
from schema.context import Info


async def visible(info: Info) -> list[SavedAction]:
    return await saved_actions.visible(info.context.session)


async def create(info: Info, *, action_id: str, name: str, action_type: str,
                 handler: str | None, config: Any) -> SavedAction:
    me = info.context.require(Role.EDITOR)
    return await saved_actions.create(info.context.session, tenant_id=me.tenant_id,
                                      user_id=me.user_id, action_id=action_id, name=name,
                                      action_type=action_type, handler=handler, config=config)


async def change(info: Info, *, action_id: str, name: str | None, handler: str | None,
                 config: Any) -> SavedAction:
    info.context.require(Role.EDITOR)
    return await saved_actions.change(info.context.session, action_id=action_id, name=name,
                                      handler=handler, config=config)


async def remove(info: Info, action_id: str) -> SavedAction:
    info.context.require(Role.EDITOR)
    return await saved_actions.delete_own(info.context.session, action_id=action_id)
