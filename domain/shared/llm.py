"""The one LLM client: Anthropic's Messages API through its SDK, with errors in our own terms.

Every feature that talks to a model (llm steps, chat, query steps, workflow generation) calls
`complete` or `stream` here. Tests and offline demos point the same SDK at the local fake
(`scripts/fake_llm.py`) with ANTHROPIC_BASE_URL; nothing here knows which one it talks to.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import orjson

from domain.shared.errors import DomainError
from domain.shared.settings import Settings

if TYPE_CHECKING:  # `import anthropic` costs over a second: only callers that talk to a model pay
    from anthropic import AsyncAnthropic

log = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, Any]]
"""Messages API `messages`: `{"role": "user" | "assistant", "content": str | [blocks]}`."""

# No `temperature` (nor top_p/top_k): SDK 1.0 dropped them from its signature and the API
# version this SDK sends (2026-10-21) answers them with a 400 on current models.


# ---- errors ---------------------------------------------------------------------------------


class LLMError(DomainError):
    """The model could not answer. Messages are ours: no SDK text, status lines or request ids."""

    code = "LLM_UNAVAILABLE"
    retryable = True
    default_message = "the language model is unavailable; try again later"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message or self.default_message)
        self.retry_after = retry_after


class LLMRateLimited(LLMError):
    code = "LLM_RATE_LIMITED"
    default_message = "the language model is rate limited; try again shortly"


class LLMOverloaded(LLMError):
    code = "LLM_OVERLOADED"
    default_message = "the language model is overloaded; try again shortly"


class LLMUnavailable(LLMError):
    code = "LLM_UNAVAILABLE"


class LLMTimeout(LLMError):
    code = "LLM_TIMEOUT"
    default_message = "the language model did not answer in time"


class LLMBadRequest(LLMError):
    """The request itself was refused (too long, malformed): retrying it cannot help."""

    code = "LLM_BAD_REQUEST"
    retryable = False
    default_message = "the language model refused the request"


# The API's error `type` says more than the status (a mid-stream error arrives on a 200).
_BY_TYPE: dict[str, type[LLMError]] = {
    "rate_limit_error": LLMRateLimited,
    "overloaded_error": LLMOverloaded,
    "timeout_error": LLMTimeout,
    "api_error": LLMUnavailable,
    "invalid_request_error": LLMBadRequest,
    "request_too_large": LLMBadRequest,
}


def _by_status(status: int) -> type[LLMError]:
    if status == 429:
        return LLMRateLimited
    if status == 529:
        return LLMOverloaded
    if status in (408, 504):
        return LLMTimeout
    if status in (400, 413, 422):
        return LLMBadRequest
    # 401/403/404 and 5xx: a configuration or service problem the caller cannot fix
    return LLMUnavailable


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _translate(error: BaseException) -> LLMError | None:
    """Our error for an SDK or transport failure, or None when it is not one (a bug: re-raise)."""
    import anthropic
    import httpx2  # the SDK's transport; a stream that stalls or drops raises its errors raw

    if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
        return LLMTimeout()
    if isinstance(error, anthropic.APIStatusError):
        kind = _BY_TYPE.get(error.type or "") or _by_status(error.status_code)
        log.warning("LLM call failed: status=%s type=%s request_id=%s", error.status_code,
                    error.type, error.request_id)
        return kind(retry_after=_retry_after(error.response.headers))
    if isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
        log.warning("LLM call failed: %s", type(error).__name__)
        return LLMUnavailable()
    if isinstance(error, TypeError) and "authentication" in str(error):
        log.warning("LLM call failed: no API key (set ANTHROPIC_API_KEY)")
        return LLMUnavailable("the language model is not configured")
    if isinstance(error, anthropic.AnthropicError):
        log.warning("LLM call failed: %s", type(error).__name__)
        return LLMUnavailable()
    return None


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True)
class ToolUse:
    """The model asks for a tool; answer with `tool_result(id, ...)` in the next user message."""

    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed text; the pieces concatenate to `Completion.text`."""

    text: str


