"""Resolvers of live streams: the caller's own short tenant transaction per read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from graphql import GraphQLError

from domain.live.stream import follow
from domain.runs import live
from domain.runs import service as runs
from domain.runs.models import RunEvent
from resolvers.streams import Subscriber
from schema.context import Info

BATCH = 500


def _not_found() -> GraphQLError:
    return GraphQLError("no such run", extensions={"code": "NOT_FOUND", "path": "runId"})


async def run_events(info: Info, run_id: str, after_seq: int | None
                     ) -> AsyncIterator[RunEvent]:
    subscriber = Subscriber.of(info)
    principal, broker, db = subscriber.principal, subscriber.broker, subscriber.db

    async def events_after(last: int) -> list[RunEvent]:
        # As the system for the caller's tenant: the caller is checked apart (below), so
        # every subscriber of this run in this tenant can share one read.
        async with db.transaction(principal.tenant_id, read_only=True) as tx:
            return await runs.events(tx.session, parsed, after_seq=last, limit=BATCH)

    async def caller_exists() -> None:
        async with subscriber.as_caller():
            pass

    async def read(last: int, since: float) -> list[RunEvent]:
        # The caller is looked up in a transaction of its own begun after the wake-up,
        # shared by that user's other subscribers woken by the same commit.
        await broker.reads.run(("caller", principal.tenant_id, principal.user_id),
                               caller_exists, since=since)
        return await broker.reads.run(("events", principal.tenant_id, parsed, last),
                                      lambda: events_after(last), since=since)

    subscriber.check()
    start = max(after_seq or 0, 0)
    async with subscriber.as_caller() as tx:
        found = await runs.get(tx.session, run_id)
    if found is None:
        raise _not_found()
    if live.is_over(found, start):
        return
    parsed: UUID = found.id
    async for event in follow(broker, live.topic(principal.tenant_id, parsed), after_seq=start,
                              read=read, seq_of=lambda e: e.seq, final=live.is_final,
                              check=subscriber.check, batch=BATCH,
                              expires_at=principal.expires_at):
        yield event
