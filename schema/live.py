"""Subscriptions: live run events (the chat stream will join here)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import strawberry

from resolvers import live as resolve
from schema.context import Info
from schema.runs import RunEvent


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The run's events after `afterSeq` (0 when null), "
                             "then live ones, in seq order, none lost or repeated; completes "
                             "after the run's final event. Resume with the last seq seen.")
    async def run_events(self, info: Info, run_id: strawberry.ID,
                         after_seq: int | None = None) -> AsyncIterator[RunEvent]:
        async for event in resolve.run_events(info, str(run_id), after_seq):
            yield RunEvent.of(event)
