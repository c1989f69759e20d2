"""Saved-action rules: core ones are read-only, tenant ones name registered handlers only."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.saved_actions import handlers, repository
from domain.saved_actions.errors import ActionIdTaken, CoreReadOnly
from domain.saved_actions.models import SavedAction
from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError, NotFound, Problem, ValidationFailed

_ACTION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


async def visible(session: AsyncSession) -> list[SavedAction]:
    return await repository.visible(session)


async def known_ids(session: AsyncSession) -> set[str]:
    """Action ids a workflow of the current tenant may call (core and own)."""
    return await repository.visible_ids(session)


async def create(session: AsyncSession, actor: Actor, *, action_id: str, name: str,
                 action_type: str, handler: str | None, config: dict[str, Any] | None
                 ) -> SavedAction:
    """A tenant action (editors and admins); its handler must be registered code matching
    its type."""
    actor.require(Role.EDITOR)
    problems: list[Problem] = []
    if not _ACTION_ID.match(action_id):
        problems.append(Problem("INVALID_KEY", "action ids are lowercase letters, digits, - and _",
                                "input.actionId"))
    if not 1 <= len(name.strip()) <= 200:
        problems.append(Problem("REQUIRED" if not name.strip() else "TOO_LONG",
                                "an action needs a name of 1-200 characters", "input.name"))
    if config is not None and not isinstance(config, dict):
        problems.append(Problem("INVALID_TYPE", "config must be a JSON object", "input.config"))
        config = {}
    problems += handlers.check(action_type, handler, config or {})
    problems += await _escalation_target(session, action_type, config or {})
    if problems:
        raise ValidationFailed(problems)
    if await repository.by_action_id(session, action_id) is not None:
        # Core ids are reserved too: a branch naming it must mean one thing.
        raise ActionIdTaken(f"an action {action_id!r} already exists", path="input.actionId")
    action = SavedAction(tenant_id=actor.tenant_id, action_id=action_id, name=name.strip(),
                         type=action_type, handler=handler or handlers.DEFAULT_HANDLER[action_type],
                         config=config or {}, is_core=False, created_by=actor.user_id)
    return await repository.add(session, action)


async def _escalation_target(session: AsyncSession, action_type: str, config: dict[str, Any]
                             ) -> list[Problem]:
    """An escalation names a workflow the tenant can start (its own or a core one)."""
    key = config.get("workflowKey")
    if action_type != "escalation" or not isinstance(key, str):
        return []
    # Imported here: workflows validate against saved actions, so the dependency is two-way.
    from domain.workflows import repository as workflows_repository

    if await workflows_repository.by_key(session, key) is None:
        return [Problem("UNKNOWN_WORKFLOW", f"no workflow {key!r} to escalate to",
                        "input.config.workflowKey")]
    return []


async def _own(session: AsyncSession, action_id: str, *, path: str) -> SavedAction:
    found = await repository.by_action_id(session, action_id)
    if found is None:
        raise NotFound(f"no saved action {action_id!r}", path=path)
    if found.tenant_id is None:
        raise CoreReadOnly(f"{action_id!r} is a core action: create your own instead", path=path)
    return found


async def change(session: AsyncSession, actor: Actor, *, action_id: str, name: str | None,
                 handler: str | None, config: Any) -> SavedAction:
    """Rename an own action or change its handler/config (its type stays)."""
    actor.require(Role.EDITOR)
    action = await _own(session, action_id, path="input.actionId")
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    if name is not None:
        if not 1 <= len(name.strip()) <= 200:
            problems.append(Problem("REQUIRED" if not name.strip() else "TOO_LONG",
                                    "an action needs a name of 1-200 characters", "input.name"))
        values["name"] = name.strip()
    if config is not None and not isinstance(config, dict):
        problems.append(Problem("INVALID_TYPE", "config must be a JSON object", "input.config"))
    elif handler is not None or config is not None:
        new_handler = handler or action.handler
        new_config = config if config is not None else action.config
        problems += handlers.check(action.type, new_handler, new_config)
        if not problems:
            problems += await _escalation_target(session, action.type, new_config)
        values.update(handler=new_handler, config=new_config)
    if problems:
        raise ValidationFailed(problems)
    if not values:
        return action
    return await repository.change(session, action.id, values)


async def delete_own(session: AsyncSession, actor: Actor, *, action_id: str) -> SavedAction:
    """Delete an own action no workflow of the tenant calls (deleted workflows included)."""
    actor.require(Role.EDITOR)
    # Imported here: workflows validate against saved actions, so the dependency is two-way.
    from domain.workflows import repository as workflows_repository

    action = await _own(session, action_id, path="actionId")
    from domain.runs import repository as runs_repository  # runs build on saved actions

    users = await workflows_repository.keys_using_action(session, action_id)
    if users:
        raise DomainError(f"still called by workflows: {', '.join(users)}", path="actionId",
                          code="IN_USE")
    running = await runs_repository.active_keys_calling(session, action_id)
    if running:
        raise DomainError(f"still called by live runs of: {', '.join(running)}",
                          path="actionId", code="IN_USE")
    await repository.remove(session, action)
    return action


def check_core(entry: dict[str, Any], *, path: str) -> list[Problem]:
    """Problems with one core action from seeds/saved_actions.json."""
    problems = []
    for required in ("actionId", "name", "type"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            problems.append(Problem("REQUIRED", f"{required} is required", f"{path}.{required}"))
    if problems:
        return problems
    if not _ACTION_ID.match(entry["actionId"]):
        problems.append(Problem("INVALID_KEY", "action ids are lowercase letters, digits, - and _",
                                f"{path}.actionId"))
    config = entry.get("config", {})
    if not isinstance(config, dict):
        return [*problems, Problem("INVALID_TYPE", "config must be an object", f"{path}.config")]
    return problems + handlers.check(entry["type"], entry.get("handler"), config, path=path)


async def upsert_core(session: AsyncSession, entry: dict[str, Any]) -> str:
    """Owner path: insert or refresh one core action (already checked)."""
    return await repository.upsert_core(session, {
        "action_id": entry["actionId"], "name": entry["name"], "type": entry["type"],
        "handler": entry.get("handler") or handlers.DEFAULT_HANDLER[entry["type"]],
        "config": entry.get("config", {}),
        "available_globally": bool(entry.get("availableGlobally", True)),
    })
