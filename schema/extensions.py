"""Schema extensions: the per-operation tenant transaction and error masking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types.graphql import OperationType

from schema.context import Context, NotAuthenticated

log = logging.getLogger("stepwise.graphql")


class TenantTransaction(SchemaExtension):
    """Runs each query or mutation in one transaction as the app role, tenant set first.

    Opened after validation (invalid documents never touch the database) and committed
    before the response is written, so a client never sees a result that is not durable.
    Subscriptions open their own short transaction per event instead.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context: Context = self.execution_context.context
        operation = self.execution_context.operation_type
        if operation == OperationType.SUBSCRIPTION or context.principal is None:
            yield
            return
        session = context.db.new_session()
        await context.db.begin_tenant(session, context.principal.tenant_id)
        context._session = session
        try:
            yield
            result = self.execution_context.result
            if result is not None and result.errors:
                await session.rollback()
            else:
                await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            context._session = None
            await session.close()


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | NotAuthenticated)


class MaskUnexpectedErrors(MaskErrors):
    """Hide unexpected exceptions behind a request id; log them whole."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        log.error("unexpected error in %s [request %s]", error.path, request_id,
                  exc_info=error.original_error)
        return GraphQLError(
            message=self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )
