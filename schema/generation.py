"""generateWorkflow (M13): a proposed config from a description, validated, never saved."""

from __future__ import annotations

from typing import cast

import strawberry
from strawberry.scalars import JSON

from domain.generation import service as generation
from schema.context import Info
from schema.errors import UserError, outside_transaction


@strawberry.type
class GenerateWorkflowPayload:
    config: JSON | None = strawberry.field(
        description="The proposed config (with any remaining problems in errors); not saved.")
    explanation: str | None
    errors: list[UserError] = strawberry.field(
        description="Input problems, or what is still wrong with the config after two "
                    "repairs (JSON paths into it).")


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Propose a workflow config from a description: the model "
                                      "proposes, the validator checks, up to two repairs. "
                                      "Nothing is saved.")
    async def generate_workflow(self, info: Info, description: str) -> GenerateWorkflowPayload:
        # No savepoint: the operation's transaction has ended (OWN_TRANSACTIONS in
        # schema/extensions.py); the service works in short transactions of its own.
        made, errors = await outside_transaction(lambda: generation.generate(
            info.context.db, info.context.actor, description))
        if made is None:
            return GenerateWorkflowPayload(config=None, explanation=None, errors=errors)
        return GenerateWorkflowPayload(
            config=cast(JSON, made.config), explanation=made.explanation,
            errors=[UserError(code=p.code, message=p.message, path=p.path)
                    for p in made.errors])
