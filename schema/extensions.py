"""Schema extensions: the per-operation tenant transaction and error masking."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode
from starlette.responses import Response
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types.graphql import OperationType

from domain.auth.tokens import Principal
from domain.shared.db import Tx, UnknownCaller
from domain.shared.models import from_row
from domain.tenants.models import Tenant
from domain.users.models import User
from schema.context import Context, NotAuthenticated

log = logging.getLogger("stepwise.graphql")


def internal_error(request_id: str | None) -> GraphQLError:
    return GraphQLError("Unexpected error.",
                        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


def unauthenticated(context: Context, reason: str) -> GraphQLError:
    if isinstance(context.response, Response):
        context.response.status_code = 401
    return GraphQLError(reason, extensions={"code": "UNAUTHENTICATED"})


# Root mutation fields that work in short transactions of their own because they call the
# LLM, which never happens inside an open transaction: an operation made only of them gets
# its caller re-read and its transaction ended before they run (no pooled connection idles
# through a model call).
OWN_TRANSACTIONS = frozenset({"generateWorkflow"})


def _only_own_transactions(document: DocumentNode | None, name: str | None) -> bool:
    if document is None:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (name is None or (d.name is not None and d.name.value == name))]
    if len(operations) != 1:
        return False
    fields = [s for s in operations[0].selection_set.selections]
    if not all(isinstance(s, FieldNode) for s in fields):
        return False
    names = {s.name.value for s in fields if isinstance(s, FieldNode)} - {"__typename"}
    return bool(names) and names <= OWN_TRANSACTIONS


async def enter(context: Context, principal: Principal, *, read_only: bool) -> Context:
    """The operation's own context, in a new tenant transaction as the caller re-read now
    (UnknownCaller if deleted): its role from the database, its own loaders, the caller's
    row primed for `viewer` and authors. Both edges (this extension and schema.fast)."""
    tx = await context.db.begin(principal.tenant_id, user_id=principal.user_id,
                                read_only=read_only)
    role = tx.actor.role if tx.actor else principal.role
    operation_context = dataclasses.replace(
        context, tx=tx, _loaders=None, principal=dataclasses.replace(principal, role=role))
    if tx.user is not None:
        operation_context.loaders.user.prime(tx.user["id"], from_row(User, tx.user))
    if tx.tenant is not None:
        operation_context.loaders.tenant.prime(tx.tenant["id"], from_row(Tenant, tx.tenant))
    return operation_context


class TenantTransaction(SchemaExtension):
    """Runs each query or mutation in one tenant transaction (domain.shared.db), caller re-read.

    Opened after validation (invalid documents never touch the database) and committed
    before the response is written, so a client never sees a result that is not durable.
    Each operation gets its own copy of the context (transaction, loaders): operations on one
    WebSocket run concurrently and must not share a transaction. The caller's role comes
    from the database, not the token, so a demoted or deleted user loses access at once.
    Queries run READ ONLY. Subscriptions open their own short transaction per event instead.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context: Context = self.execution_context.context
        operation = self.execution_context.operation_type
        if operation == OperationType.SUBSCRIPTION or context.principal is None:
            yield
            return
        principal = context.principal
        if principal.expired():
            raise unauthenticated(context, "the token has expired")
        try:
            operation_context = await enter(context, principal,
                                            read_only=operation == OperationType.QUERY)
        except UnknownCaller:
            raise unauthenticated(context, "the token's user does not exist") from None
        except Exception as exc:
            log.exception("could not open the tenant transaction [request %s]",
                          context.request_id)
            raise internal_error(context.request_id) from exc
        tx = operation_context.transaction
        self.execution_context.context = operation_context
        if operation == OperationType.MUTATION and _only_own_transactions(
                self.execution_context.graphql_document,
                getattr(self.execution_context, "_provided_operation_name", None)):
            await tx.commit()  # the caller is known (tx.actor stays); nothing was written
        try:
            yield
        except BaseException:
            await tx.rollback()
            raise
        await self._finish(tx, context)

    async def _finish(self, tx: Tx, context: Context) -> None:
        result = self.execution_context.result
        if tx.ended:
            return
        try:
            if result is not None and result.errors:
                await tx.rollback()
                if self.execution_context.operation_type == OperationType.MUTATION:
                    # Nothing was kept: payloads that look successful would be a lie.
                    result.data = None
            else:
                await tx.commit()
        except Exception as exc:
            log.exception("commit failed [request %s]", context.request_id)
            raise internal_error(context.request_id) from exc


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | NotAuthenticated)


def _graphql_code(message: str, *, at_a_response_path: bool) -> str | None:
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("Variable '$"):
        return "BAD_USER_INPUT"  # a variable's value does not fit its type
    if not at_a_response_path:  # found before execution: a validation rule's
        return "GRAPHQL_VALIDATION_FAILED"
    return None


def coded(error: GraphQLError) -> GraphQLError:
    """The error with a code if GraphQL itself refused the document or its variables
    (graphql-core gives those none): GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, or
    BAD_USER_INPUT; their message and locations say where. This extension applies it, and
    the HTTP view for a syntax error, which fails in the parser cache before any operation
    hook (over WebSocket, schema.edge.syntax_error answers those first)."""
    if (error.extensions or {}).get("code") or _is_unexpected(error):
        return error
    code = _graphql_code(error.message, at_a_response_path=error.path is not None)
    if code is not None:
        error.extensions = {**(error.extensions or {}), "code": code}
    return error


def mask_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """The error a client may see: an unexpected one is logged whole and replaced by a
    request id; one GraphQL itself raised gets a code (both edges: this extension and
    schema.fast)."""
    if not _is_unexpected(error):
        return coded(error)
    log.error("unexpected error in %s [request %s]", error.path, request_id,
              exc_info=error.original_error)
    return GraphQLError(
        message="Unexpected error.",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


class MaskUnexpectedErrors(MaskErrors):
    """Hide unexpected exceptions behind a request id; log them whole."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        request_id: Any = getattr(self.execution_context.context, "request_id", None)
        return [mask_error(error, request_id) for error in errors]

    def _process_result(self, result: object) -> None:
        # Strawberry checks a runtime Protocol here, which costs more than the rest of a
        # subscription event's masking; an attribute look-up says the same.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]
