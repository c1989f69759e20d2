"""Chat threads on a run's step: sendChatMessage, chatThread, chatStream, returnToWorkflow;
the tenant's knowledge base (addKnowledgeDocument, knowledgeDocuments)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from domain.chat import service as chat
from domain.knowledge import service as knowledge
from resolvers import chat as resolve
from schema.context import Info
from schema.errors import UserError, attempt, query_result
from schema.runs import Run


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


@strawberry.type(description="A piece of a reply as the model writes it; the last one of a "
                             "reply has done=true. The deltas of one messageId concatenate to "
                             "the stored message of that id. A new messageId before done "
                             "means the reply was restarted: show it from scratch.")
class ChatDelta:
    thread_id: strawberry.ID
    message_id: strawberry.ID
    seq: int
    delta: str
    done: bool
    error_code: str | None = strawberry.field(
        description="Why the reply stopped or waits: LLM_OVERLOADED, BUDGET_EXCEEDED...")

    @classmethod
    def of(cls, row: dict[str, Any]) -> ChatDelta:
        return cls(thread_id=strawberry.ID(str(row["thread_id"])),
                   message_id=strawberry.ID(str(row["message_id"])), seq=int(row["seq"]),
                   delta=row["delta"], done=bool(row["done"]), error_code=row.get("error_code"))


@strawberry.type
class ReturnToWorkflowPayload:
    thread: ChatThread | None
    run: Run | None
    errors: list[UserError]


@strawberry.type
class KnowledgeDocument:
    id: strawberry.ID
    title: str
    source: str | None
    chunks: int
    characters: int
    created_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> KnowledgeDocument:
        return cls(id=strawberry.ID(str(row["id"])), title=row["title"], source=row["source"],
                   chunks=row["chunks"], characters=row["characters"],
                   created_at=row["created_at"])


@strawberry.type(description="A passage of a knowledge-base document matching a search.")
class KnowledgeHit:
    document_id: strawberry.ID
    chunk_id: strawberry.ID
    title: str
    ordinal: int
    rank: float
    snippet: str


@strawberry.input
class AddKnowledgeDocumentInput:
    title: str
    content: str
    source: str | None = None


@strawberry.type
class AddKnowledgeDocumentPayload:
    document: KnowledgeDocument | None
    errors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field(description="A chat thread of the tenant, with its messages.")
    async def chat_thread(self, info: Info, id: strawberry.ID) -> ChatThread | None:
        found = await query_result(lambda: chat.thread(info.context.session,
                                                       info.context.actor, str(id)))
        return ChatThread.of(found) if found else None

    @strawberry.field(description="The tenant's knowledge-base documents, newest first.")
    async def knowledge_documents(self, info: Info, first: int = 50
                                  ) -> list[KnowledgeDocument]:
        found = await query_result(lambda: knowledge.documents(
            info.context.session, info.context.actor, first=first))
        return [KnowledgeDocument.of(row) for row in found]

    @strawberry.field(description="Full-text search of the knowledge base (web-search syntax), "
                                  "best ranked first: what the rag_search tool sees.")
    async def knowledge_search(self, info: Info, query: str, first: int = 5
                               ) -> list[KnowledgeHit]:
        found = await query_result(lambda: knowledge.search(info.context.session, query,
                                                            limit=first))
        return [KnowledgeHit(document_id=strawberry.ID(h["documentId"]),
                             chunk_id=strawberry.ID(h["chunkId"]), title=h["title"],
                             ordinal=h["ordinal"], rank=h["rank"], snippet=h["snippet"])
                for h in found]


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

    @strawberry.mutation(description="End the chat and go back to the workflow: the thread "
                                      "completes and the run resumes at the branch's "
                                      "returnToStep.")
    async def return_to_workflow(self, info: Info, thread_id: strawberry.ID
                                 ) -> ReturnToWorkflowPayload:
        ended, errors = await attempt(info, lambda: chat.return_to_workflow(
            info.context.session, info.context.actor, str(thread_id)))
        if ended is None:
            return ReturnToWorkflowPayload(thread=None, run=None, errors=errors)
        found = await chat.thread(info.context.session, info.context.actor,
                                  str(ended.thread["id"]))
        return ReturnToWorkflowPayload(thread=ChatThread.of(found or ended.thread),
                                       run=Run.of(ended.run), errors=[])

    @strawberry.mutation(description="Add a document to the tenant's knowledge base (chunked "
                                      "and indexed for rag_search).")
    async def add_knowledge_document(self, info: Info, input: AddKnowledgeDocumentInput
                                     ) -> AddKnowledgeDocumentPayload:
        added, errors = await attempt(info, lambda: knowledge.add_document(
            info.context.session, info.context.actor, title=input.title,
            content=input.content, source=input.source))
        return AddKnowledgeDocumentPayload(
            document=KnowledgeDocument.of(added) if added else None, errors=errors)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The reply to the thread's latest user message as "
                             "it is written: deltas, then one with done=true (then the "
                             "stream completes). Resume with afterSeq, the last seq seen.")
    async def chat_stream(self, info: Info, thread_id: strawberry.ID,
                          after_seq: int | None = None) -> AsyncIterator[ChatDelta]:
        async for item in resolve.chat_stream(info, str(thread_id), after_seq):
            yield ChatDelta.of(item)
