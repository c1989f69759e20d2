"""Resolvers of live streams: the caller's own short tenant transaction per read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from graphql import GraphQLError

from domain.live.broker import Broker
from domain.live.stream import follow
from domain.runs import live
from domain.runs import service as runs
from domain.runs.models import RunEvent
from domain.shared.db import Database, UnknownCaller
from schema.context import Info

BATCH = 500


def _unauthenticated(reason: str) -> GraphQLError:
    return GraphQLError(reason, extensions={"code": "UNAUTHENTICATED"})


def _not_found() -> GraphQLError:
    return GraphQLError("no such run", extensions={"code": "NOT_FOUND", "path": "runId"})


async def _caller_exists(broker: Broker, db: Database, tenant_id: UUID, user_id: UUID, *,
                         since: float) -> None:
    """The subscriber's user still exists: looked up in a transaction of its own (as that
    user) begun after the subscriber was woken, shared by that user's other subscribers."""

    async def look_up() -> None:
        async with db.transaction(tenant_id, user_id=user_id, read_only=True):
            pass

    try:
        await broker.reads.run(("caller", tenant_id, user_id), look_up, since=since)
    except UnknownCaller:
        raise _unauthenticated("the token's user does not exist") from None


async def run_events(info: Info, run_id: str, after_seq: int | None
                     ) -> AsyncIterator[RunEvent]:
    context = info.context
    principal = context.principal
    if principal is None:
        raise _unauthenticated("a valid bearer token is required")
    broker: Broker = context.request.app.state.broker
    db = context.db

    def check() -> None:
        if principal.expired():
            raise _unauthenticated("the token has expired")

    async def events_after(last: int) -> list[RunEvent]:
        # As the system for the caller's tenant: the caller is checked apart (below), so
        # every subscriber of this run in this tenant can share one read.
        async with db.transaction(principal.tenant_id, read_only=True) as tx:
            return await runs.events(tx.session, parsed, after_seq=last, limit=BATCH)

    async def read(last: int, since: float) -> list[RunEvent]:
        await _caller_exists(broker, db, principal.tenant_id, principal.user_id, since=since)
        return await broker.reads.run(("events", principal.tenant_id, parsed, last),
                                      lambda: events_after(last), since=since)

    check()
    start = max(after_seq or 0, 0)
    try:
        async with db.transaction(principal.tenant_id, user_id=principal.user_id,
                                  read_only=True) as tx:
            found = await runs.get(tx.session, run_id)
    except UnknownCaller:
        raise _unauthenticated("the token's user does not exist") from None
    if found is None:
        raise _not_found()
    if live.is_over(found, start):
        return
    parsed: UUID = found.id
    async for event in follow(broker, live.topic(principal.tenant_id, parsed), after_seq=start,
                              read=read, seq_of=lambda e: e.seq, final=live.is_final,
                              check=check, batch=BATCH,
                              expires_at=principal.expires_at):
        yield event
