"""A local fake of Anthropic's Messages API, for tests and offline demos.

It speaks the real wire format of `POST /v1/messages` (JSON replies, SSE streams, tool_use
blocks, usage with cache fields, the JSON error shape with 429/529/500 and `retry-after`), so
the real SDK talks to it by `ANTHROPIC_BASE_URL`. Tests script it over HTTP:

- `POST /_fake/script` queues responses (a JSON object or a list of them, fields in
  `Scripted` below); a request takes the first queued one whose `match` is in its
  system+messages text (or that has no `match`). Answers `{"ids": [...]}`.
- `GET /_fake/script` lists what is still queued; `POST /_fake/reset` clears queue and log.
- `GET /_fake/calls` answers `{"calls": [...]}`: every request received, in order.

With nothing queued for a request the reply is deterministic (the offline demo): a tool_use
when `tool_choice` forces one, or when a tool is offered whose name appears in the last user
message (its required inputs filled from the schema); after a tool_result, a sentence quoting
it; otherwise "Fake reply to: <the last user message>". Usage counts words as tokens.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
               529: "overloaded_error"}
STATUSES = {kind: status for status, kind in ERROR_TYPES.items()}
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens")
WORDS_PER_DELTA = 3


@dataclass
class ScriptedError:
    status: int
    type: str
    message: str
    retry_after: float | None = None  # seconds, sent as `retry-after` (floats are honoured)
    mid_stream: bool = False  # streams only: a 200 whose SSE carries `event: error`
    after_deltas: int = 0  # mid_stream: text deltas sent before the error event
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Scripted:
    """One queued response; it serves `times` matching requests, then leaves the queue."""

    id: int
    match: str | None = None
    times: int = 1
    text: str | None = None  # None: the default reply's text (unless tool_use is given)
    chunks: int | None = None  # streamed text deltas (default: one per three words)
    tool_use: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "input", "id"?}]
    stop_reason: str | None = None  # default: "tool_use" with tools, else "end_turn"
    usage: dict[str, int] = field(default_factory=dict)  # overrides any of USAGE_FIELDS
    model: str | None = None  # default: the request's model
    delay: float = 0.0  # seconds before the response headers (client timeouts)
    delta_delay: float = 0.0  # seconds between streamed events
    stall: float = 0.0  # streams: seconds to hang after `stall_after` deltas
    stall_after: int = 1
    error: ScriptedError | None = None
    body: str | None = None  # non-streaming requests: a 200 with exactly this body
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def _number(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    return float(value)


def _count(raw: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = raw.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{key} must be a non-negative integer")
    return value


def _error(raw: Any) -> ScriptedError:
    if not isinstance(raw, dict):
        raise ValueError("error must be an object")
    unknown = set(raw) - {"status", "type", "message", "retry_after", "mid_stream",
                          "after_deltas", "headers"}
    if unknown:
        raise ValueError(f"unknown error fields: {sorted(unknown)}")
    status = raw.get("status") or STATUSES.get(raw.get("type", ""), 500)
    kind = raw.get("type") or ERROR_TYPES.get(status, "api_error")
    retry_after = raw.get("retry_after")
    return ScriptedError(
        status=int(status), type=str(kind), message=str(raw.get("message", kind)),
        retry_after=None if retry_after is None else _number(raw, "retry_after", 0),
        mid_stream=bool(raw.get("mid_stream", False)),
        after_deltas=_count(raw, "after_deltas", 0) or 0,
        headers={str(k): str(v) for k, v in (raw.get("headers") or {}).items()})


def parse_scripted(raw: Any, *, id: int) -> Scripted:
    """A queued response from its JSON; a ValueError names the first thing wrong."""
    if not isinstance(raw, dict):
        raise ValueError("each scripted response must be an object")
    unknown = set(raw) - {"match", "times", "text", "chunks", "tool_use", "stop_reason", "usage",
                          "model", "delay", "delta_delay", "stall", "stall_after", "error",
                          "body"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    tools = raw.get("tool_use") or []
    tools = [tools] if isinstance(tools, dict) else tools
    if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise ValueError("tool_use must be {name, input, id?} or a list of them")
    usage = raw.get("usage") or {}
    if set(usage) - set(USAGE_FIELDS) or not all(isinstance(v, int) for v in usage.values()):
        raise ValueError(f"usage takes integer {', '.join(USAGE_FIELDS)}")
    for key in ("match", "text", "stop_reason", "model", "body"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ValueError(f"{key} must be a string")
    return Scripted(
        id=id, match=raw.get("match"), times=_count(raw, "times", 1) or 1, text=raw.get("text"),
        chunks=_count(raw, "chunks", None), tool_use=tools, stop_reason=raw.get("stop_reason"),
        usage=dict(usage), model=raw.get("model"), delay=_number(raw, "delay", 0),
        delta_delay=_number(raw, "delta_delay", 0), stall=_number(raw, "stall", 0),
        stall_after=_count(raw, "stall_after", 1) or 0,
        error=None if raw.get("error") is None else _error(raw["error"]), body=raw.get("body"),
        raw=raw)


# ---- reading a request ----------------------------------------------------------------------


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_use":
        return json.dumps(block.get("input", {}))
    if block.get("type") == "tool_result":
        return _content_text(block.get("content", ""))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(_block_text(block) for block in content)
    return _block_text(content)


def request_text(body: Mapping[str, Any]) -> str:
    """The system prompt and every message's text: what `match` is tested against."""
    parts = [_content_text(body.get("system", ""))]
    parts += [_content_text(message.get("content", "")) for message in body.get("messages", [])]
    return "\n".join(part for part in parts if part)


