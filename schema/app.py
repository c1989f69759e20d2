"""The Starlette application: /graphql (HTTP + WebSocket), /graphiql/ (the IDE's assets),
/healthz, /readyz."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

from graphql import GraphQLError, GraphQLFormattedError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage as TransportError,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message as TransportMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage,
    OperationMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as LegacyError
from strawberry.types.execution import ExecutionResult, PreExecutionError

from domain.auth import tokens
from domain.live.broker import Broker
from domain.shared import heap, jsontext
from domain.shared import repository as health
from domain.shared.db import Database, UnknownCaller
from domain.shared.migrate import head_revision
from domain.shared.settings import Settings
from schema import edge
from schema.context import Context
from schema.extensions import coded
from schema.fast import FastQueries, Prepared
from schema.schema import build_schema

log = logging.getLogger("stepwise.http")

# GraphiQL without a CDN: Strawberry's page pointed at the same files, vendored from the
# npm registry (scripts/vendor_graphiql.py, schema/static/graphiql/SOURCES.md).
GRAPHIQL_PAGE = (Path(__file__).parent / "graphiql.html").read_text()
GRAPHIQL_ASSETS = Path(__file__).parent / "static" / "graphiql"


def _unauthorized(reason: str) -> JSONResponse:
    body = {"errors": [{"message": reason, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


# An invalid or expired token closes the socket with 4403 on both protocols: the npm
# graphql-ws client gives up for good on 4401 but retries 4403 (re-evaluating a
# `connectionParams` function, so a refreshed token gets in). See README "Live runs".
TOKEN_REFUSED = 4403


def _max_tokens(view: Any) -> int:
    return int(view.settings.max_tokens)


def _bad_request(reason: str) -> GraphQLFormattedError:
    return GraphQLError(reason, extensions={"code": "BAD_REQUEST"}).formatted


class TransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with the HTTP edge's checks: a message that is not an object
    closes 4400 (Strawberry would crash on it); a bad subscribe payload (NUL, several
    operations, not a query) is that operation's error, never a server error."""

    async def handle_message(self, message: TransportMessage) -> None:
        problem = edge.message_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "subscribe" and self.connection_acknowledged:
            reason = edge.operation_problem(message.get("payload"))
            if reason is not None:
                await self.send_message(TransportError(id=message["id"], type="error",
                                                       payload=[_bad_request(reason)]))
                return
            syntax = edge.syntax_error(message["payload"], max_tokens=_max_tokens(self.view))
            if syntax is not None:
                await self.send_message(TransportError(id=message["id"], type="error",
                                                       payload=[syntax]))
                return
        await super().handle_message(message)


