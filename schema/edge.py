"""HTTP GraphQL request shapes (POST bodies, GET parameters, WebSocket messages) checked
before Strawberry: a 4xx JSON error (or a 4400 close) with a code, never a 500."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLFormattedError,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    Visitor,
    parse,
    visit,
)

from domain.shared import jsontext
from domain.shared.limits import MAX_JSON_DEPTH as MAX_VALUE_DEPTH
from domain.shared.limits import bad_text

# Twice a value's depth: a too-deep config reaches the domain, which names where it is.
MAX_JSON_DEPTH = 2 * MAX_VALUE_DEPTH
MAX_BODY_BYTES = 2_000_000  # a config may hold 256 kB; escapes can multiply that by six


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


_bad_text = bad_text


def bad_string_path(value: Any, path: str = "variables") -> str | None:
    """The path of the first string (or key) PostgreSQL would refuse: NUL or a lone surrogate."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str) and _bad_text(item):
            return where
        if isinstance(item, dict):
            for key, inner in item.items():
                if _bad_text(key):
                    return where
                stack.append((inner, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((inner, f"{where}.{i}") for i, inner in enumerate(item))
    return None


def _string_literals(document: DocumentNode) -> list[StringValueNode]:
    found: list[StringValueNode] = []

    class Collect(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
            found.append(node)

    visit(document, Collect())
    return found


def parse_body(raw: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """The POST body as a GraphQL request, or why it cannot be one (parsed once, by
    domain.shared.jsontext; the standard library only to explain a refusal)."""
    try:
        body = jsontext.loads(raw)
    except (ValueError, RecursionError):
        return _refused(raw), None
    if not isinstance(body, dict):
        return "the request body must be a JSON object with a query", None
    return request_problem(body), body


def body_problem(raw: bytes) -> str | None:
    """Why this POST body cannot be a GraphQL request, or None when it may be one."""
    return parse_body(raw)[0]


def _refused(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "the request body is not valid UTF-8"
    try:
        body = json.loads(text)
    except RecursionError:
        return f"the request body is nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError:
        return "the request body is not JSON"
    if not isinstance(body, dict):
        return "the request body must be a JSON object with a query"
    if _too_deep(body):  # orjson stops at 1024 levels
        return f"the request body is nested deeper than {MAX_JSON_DEPTH} levels"
    return request_problem(body) or "the request body is not JSON"  # lone surrogates


def params_problem(params: Mapping[str, str]) -> str | None:
    """Why these GET query parameters cannot be a GraphQL request (the same checks as POST;
    `variables` and `extensions` are JSON text; only queries)."""
    body: dict[str, Any] = {"query": params.get("query"),
                            "operationName": params.get("operationName")}
    for name in ("variables", "extensions"):
        if name in params:
            try:
                body[name] = json.loads(params[name])
            except RecursionError:
                return f"{name} is nested deeper than {MAX_JSON_DEPTH} levels"
            except ValueError:
                return f"{name} is not JSON"
    if _bad_text(body["query"] or "") or _bad_text(body["operationName"] or ""):
        return "query: NUL characters and lone surrogates are not accepted"
    return request_problem(body, read_only=True)


def request_problem(body: dict[str, Any], *, read_only: bool = False) -> str | None:
    """Why a decoded body cannot be a GraphQL request, or None when it may be one."""
    if _too_deep(body):
        return f"the request body is nested deeper than {MAX_JSON_DEPTH} levels"
    query, name = body.get("query"), body.get("operationName")
    if not isinstance(query, str):
        return "query must be a string"
    if name is not None and not isinstance(name, str):
        return "operationName must be a string"
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return "variables must be a JSON object"
    extensions = body.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        return "extensions must be a JSON object"
    bad = bad_string_path(variables) or bad_string_path(query, "query")
    if bad is not None:
        return f"{bad}: NUL characters and lone surrogates are not accepted"
    if len(query) > CACHED_DOCUMENT:  # checked each time, never kept in the cache
        return _document_problem.__wrapped__(query, name, read_only)
    return _document_problem(query, name, read_only)


# Documents up to this many characters have their checks cached (1,024 of them at most):
# a client's documents are a few kB; a huge one (comments and whitespace cost no tokens)
# must not pin its text in memory.
CACHED_DOCUMENT = 16_384


@lru_cache(maxsize=1024)
def _document_problem(query: str, name: str | None, read_only: bool) -> str | None:
    """The checks that need the parsed document, once per distinct document text."""
    try:
        document = parse(query)
    except (GraphQLError, RecursionError):
        return None  # Strawberry reports syntax errors itself
    literals = [node.value for node in _string_literals(document)]
    if bad_string_path(literals, "query") is not None:
        return "a string literal: NUL characters and lone surrogates are not accepted"
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None and len(operations) > 1:
        return "the document has several operations: operationName is required"
    chosen = [d for d in operations if name is None or (d.name and d.name.value == name)]
    if name is not None and not chosen:
        return f"the document has no operation named {name[:100]!r}"
    if read_only and any(d.operation != OperationType.QUERY for d in chosen):
        return "only queries may be sent with GET: POST mutations and use WebSocket for " \
            "subscriptions"
    return None


def message_problem(message: Any) -> str | None:
    """Why a WebSocket message is not a protocol message at all (the socket is closed 4400)."""
    if not isinstance(message, dict):
        return "a WebSocket message must be a JSON object"
    if not isinstance(message.get("type"), str):
        return "a WebSocket message needs a string type"
    if message["type"] in ("subscribe", "start", "stop", "complete") and not isinstance(
            message.get("id"), str):
        return "this message needs a string id"
    return None


def operation_problem(payload: Any) -> str | None:
    """Why a subscribe/start payload cannot be run (answered as that operation's error)."""
    if not isinstance(payload, dict):
        return "the payload must be a JSON object with a query"
    return request_problem(payload)


def syntax_error(payload: Any, *, max_tokens: int) -> GraphQLFormattedError | None:
    """A subscribe/start payload's document that does not parse, as the error to answer
    with. Over HTTP Strawberry reports it; over WebSocket its stream lets the parser's error
    escape and only completes the operation, telling the client nothing."""
    query = payload.get("query") if isinstance(payload, dict) else None
    if not isinstance(query, str):
        return None
    if len(query) <= CACHED_DOCUMENT:
        return _syntax_error(query, max_tokens)
    return _syntax_error.__wrapped__(query, max_tokens)


@lru_cache(maxsize=1024)
def _syntax_error(query: str, max_tokens: int) -> GraphQLFormattedError | None:
    try:
        parse(query, max_tokens=max_tokens)
    except GraphQLError as error:
        formatted = error.formatted
        return {**formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}
    except RecursionError:
        return {"message": "Syntax Error: the document is nested too deeply.",
                "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}
    return None


def decode_message(data: str | bytes) -> object:
    """A WebSocket message as JSON (RFC 8259, as orjson reads bodies: no NaN or Infinity);
    too large or too deep reads as not JSON, and the socket is closed 4400."""
    if len(data) > MAX_BODY_BYTES:
        raise json.JSONDecodeError(f"messages may hold {MAX_BODY_BYTES // 1_000_000} MB", "", 0)
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", "",
                                   0) from None


def _no_constant(name: str) -> object:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)



_PROCESS = os.urandom(8).hex()
_SEQUENCE = itertools.count(1)


def request_id(headers: Mapping[str, str]) -> str:
    """The client's X-Request-Id, else a new one: this process's random prefix and a
    sequence number (unique like a uuid4, a fraction of its cost on every request)."""
    return headers.get("x-request-id") or f"{_PROCESS}{next(_SEQUENCE):016x}"