def _tool_ids(message: Mapping[str, Any], kind: str, key: str) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [str(b.get(key)) for b in content if isinstance(b, dict) and b.get("type") == kind]


def request_problem(body: Any) -> str | None:
    """What the real API would refuse with a 400, for the mistakes a caller is likely to make."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    tokens = body.get("max_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        return "max_tokens: must be a positive integer"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: must be 'user' or 'assistant'"
        if not isinstance(message.get("content"), str | list):
            return f"messages.{index}.content: must be a string or a list of blocks"
        asked = _tool_ids(message, "tool_use", "id")
        following = messages[index + 1] if index + 1 < len(messages) else None
        if asked and following is not None:
            missing = set(asked) - set(_tool_ids(following, "tool_result", "tool_use_id"))
            if missing:
                return (f"messages.{index + 1}: tool_use ids without tool_result blocks "
                        f"immediately after: {sorted(missing)}")
        answered = _tool_ids(message, "tool_result", "tool_use_id")
        previous = messages[index - 1] if index else {}
        if answered and set(answered) - set(_tool_ids(previous, "tool_use", "id")):
            return (f"messages.{index}: tool_result for a tool_use id that is not in the "
                    "previous message")
    for sampling in ("temperature", "top_p", "top_k"):
        if sampling in body:  # as the API version the current SDK sends answers them
            return f"{sampling}: is not supported by this model"
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("name") for t in tools):
        return "tools: each tool needs a name"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in {
            t["name"] for t in tools}:
        return "tool_choice.name: not one of the tools"
    return None


# ---- composing a reply ----------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def _example(schema: Mapping[str, Any], text: str) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    return {"string": text, "integer": 1, "number": 1, "boolean": True, "array": [],
            "object": {}}.get(str(schema.get("type")), text)


def default_reply(body: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The deterministic answer (text, tool uses) when nothing scripted matches."""
    messages = body.get("messages") or [{}]
    last = messages[-1]
    said = _content_text(last.get("content", "")).strip()
    snippet = said if len(said) <= 200 else said[:197] + "..."
    if _tool_ids(last, "tool_result", "tool_use_id"):
        return f"Fake reply: the tool returned {snippet}", []
    tools = {t["name"]: t for t in body.get("tools") or []}
    choice = body.get("tool_choice") or {}
    wanted = None
    if choice.get("type") != "none" and last.get("role") == "user":
        named = [name for name in tools if name in said]
        wanted = choice.get("name") if choice.get("type") == "tool" else (named or [None])[0]
        if wanted is None and choice.get("type") == "any" and tools:
            wanted = next(iter(tools))
    if wanted is None:
        return f"Fake reply to: {snippet}", []
    schema = tools[wanted].get("input_schema") or {}
    properties = schema.get("properties") or {}
    arguments = {name: _example(properties.get(name) or {}, snippet)
                 for name in schema.get("required") or []}
    return "", [{"name": wanted, "input": arguments}]