@dataclass(frozen=True)
class Completion:
    """One model turn: its text, the tools it asked for, why it stopped, what it cost."""

    text: str
    tool_uses: tuple[ToolUse, ...]
    stop_reason: str | None
    model: str
    usage: Usage
    # The assistant turn as sent back in the next request (text and tool_use blocks in order).
    content: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)

    def assistant_message(self) -> dict[str, Any]:
        """This turn as the `assistant` message of a follow-up request (a tool loop)."""
        return {"role": "assistant", "content": [dict(block) for block in self.content]}


StreamEvent = TextDelta | ToolUse | Completion
"""What `stream` yields: text deltas, each tool_use once complete, and last the Completion."""


def tool_result(tool_use_id: str, content: str, *, is_error: bool = False) -> dict[str, Any]:
    """A `tool_result` content block answering a ToolUse (goes in the next user message)."""
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _completion(message: Mapping[str, Any]) -> Completion:
    """Our Completion from a Messages API message as JSON (the response body, or the SDK's
    final message of a stream as a dict): only text and tool_use blocks are read."""
    texts: list[str] = []
    tools: list[ToolUse] = []
    content: list[Mapping[str, Any]] = []
    blocks = message.get("content") or ()
    if not isinstance(blocks, list | tuple):
        raise TypeError("content is not a list of blocks")
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text = str(block.get("text") or "")
            texts.append(text)
            content.append({"type": "text", "text": text})
        elif kind == "tool_use":
            arguments = dict(block.get("input") or {})
            tools.append(ToolUse(id=str(block["id"]), name=str(block["name"]), input=arguments))
            content.append({"type": "tool_use", "id": block["id"], "name": block["name"],
                            "input": dict(arguments)})
    usage = message.get("usage") or {}
    return Completion(
        text="".join(texts), tool_uses=tuple(tools), stop_reason=message.get("stop_reason"),
        model=str(message.get("model") or ""), content=tuple(content),
        usage=Usage(**{name: int(usage.get(name) or 0) for name in _USAGE_FIELDS}),
    )


_USAGE_FIELDS = tuple(usage_field.name for usage_field in fields(Usage))


# ---- the client -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMConfig:
    """How to reach the model. None for base_url/api_key: the SDK's ANTHROPIC_* variables."""

    model: str = Settings.llm_model
    timeout: float = Settings.llm_timeout
    max_retries: int = Settings.llm_max_retries
    base_url: str | None = None
    api_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        return cls(model=settings.llm_model, timeout=settings.llm_timeout,
                   max_retries=settings.llm_max_retries)

    @classmethod
    def from_env(cls) -> LLMConfig:
        """The STEPWISE_LLM_* variables (as Settings reads them), for processes without Settings."""
        return cls(
            model=os.environ.get("STEPWISE_LLM_MODEL", Settings.llm_model),
            timeout=float(os.environ.get("STEPWISE_LLM_TIMEOUT", Settings.llm_timeout)),
            max_retries=int(os.environ.get("STEPWISE_LLM_MAX_RETRIES", Settings.llm_max_retries)),
        )


_config: LLMConfig | None = None
_client: tuple[asyncio.AbstractEventLoop, AsyncAnthropic] | None = None


async def configure(config: LLMConfig | None) -> LLMConfig | None:
    """Use `config` from now on (None: the environment); returns the one it replaces."""
    global _config
    await aclose()
    previous, _config = _config, config
    return previous


async def aclose() -> None:
    """Close the process's client and its connections (shutdown; tests between configs)."""
    global _client
    current, _client = _client, None
    if current is not None and current[0] is asyncio.get_running_loop():
        await current[1].close()


def config() -> LLMConfig:
    """The configuration in force."""
    global _config
    if _config is None:
        _config = LLMConfig.from_env()
    return _config


