"""Generate a workflow from a description (M13): the model proposes a config through a tool
whose input schema is the served JSON Schema of a config, the validator checks it, and its
problems go back to the model for up to two repairs. Nothing is saved: the user reviews the
config and creates the workflow themselves.

Every model call is reserved in the token ledger and settled in transactions of their own
(committed at once, so concurrent generations cannot overshoot the budget together); the
calls themselves run outside them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from uuid import UUID

from domain.saved_actions import service as saved_actions
from domain.shared import clock
from domain.shared.actor import Actor, Role
from domain.shared.db import Database
from domain.shared.errors import DomainError, Problem
from domain.usage import service as usage
from domain.workflows.config_schema import CONFIG_SCHEMA
from domain.workflows.validation import validate

log = logging.getLogger("stepwise.generation")

TOOL = "propose_workflow"
REPAIRS = 2
MAX_DESCRIPTION = 4000
MAX_TOKENS = 8192
_PROMPTS = resources.files("domain.generation") / "prompts"
_SYSTEM = (_PROMPTS / "generate_system.txt").read_text()
_REPAIR = (_PROMPTS / "repair.txt").read_text()
_TOOL_DESCRIPTION = (_PROMPTS / "propose_tool.txt").read_text().strip()


def tool() -> dict[str, Any]:
    """The proposal tool: its input schema is the config schema the API serves."""
    return {"name": TOOL, "description": _TOOL_DESCRIPTION, "input_schema": CONFIG_SCHEMA}


@dataclass(frozen=True)
class Generated:
    config: dict[str, Any] | None
    explanation: str
    errors: list[Problem] = field(default_factory=list)
    attempts: int = 0


def _problems_text(problems: list[Problem]) -> str:
    return "\n".join(f"- {p.code}: {p.message} (at {p.path or '$'})" for p in problems)


async def _known_actions(db: Database, tenant_id: UUID) -> set[str]:
    async with db.transaction(tenant_id, read_only=True) as tx:
        return set(await saved_actions.known_ids(tx.session))


async def _call(db: Database, tenant_id: UUID, *, system: str,
                messages: list[dict[str, Any]]) -> Any:
    """One proposal turn, reserved then settled (released when the model does not answer)."""
    from domain.shared import llm

    schema_chars = len(json.dumps(CONFIG_SCHEMA))
    chars = len(system) + schema_chars + len(json.dumps(messages, default=str))
    async with db.transaction(tenant_id) as tx:
        reservation = await usage.reserve(tx.session, tenant_id, usage.Call(
            purpose="generation", model=llm.config().model, prompt_chars=chars,
            max_tokens=MAX_TOKENS), now=clock.now())
    try:
        completion = await llm.complete(system=system, messages=messages,
                                        max_tokens=MAX_TOKENS, tools=[tool()],
                                        tool_choice={"type": "tool", "name": TOOL})
    except llm.LLMError:
        async with db.transaction(tenant_id) as tx:
            await usage.release(tx.session, tenant_id, reservation, now=clock.now())
        raise
    async with db.transaction(tenant_id) as tx:
        await usage.settle(tx.session, tenant_id, reservation, model=completion.model,
                           usage=completion.usage.__dict__, now=clock.now())
    return completion


async def generate(db: Database, actor: Actor, description: str) -> Generated:
    """A proposed config for `description`, its explanation and any problems left."""
    from domain.shared import llm

    actor.require(Role.EDITOR)
    text = description.strip()
    if not text:
        raise DomainError("describe the workflow you want", path="description")
    if len(text) > MAX_DESCRIPTION:
        raise DomainError(f"at most {MAX_DESCRIPTION} characters", path="description")
    known = await _known_actions(db, actor.tenant_id)
    system = _SYSTEM.replace("{saved_actions}", ", ".join(sorted(known)) or "none").strip()
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    config: dict[str, Any] | None = None
    problems: list[Problem] = []
    explanations: list[str] = []
    for attempt in range(1, REPAIRS + 2):
        completion = await _call(db, actor.tenant_id, system=system, messages=messages)
        if completion.text.strip():
            explanations.append(completion.text.strip())
        proposal = next((u for u in completion.tool_uses if u.name == TOOL), None)
        if proposal is None:
            problems = [Problem("NO_PROPOSAL", "the model did not propose a config", "$")]
            return Generated(config=config, explanation="\n\n".join(explanations),
                             errors=problems, attempts=attempt)
        config = dict(proposal.input) if isinstance(proposal.input, Mapping) else None
        problems = validate(config, known_actions=known)
        if not problems:
            break
        if attempt > REPAIRS:
            log.info("generated config still has %d problems after %d repairs",
                     len(problems), REPAIRS)
            break
        messages = [*messages, completion.assistant_message(), {"role": "user", "content": [
            llm.tool_result(proposal.id, _REPAIR.replace("{problems}",
                                                         _problems_text(problems)),
                            is_error=True)]}]
    return Generated(config=config, explanation="\n\n".join(explanations), errors=problems,
                     attempts=attempt)