@dataclass
class Reply:
    id: str
    model: str
    text: str
    tools: list[dict[str, Any]]  # {"id", "name", "input"}
    stop_reason: str
    usage: dict[str, int]

    def content(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text}] if self.text else []
        return blocks + [{"type": "tool_use", **tool} for tool in self.tools]

    def message(self, *, streaming: bool = False) -> dict[str, Any]:
        usage = dict(self.usage, output_tokens=1) if streaming else self.usage
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [] if streaming else self.content(),
                "stop_reason": None if streaming else self.stop_reason, "stop_sequence": None,
                "usage": usage}


def _even(items: str | list[str], parts: int) -> list[str]:
    """`items` cut into `parts` consecutive runs whose lengths differ by at most one."""
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        runs.append("".join(items[start:end]))
        start = end
    return runs


def _split(text: str, chunks: int | None) -> list[str]:
    """Streamed pieces that concatenate to `text` exactly, cut between words when possible."""
    if not text:
        return []
    words = re.findall(r"\S+\s*|\s+", text)  # each word with the spaces after it
    if chunks is None:
        return _even(words, -(-len(words) // WORDS_PER_DELTA))
    if chunks <= len(words):
        return _even(words, chunks)
    return _even(text, min(chunks, len(text)))


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": request_id}


async def _client_left(request: Request, seconds: float) -> bool:
    """Wait `seconds`, or less if the client hangs up first (then True)."""
    try:
        async with asyncio.timeout(seconds):
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


class FakeMessagesAPI:
    """The fake's state (queue, call log) and its endpoints."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.queue: list[Scripted] = []
        self.calls: list[dict[str, Any]] = []
        self.scripted_ids = 0
        self.message_ids = 0

    def take(self, text: str) -> Scripted | None:
        # No await between finding and consuming: concurrent requests cannot share an entry.
        for entry in self.queue:
            if entry.match is None or entry.match in text:
                entry.times -= 1
                if entry.times <= 0:
                    self.queue.remove(entry)
                return entry
        return None

    def _reply(self, body: Mapping[str, Any], entry: Scripted | None) -> Reply:
        self.message_ids += 1
        text, tools = default_reply(body)
        if entry is not None and (entry.text is not None or entry.tool_use):
            text, tools = entry.text or "", entry.tool_use
        tools = [{"id": tool.get("id") or f"toolu_fake_{self.message_ids:04d}_{index}",
                  "name": tool["name"], "input": tool.get("input") or {}}
                 for index, tool in enumerate(tools)]
        prompt = request_text(body) + (json.dumps(body["tools"]) if body.get("tools") else "")
        usage = {"input_tokens": max(1, _words(prompt)), "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0,
                 "output_tokens": max(1, _words(text) + sum(_words(json.dumps(t["input"]))
                                                            for t in tools))}
        usage.update(entry.usage if entry else {})
        stop = (entry.stop_reason if entry else None) or ("tool_use" if tools else "end_turn")
        return Reply(id=f"msg_fake_{self.message_ids:06d}",
                     model=(entry.model if entry else None) or str(body["model"]), text=text,
                     tools=tools, stop_reason=stop, usage=usage)

    async def messages(self, request: Request) -> Response:
        """POST /v1/messages."""
        request_id = f"req_fake_{len(self.calls) + 1:06d}"
        headers = {"request-id": request_id}
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = request_problem(body)
        call: dict[str, Any] = {"n": len(self.calls) + 1, "status": 400, "script_id": None}
        if isinstance(body, dict):
            call.update({key: body.get(key) for key in (
                "model", "system", "messages", "tools", "tool_choice", "max_tokens")},
                        stream=bool(body.get("stream")))
        retries = request.headers.get("x-stainless-retry-count")
        call["retry_count"] = int(retries) if retries and retries.isdigit() else None
        self.calls.append(call)
        if problem is not None or not isinstance(body, dict):
            return JSONResponse(_error_body("invalid_request_error", problem or "", request_id),
                                status_code=400, headers=headers)
        entry = self.take(request_text(body))
        call["script_id"] = entry.id if entry else None
        if entry and entry.delay and await _client_left(request, entry.delay):
            call["status"] = 499  # nginx's "client closed request": nobody read an answer
            return Response(status_code=499)
        error = entry.error if entry else None
        streaming = bool(body.get("stream"))
        if error is not None and not (error.mid_stream and streaming):
            call["status"] = error.status
            headers.update(error.headers)
            if error.retry_after is not None:
                headers["retry-after"] = f"{error.retry_after:g}"
            return JSONResponse(_error_body(error.type, error.message, request_id),
                                status_code=error.status, headers=headers)
        call["status"] = 200
        if entry is not None and entry.body is not None and not streaming:
            return Response(entry.body, media_type="application/json", headers=headers)
        reply = self._reply(body, entry)
        if not streaming:
            return JSONResponse(reply.message(), headers=headers)
        return StreamingResponse(self._events(reply, entry, request_id),
                                 media_type="text/event-stream", headers=headers)

    async def _events(self, reply: Reply, entry: Scripted | None,
                      request_id: str) -> AsyncIterator[bytes]:
        """The SSE of one message, in the order the real API sends it."""
        pause = entry.delta_delay if entry else 0.0
        deltas = 0

        async def delta(index: int, payload: dict[str, Any]) -> bytes:
            nonlocal deltas
            deltas += 1
            if entry and entry.stall and deltas == entry.stall_after + 1:
                await asyncio.sleep(entry.stall)  # cancelled when the client hangs up
            elif pause:
                await asyncio.sleep(pause)
            return _sse("content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": payload})

        yield _sse("message_start", {"type": "message_start",
                                     "message": reply.message(streaming=True)})
        error = entry.error if entry else None
        blocks = reply.content() or [{"type": "text", "text": ""}]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                if index == 0:
                    yield _sse("ping", {"type": "ping"})
                for piece in _split(block["text"], entry.chunks if entry else None):
                    if error is not None and deltas >= error.after_deltas:
                        break
                    yield await delta(index, {"type": "text_delta", "text": piece})
            else:
                start = dict(block, input={})
                yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": start})
                if index == 0:
                    yield _sse("ping", {"type": "ping"})
                encoded = json.dumps(block["input"])
                for piece in ["", *_even(encoded, max(1, len(encoded) // 12))]:
                    yield await delta(index, {"type": "input_json_delta", "partial_json": piece})
            if error is not None:  # the stream breaks off inside the block, as it does for real
                yield _sse("error", _error_body(error.type, error.message, request_id))
                return
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield _sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply.stop_reason,
                                               "stop_sequence": None},
                                     "usage": reply.usage})
        yield _sse("message_stop", {"type": "message_stop"})

    async def script(self, request: Request) -> Response:
        """POST /_fake/script: queue one response (an object) or several (a list)."""
        try:
            raw = await request.json()
            items = raw if isinstance(raw, list) else [raw]
            entries = []
            for item in items:
                self.scripted_ids += 1
                entries.append(parse_scripted(item, id=self.scripted_ids))
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        self.queue.extend(entries)
        return JSONResponse({"ids": [entry.id for entry in entries]})

    async def pending(self, request: Request) -> Response:
        """GET /_fake/script: what is still queued, with the uses left."""
        return JSONResponse({"pending": [dict(entry.raw, id=entry.id, times=entry.times)
                                         for entry in self.queue]})

    async def clear(self, request: Request) -> Response:
        """POST /_fake/reset."""
        self.reset()
        return JSONResponse({"ok": True})

    async def log(self, request: Request) -> Response:
        """GET /_fake/calls."""
        return JSONResponse({"calls": self.calls})


def create_app() -> Starlette:
    """A fresh fake with an empty queue and call log."""
    fake = FakeMessagesAPI()
    return Starlette(routes=[
        Route("/v1/messages", fake.messages, methods=["POST"]),
        Route("/_fake/script", fake.script, methods=["POST"]),
        Route("/_fake/script", fake.pending, methods=["GET"]),
        Route("/_fake/reset", fake.clear, methods=["POST"]),
        Route("/_fake/calls", fake.log, methods=["GET"]),
    ])
