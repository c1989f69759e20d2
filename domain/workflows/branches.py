"""Chat branches: stored in the versioned config, so an edit makes a new version."""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.actor import Actor, Role
from domain.shared.errors import NotFound
from domain.workflows import service as workflows
from domain.workflows.models import Workflow


def _step(config: dict[str, Any], step_id: str) -> dict[str, Any] | None:
    for step in config.get("steps") or []:
        if isinstance(step, dict) and step.get("id") == step_id:
            return step
    return None


async def for_step(session: AsyncSession, key: str, step_id: str) -> list[dict[str, Any]] | None:
    """The branches of a step of the workflow `key` resolves to; None if no such step."""
    row = await workflows.resolve_key(session, key)
    step = _step(row.config, step_id) if row else None
    if step is None:
        return None
    return [b for b in step.get("chatBranches") or [] if isinstance(b, dict)]


async def upsert(session: AsyncSession, actor: Actor, workflow_id: UUID, from_step_id: str,
                 branch: dict[str, Any]) -> Workflow:
    """Replace the step's branch with the same id, or append it; validated like any edit."""
    actor.require(Role.EDITOR)
    row = await workflows.writable(session, workflow_id, path="input.workflowId")
    config = copy.deepcopy(row.config)
    step = _step(config, from_step_id)
    if step is None:
        raise NotFound(f"no step '{from_step_id}' in this workflow", path="input.fromStepId")
    existing = [b for b in step.get("chatBranches") or [] if isinstance(b, dict)]
    positions = [i for i, b in enumerate(existing) if b.get("id") == branch["id"]]
    if positions:
        existing[positions[0]] = branch
        verb = "Updated"
    else:
        existing.append(branch)
        verb = "Added"
    step["chatBranches"] = existing
    return await workflows.update_workflow(
        session, actor, workflow_id, config=config,
        change_description=f"{verb} chat branch '{branch['id']}' on step '{from_step_id}'")


async def remove(session: AsyncSession, actor: Actor, workflow_id: UUID, from_step_id: str,
                 branch_id: str) -> Workflow:
    """Drop one branch of a step (a new version); the rest of the config must stay valid."""
    actor.require(Role.EDITOR)
    row = await workflows.writable(session, workflow_id, path="workflowId")
    config = copy.deepcopy(row.config)
    step = _step(config, from_step_id)
    if step is None:
        raise NotFound(f"no step '{from_step_id}' in this workflow", path="fromStepId")
    existing = [b for b in step.get("chatBranches") or [] if isinstance(b, dict)]
    kept = [b for b in existing if b.get("id") != branch_id]
    if len(kept) == len(existing):
        raise NotFound(f"step '{from_step_id}' has no branch '{branch_id}'", path="branchId")
    step["chatBranches"] = kept
    return await workflows.update_workflow(
        session, actor, workflow_id, config=config,
        change_description=f"Removed chat branch '{branch_id}' from step '{from_step_id}'")