class LegacyGraphQLWS(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol with the same refusal as graphql-transport-ws.

    Strawberry answers a refused connection_init with connection_error and closes 1011
    ("internal error"); a bad token is not a server error. Messages get the edge's checks
    (what is not JSON at all is ignored, as the legacy protocol does).
    """

    async def handle_message(self, message: OperationMessage) -> None:
        problem = edge.message_problem(message)
        if problem is not None:
            await self.websocket.close(code=4400, reason=problem)
            return
        if message["type"] == "start" and self.connection_acknowledged:
            reason = edge.operation_problem(message.get("payload"))
            if reason is not None:
                await self.send_message(LegacyError(type="error", id=message["id"],
                                                    payload=_bad_request(reason)))
                return
            syntax = edge.syntax_error(message["payload"], max_tokens=_max_tokens(self.view))
            if syntax is not None:
                await self.send_message(LegacyError(type="error", id=message["id"],
                                                    payload=syntax))
                return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await self.send_message({"type": "connection_error"})
            await self.websocket.close(code=TOKEN_REFUSED, reason="Forbidden")
            return
        self.context.connection_params = payload
        try:
            await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as e:
            await self.send_message({"type": "connection_error", "payload": e.payload})
            await self.websocket.close(code=TOKEN_REFUSED, reason="Forbidden")
            return
        await super().handle_connection_init(message)

    async def handle_async_results(self, operation_id: str, query: str,
                                   operation_name: str | None,
                                   variables: dict[str, object] | None) -> None:
        """Queries and mutations too: Strawberry's legacy handler sends every operation to
        `schema.subscribe`, which refuses a query (masked as INTERNAL_SERVER_ERROR).
        `schema.stream` runs any operation, as graphql-transport-ws does."""
        try:
            result_source = await self.schema.stream(
                query, variable_values=variables, operation_name=operation_name,
                context_value=self.context, root_value=self.root_value)
            first = True
            async with aclosing(result_source):
                async for result in result_source:
                    if first and isinstance(result, PreExecutionError):
                        assert result.errors
                        await self.send_message({"type": "error", "id": operation_id,
                                                 "payload": result.errors[0].formatted})
                        return
                    if not isinstance(result, ExecutionResult):
                        await self.send_message({"type": "error", "id": operation_id,
                                                 "payload": {"message": "not supported"}})
                        return
                    await self.send_data_message(result, operation_id)
                    first = False
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


class StepwiseGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with the typed context and token checks on WebSocket."""

    graphql_ws_handler_class = LegacyGraphQLWS
    graphql_transport_ws_handler_class = TransportWS

    def __init__(self, settings: Settings, **options: Any) -> None:
        prepared = None if settings.reference_execution else Prepared()
        schema = build_schema(max_depth=settings.max_query_depth,
                              max_aliases=settings.max_aliases, max_tokens=settings.max_tokens,
                              prepared=prepared, reference=settings.reference_execution)
        # Queries Strawberry has validated once run on the fast path after (schema.fast).
        self.fast = None if prepared is None else FastQueries(schema, prepared, settings)
        super().__init__(
            schema,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            allowed_origins=settings.cors_origins,
            max_subscriptions_per_connection=20,
            keep_alive=True,
            keep_alive_interval=15,
            **options,
        )
        self.settings = settings

    def encode_json(self, data: object) -> str:
        """Responses and WebSocket messages encoded by orjson (text: WebSocket messages go
        out as text frames); the standard library only for values orjson does not know."""
        return jsontext.dumps(data).decode()

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(GRAPHIQL_PAGE)

    def decode_json(self, data: str | bytes) -> object:
        return edge.decode_message(data)

    async def process_result(self, request: Request, result: ExecutionResult
                             ) -> GraphQLHTTPResponse:
        if result.errors:  # (a syntax error never met the extensions: schema.extensions)
            result.errors = [coded(error) for error in result.errors]
        return await super().process_result(request, result)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        request_id = edge.request_id(request.headers)
        if isinstance(response, Response):
            response.headers["X-Request-Id"] = request_id
        return Context(
            request=request,
            response=response,
            db=request.app.state.db,
            settings=self.settings,
            request_id=request_id,
            principal=request.scope.get("stepwise.principal"),
        )

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        try:
            principal = tokens.from_header(
                header if isinstance(header, str) else None, secret=self.settings.jwt_secret
            )
        except tokens.InvalidToken as exc:
            raise ConnectionRejectionError({"reason": "unauthenticated"}) from exc
        try:  # the user must still exist (each operation checks again)
            async with context.db.transaction(principal.tenant_id, user_id=principal.user_id,
                                              read_only=True):
                pass
        except UnknownCaller as exc:
            raise ConnectionRejectionError({"reason": "unauthenticated"}) from exc
        context.principal = principal
        return None


VERIFIED_TOKENS = 4096  # distinct bearer headers remembered as verified (oldest out)


class TokenGate:
    """HTTP requests need a valid bearer token, except the GraphiQL page itself."""

    def __init__(self, app: StepwiseGraphQL, *, secret: str) -> None:
        self.app = app
        self.secret = secret
        self.fast = app.fast
        # Verified headers, by their exact text: a client sends the same token many times and
        # its HMAC check costs more than a small query's execution. Expiry is still checked
        # on every request (an expired token is verified again, and refused).
        self._verified: OrderedDict[str, tokens.Principal] = OrderedDict()

    def _principal(self, header: str | None) -> tokens.Principal:
        if header is not None:
            known = self._verified.get(header)
            if known is not None and not known.expired():
                return known
        principal = tokens.from_header(header, secret=self.secret)
        if header is not None:
            self._verified[header] = principal
            if len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        is_ide = request.method == "GET" and "query" not in request.query_params
        principal = None
        if not is_ide:
            try:
                principal = self._principal(request.headers.get("authorization"))
            except tokens.InvalidToken:
                await _unauthorized("a valid bearer token is required")(scope, receive, send)
                return
            scope["stepwise.principal"] = principal
        if request.method == "GET" and not is_ide:
            reason = edge.params_problem(request.query_params)
            if reason is not None:
                await _refuse(400, "BAD_REQUEST", reason)(scope, receive, send)
                return
        elif request.method == "POST":
            if "json" not in request.headers.get("content-type", "application/json"):
                await _refuse(415, "UNSUPPORTED_MEDIA_TYPE",
                              "send the request as application/json")(scope, receive, send)
                return
            raw = await _read_at_most(request, edge.MAX_BODY_BYTES)
            if raw is None:
                await _refuse(413, "PAYLOAD_TOO_LARGE", "a request body may hold "
                              f"{edge.MAX_BODY_BYTES // 1_000_000} MB")(scope, receive, send)
                return
            problem, body = edge.parse_body(raw)
            if problem is not None:
                await _refuse(400, "BAD_REQUEST", problem)(scope, receive, send)
                return
            if self.fast is not None and body is not None and principal is not None:
                response = await self.fast.respond(body, request, principal)
                if response is not None:
                    await response(scope, receive, send)
                    return
            receive = _replay(raw)
        await self.app(scope, receive, send)


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]},
                        status_code=status)


async def _read_at_most(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes (never buffered whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(raw: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    return receive  # type: ignore[return-value]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    db: Database = request.app.state.db
    expected = request.app.state.head_revision
    try:
        async with db.transaction(None, read_only=True) as tx:
            current = await health.migration_revision(tx.connection)
    except Exception:
        log.exception("readiness check failed")
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != expected:
        return JSONResponse({"status": "unavailable", "migrations": current, "expected": expected},
                            status_code=503)
    return JSONResponse({"status": "ready", "migrations": current})


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app; DATABASE_URL unset means the embedded database (started if needed)."""
    if settings is None:
        from domain.shared.embedded import ensure_database

        settings = Settings.from_env(database_url=ensure_database())
    resolved = settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.db = Database(resolved.app_database_url, pool_size=resolved.pool_size)
        app.state.head_revision = head_revision()
        # One LISTEN connection per process, outside the pool (domain.live.broker).
        app.state.broker = Broker(resolved.listener_dsn)
        await app.state.broker.start()
        heap.settle()  # start-up's objects frozen out of the collector's sight
        try:
            yield
        finally:
            await app.state.broker.stop()
            await app.state.db.dispose()

    graphql = StepwiseGraphQL(resolved)
    middleware = []
    if resolved.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware,
            allow_origins=resolved.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            expose_headers=["X-Request-Id"],
            max_age=600,
        ))
    application = Starlette(
        routes=[
            Route("/graphql", TokenGate(graphql, secret=resolved.jwt_secret),
                  methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Mount("/graphiql", StaticFiles(directory=GRAPHIQL_ASSETS), name="graphiql"),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    application.state.fast = graphql.fast
    return application
