"""The chat stream resolver: the caller's own short tenant transaction per read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from graphql import GraphQLError

from domain.chat import service as chat
from domain.live.stream import follow
from domain.shared.errors import NotFound
from resolvers.streams import Subscriber
from schema.context import Info

BATCH = 200


def _not_found() -> GraphQLError:
    return GraphQLError("no such thread", extensions={"code": "NOT_FOUND", "path": "threadId"})


async def chat_stream(info: Info, thread_id: str, after_seq: int | None
                      ) -> AsyncIterator[dict[str, Any]]:
    """The reply to the thread's latest user message (from its first delta, or from
    `after_seq`), live, until its `done`."""
    subscriber = Subscriber.of(info)
    principal, broker = subscriber.principal, subscriber.broker

    async def read(last: int, since: float) -> list[dict[str, Any]]:
        # A read of this subscriber's own (begun now, so after `since`): a thread's stream
        # has one watcher or a few, nothing worth sharing.
        async with subscriber.as_caller() as tx:
            return await chat.stream_after(tx.session, parsed, after_seq=last, limit=BATCH)

    subscriber.check()
    try:
        async with subscriber.as_caller() as tx:
            start = await chat.stream_start(tx.session, thread_id)
    except NotFound:
        raise _not_found() from None
    if start is None:
        raise _not_found()
    parsed: UUID = start[0]
    first = start[1] if after_seq is None else max(after_seq, 0)
    async for item in follow(broker, chat.stream_topic(principal.tenant_id, parsed),
                             after_seq=first, read=read, seq_of=lambda d: int(d["seq"]),
                             final=lambda d: bool(d["done"]), check=subscriber.check, batch=BATCH,
                             expires_at=principal.expires_at):
        yield {**item, "thread_id": parsed}
