"""Schema extensions: the per-operation tenant transaction and error masking."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types.graphql import OperationType

from domain.users import repository as users_repository
from domain.users.models import Role
from schema.context import Context, NotAuthenticated

log = logging.getLogger("stepwise.graphql")


def internal_error(request_id: str | None) -> GraphQLError:
    return GraphQLError("Unexpected error.",
                        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


def unauthenticated(context: Context, reason: str) -> GraphQLError:
    if isinstance(context.response, Response):
        context.response.status_code = 401
    return GraphQLError(reason, extensions={"code": "UNAUTHENTICATED"})


class TenantTransaction(SchemaExtension):
    """Runs each query or mutation in one transaction as the app role, tenant set first.

    Opened after validation (invalid documents never touch the database) and committed
    before the response is written, so a client never sees a result that is not durable.
    Each operation gets its own copy of the context (session, loaders): operations on one
    WebSocket run concurrently and must not share a transaction. The caller's role comes
    from the database, not the token, so a demoted or deleted user loses access at once.
    Subscriptions open their own short transaction per event instead.
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
        session: AsyncSession | None = None
        try:
            session = context.db.new_session()
            await session.begin()
            user = await users_repository.enter_as(session, principal.tenant_id,
                                                   principal.user_id)
        except Exception as exc:
            await self._discard(session)
            log.exception("could not open the tenant transaction [request %s]",
                          context.request_id)
            raise internal_error(context.request_id) from exc
        if user is None:
            await self._discard(session)
            raise unauthenticated(context, "the token's user does not exist")
        operation_context = dataclasses.replace(
            context, _session=session, _loaders=None,
            principal=dataclasses.replace(principal, role=Role(user.role)),
        )
        operation_context.loaders.user.prime(user.id, user)  # `viewer` and authors reuse it
        self.execution_context.context = operation_context
        try:
            yield
        except BaseException:
            await self._discard(session)
            raise
        await self._finish(session, context)

    async def _finish(self, session: AsyncSession, context: Context) -> None:
        result = self.execution_context.result
        try:
            if result is not None and result.errors:
                await session.rollback()
                if self.execution_context.operation_type == OperationType.MUTATION:
                    # Nothing was kept: payloads that look successful would be a lie.
                    result.data = None
            else:
                await session.commit()
        except Exception as exc:
            log.exception("commit failed [request %s]", context.request_id)
            raise internal_error(context.request_id) from exc
        finally:
            await session.close()

    @staticmethod
    async def _discard(session: AsyncSession | None) -> None:
        if session is not None:
            try:
                await session.rollback()
            finally:
                await session.close()


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | NotAuthenticated)


class MaskUnexpectedErrors(MaskErrors):
    """Hide unexpected exceptions behind a request id; log them whole."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id: Any = getattr(self.execution_context.context, "request_id", None)
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