def client() -> AsyncAnthropic:
    """The process's SDK client (one per event loop: pooled connections belong to their loop).

    A client left behind on a finished loop is dropped unclosed: its loop cannot close it.
    Its HTTP goes through aiohttp (the SDK's `aiohttp` extra): the same requests for about a
    third less CPU per call than its default httpx transport, measured against the local fake.
    """
    global _client
    loop = asyncio.get_running_loop()
    if _client is None or _client[0] is not loop:
        from anthropic import AsyncAnthropic, DefaultAioHttpClient

        current = config()
        # The SDK's OpenTelemetry spans only when asked for (its ANTHROPIC_OPEN_TELEMETRY*
        # variables): Stepwise registers no tracer, and building a span that records nothing
        # cost about 5% of a call's CPU.
        telemetry: dict[str, Any] = {} if os.environ.get("ANTHROPIC_OPEN_TELEMETRY") else {
            "open_telemetry": False}
        _client = (loop, AsyncAnthropic(api_key=current.api_key, base_url=current.base_url,
                                        timeout=current.timeout, max_retries=current.max_retries,
                                        http_client=DefaultAioHttpClient(
                                            timeout=current.timeout), **telemetry))
    return _client[1]


def _params(*, system: str | Sequence[Mapping[str, Any]] | None, messages: Messages,
            max_tokens: int, tools: Sequence[Mapping[str, Any]] | None,
            tool_choice: Mapping[str, Any] | None, model: str | None,
            timeout: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model or config().model, "max_tokens": max_tokens,
                              "messages": list(messages)}
    optional = {"system": system, "timeout": timeout,
                "tools": list(tools) if tools else None, "tool_choice": tool_choice}
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


async def complete(
    *,
    messages: Messages,
    system: str | Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int = 1024,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Mapping[str, Any] | None = None,
    model: str | None = None,
    request_timeout: float | None = None,
) -> Completion:
    """One model turn, whole. Raises an LLMError once the SDK's own retries are spent.

    `request_timeout` (seconds per attempt) overrides the configured one for this call.
    """
    params = _params(system=system, messages=messages, max_tokens=max_tokens, tools=tools,
                     tool_choice=tool_choice, model=model, timeout=request_timeout)
    try:
        # The body as JSON, not the SDK's typed Message: building that model was about a
        # quarter of a call's CPU (an llm step's worker side), for the few fields read here.
        # Errors are the SDK's as ever (a status >= 400 raises before any body is read here).
        response = await client().messages.with_raw_response.create(**params)
        body = orjson.loads(await response.read())
    except orjson.JSONDecodeError:
        log.warning("LLM call failed: the reply was not JSON")
        raise LLMUnavailable() from None
    except Exception as error:
        translated = _translate(error)
        if translated is None:
            raise
        raise translated from error
    try:
        if not isinstance(body, dict) or body.get("type", "message") != "message":
            raise TypeError("not a message")
        return _completion(body)
    except (AttributeError, KeyError, TypeError, ValueError):
        log.warning("LLM call failed: the reply was not a message")
        raise LLMUnavailable() from None


async def stream(
    *,
    messages: Messages,
    system: str | Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int = 1024,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Mapping[str, Any] | None = None,
    model: str | None = None,
    request_timeout: float | None = None,
) -> AsyncIterator[StreamEvent]:
    """One model turn as it is written: TextDelta…, each ToolUse when complete, then Completion.

    A failure before the first event is retried by the SDK; one mid-stream is not (the text
    already shown cannot be taken back) and raises an LLMError. Close the iterator early with
    `contextlib.aclosing` to drop the connection.
    """
    params = _params(system=system, messages=messages, max_tokens=max_tokens, tools=tools,
                     tool_choice=tool_choice, model=model, timeout=request_timeout)
    try:
        async with client().messages.stream(**params) as events:
            async for event in events:
                if event.type == "text":
                    yield TextDelta(event.text)
                elif event.type == "content_block_stop" and event.content_block.type == "tool_use":
                    block = event.content_block
                    yield ToolUse(id=block.id, name=block.name, input=dict(block.input))
            message = await events.get_final_message()
    except Exception as error:
        translated = _translate(error)
        if translated is None:
            raise
        raise translated from error
    yield _completion(message.model_dump(warnings=False))
