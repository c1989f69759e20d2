"""The HTTP fast path: a query Strawberry has already validated runs without the view.

Strawberry's view and `Schema.execute` cost more CPU than a small query's whole work (request
re-parsing, extension hooks, result conversion, the standard-library JSON encoder). A
document is *prepared* the first time Strawberry executes it: `RecordPrepared` notes it
after parsing and validation passed (the same limits, rules and caches as always).
From then on a POST of the same text and operation name is executed here:

- the body was parsed once at the edge (orjson) and is handed over as is;
- the tenant transaction is the one primitive (`Database.begin`: BEGIN READ ONLY, tenant
  and caller re-read), with the caller's role from the database, as `TenantTransaction`;
- execution is graphql-core's, through `PlannedExecutor` (schema/execution.py), with the
  variables coerced by graphql-core;
- unexpected errors are masked exactly as `MaskUnexpectedErrors` masks them, any error
  rolls the transaction back, and the response is encoded with orjson.

Anything else — mutations, subscriptions, invalid or unseen documents, variables that do
not coerce, an expired token or a deleted caller — goes to Strawberry, which answers with
its own errors. Both paths give the same JSON (tests/test_fast_path_differential.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, get_operation_ast
from graphql.execution.values import get_variable_values
from starlette.requests import Request
from starlette.responses import Response
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from domain.auth.tokens import Principal
from domain.shared import jsontext
from domain.shared.db import UnknownCaller
from domain.shared.models import from_row
from domain.shared.settings import Settings
from domain.users.models import User
from schema import compiled, edge
from schema.context import Context
from schema.execution import PlannedExecutor
from schema.extensions import enter, internal_error, mask_error

log = logging.getLogger("stepwise.graphql")

PREPARED_MAX = 512  # distinct (document, operation) pairs kept, least recently used out


class Prepared:
    """Documents Strawberry validated, by (query text, operationName): queries only."""

    def __init__(self, maxsize: int = PREPARED_MAX) -> None:
        self._documents: OrderedDict[tuple[str, str | None], DocumentNode] = OrderedDict()
        self._maxsize = maxsize

    def get(self, query: str, operation_name: str | None) -> DocumentNode | None:
        key = (query, operation_name)
        document = self._documents.get(key)
        if document is not None:
            self._documents.move_to_end(key)
        return document

    def add(self, query: str, operation_name: str | None, document: DocumentNode) -> None:
        if len(query) > edge.CACHED_DOCUMENT:
            return  # a huge text (comments and whitespace cost no tokens) is not kept
        self._documents[(query, operation_name)] = document
        self._documents.move_to_end((query, operation_name))
        while len(self._documents) > self._maxsize:
            self._documents.popitem(last=False)


class RecordPrepared(SchemaExtension):
    """Notes each query document that passed Strawberry's parsing and validation."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if (context.query is not None and context.graphql_document is not None
                and context.operation_type == OperationType.QUERY):
            # Keyed by the operationName the client sent (`operation_name` would infer it).
            provided: str | None = getattr(context, "_provided_operation_name", None)
            self.prepared.add(context.query, provided, context.graphql_document)
        yield


class FastQueries:
    """Executes prepared queries for `TokenGate` (schema/app.py), or declines (None)."""

    def __init__(self, schema: Any, prepared: Prepared, settings: Settings) -> None:
        self.schema = schema._schema  # graphql-core's schema under Strawberry's
        self.prepared = prepared
        self.settings = settings
        self.served = 0  # operations answered here (the differential test counts them)
        self.compiled_served = 0  # of which by compiled execution (schema.compiled)
        self.compiled_failed = 0  # compiled executions that raised (not declined): bugs
        self.compiler = compiled.Compiler(self.schema)

    async def respond(self, body: dict[str, Any], request: Request,
                      principal: Principal) -> Response | None:
        query: str = body["query"]
        operation_name: str | None = body.get("operationName")
        document = self.prepared.get(query, operation_name)
        if document is None or principal.expired():  # (only queries are ever prepared)
            return None
        request_id = edge.request_id(request.headers)
        answered = await self._compiled(document, body, request, principal, request_id)
        if answered is not None:
            return answered
        sub_response = Response()
        context = Context(request=request, response=sub_response, db=request.app.state.db,
                          settings=self.settings, request_id=request_id,
                          principal=principal)
        try:
            context = await enter(context, principal, read_only=True)
        except UnknownCaller:
            return None  # Strawberry's path answers 401 with its message
        tx = context.transaction
        try:
            executor = PlannedExecutor.build(
                self.schema, document, context_value=context,
                raw_variable_values=body.get("variables") or {},
                operation_name=operation_name,
                is_awaitable=optimized_is_awaitable)  # type: ignore[arg-type]
            if isinstance(executor, list):  # variables that do not coerce: Strawberry says so
                await tx.rollback()
                return None
            result = await await_maybe(executor.execute_operation())  # type: ignore[arg-type]
            assert isinstance(result, ExecutionResult)
        except BaseException as exc:
            await tx.rollback()
            if not isinstance(exc, Exception):
                raise
            log.exception("unexpected error executing a prepared query [request %s]",
                          request_id)
            result = ExecutionResult(None, [internal_error(request_id)])
        else:
            try:
                if result.errors:
                    await tx.rollback()
                else:
                    await tx.commit()
            except Exception:
                log.exception("commit failed [request %s]", request_id)
                result = ExecutionResult(None, [internal_error(request_id)])
        self.served += 1
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [mask_error(error, request_id).formatted
                                 for error in result.errors]
        response = Response(jsontext.dumps(payload), media_type="application/json")
        response.headers.raw.extend(
            (name, value) for name, value in sub_response.headers.raw
            if name not in (b"content-length", b"content-type"))
        response.headers["X-Request-Id"] = request_id
        if sub_response.status_code != 200:
            response.status_code = sub_response.status_code
        return response


    async def _compiled(self, document: DocumentNode, body: dict[str, Any], request: Request,
                        principal: Principal, request_id: str) -> Response | None:
        """The answer of compiled execution, or None where it declines (schema.compiled)."""
        operation = get_operation_ast(document, body.get("operationName"))
        if operation is None:
            return None
        raw = body.get("variables") or {}
        variables = get_variable_values(self.schema, operation.variable_definitions or (),
                                        raw if isinstance(raw, dict) else {})
        if isinstance(variables, list):
            return None
        plan = self.compiler.get(document, operation, variables)
        if plan is None:
            return None
        try:
            tx = await request.app.state.db.begin(principal.tenant_id,
                                                  user_id=principal.user_id, read_only=True,
                                                  solo=True)
        except UnknownCaller:
            return None
        try:
            assert tx.user is not None
            caller = from_row(User, tx.user)
            data = await compiled.execute(plan, compiled.Request(
                tx, caller, variables, {caller.id: caller}))
        except BaseException as exc:
            await tx.rollback()
            if not isinstance(exc, Exception):
                raise
            if not isinstance(exc, compiled.Decline):
                # A bug in the compiler, not a refusal: the reference still answers.
                self.compiled_failed += 1
                log.exception("compiled execution failed [request %s]", request_id)
            return None  # the reference path answers, errors and all
        await tx.commit()
        self.served += 1
        self.compiled_served += 1
        response = Response(jsontext.dumps({"data": data}), media_type="application/json")
        response.headers["X-Request-Id"] = request_id
        return response


__all__ = ["FastQueries", "GraphQLError", "Prepared", "RecordPrepared"]
