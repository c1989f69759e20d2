"""Chat threads on a run's step: sendChatMessage and chatThread (the stream comes later)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from domain.chat import service as chat
from schema.context import Info
from schema.errors import UserError, attempt, query_result


@strawberry.type
class ChatMessage:
    id: strawberry.ID
    seq: int
    role: str
    content: str
    message_type: str
    metadata: JSON
    tokens_used: int
    created_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> ChatMessage:
        return cls(id=strawberry.ID(str(row["id"])), seq=row["seq"], role=row["role"],
                   content=row["content"], message_type=row["message_type"],
                   metadata=cast(JSON, row.get("metadata") or {}),
                   tokens_used=row["tokens_used"], created_at=row.get("created_at"))


@strawberry.type
class ChatToolCall:
    tool_name: str
    input: JSON
    output: JSON | None
    success: bool
    error: str | None
    duration_ms: int


@strawberry.type(description="A conversation with the model on one step of a run.")
class ChatThread:
    id: strawberry.ID
    run_id: strawberry.ID
    step_id: str
    thread_type: str
    status: str
    return_to_step: str | None
    total_tokens: int
    messages: list[ChatMessage]
    tool_calls: list[ChatToolCall]

    @classmethod
    def of(cls, row: dict[str, Any]) -> ChatThread:
        return cls(id=strawberry.ID(str(row["id"])), run_id=strawberry.ID(str(row["run_id"])),
                   step_id=row["step_id"], thread_type=row["thread_type"],
                   status=row["status"], return_to_step=row.get("return_to_step"),
                   total_tokens=row["total_tokens"],
                   messages=[ChatMessage.of(m) for m in row.get("messages", [])],
                   tool_calls=[ChatToolCall(tool_name=t["tool_name"],
                                            input=cast(JSON, t["input"]),
                                            output=cast(JSON, t.get("output")),
                                            success=t["success"], error=t.get("error"),
                                            duration_ms=t["duration_ms"])
                               for t in row.get("tool_calls", [])])


@strawberry.input
class SendChatMessageInput:
    run_id: strawberry.ID
    step_id: str
    content: str
    thread_id: strawberry.ID | None = None
    branch_id: str | None = None


@strawberry.type
class SendChatMessagePayload:
    thread: ChatThread | None
    message: ChatMessage | None
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field(description="A chat thread of the tenant, with its messages.")
    async def chat_thread(self, info: Info, id: strawberry.ID) -> ChatThread | None:
        found = await query_result(lambda: chat.thread(info.context.session,
                                                       info.context.actor, str(id)))
        return ChatThread.of(found) if found else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Send a message on a step's llm/rag branch; the reply "
                                      "is stored on the thread when the model answers.")
    async def send_chat_message(self, info: Info, input: SendChatMessageInput
                                ) -> SendChatMessagePayload:
        sent, errors = await attempt(info, lambda: chat.send_message(
            info.context.session, info.context.actor, run_id=str(input.run_id),
            step_id=input.step_id, content=input.content,
            thread_id=str(input.thread_id) if input.thread_id else None,
            branch_id=input.branch_id))
        if sent is None:
            return SendChatMessagePayload(thread=None, message=None, errors=errors)
        return SendChatMessagePayload(thread=ChatThread.of(sent.thread),
                                      message=ChatMessage.of(sent.message), errors=[])
