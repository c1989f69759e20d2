"""Follow a topic: the log after a seq, then what is committed later, in order, once each.

The log is the truth; the broker only says "look again". So a subscription can resume from
any seq (a reconnecting client's last one, or the original one graphql-ws re-sends: the
reader skips what it has not asked for either way), and a missed wake-up costs latency,
never an event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

from domain.live.broker import RECOVER, Broker

T = TypeVar("T")


class Shared:
    """Reads in flight, by key: subscribers woken by the same commit share one read.

    A subscriber joins a read only if it began after the notification that woke it arrived
    (`since`, a `time.monotonic()`): such a read sees every commit the wake-up announced,
    exactly as a read of the subscriber's own would. Nothing finished is kept.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    async def run(self, key: Hashable, read: Callable[[], Awaitable[T]], *, since: float) -> T:
        entry = self._running.get(key)
        if entry is None or entry[0] < since:
            started = time.monotonic()
            running: asyncio.Future[Any] = asyncio.ensure_future(read())
            entry = (started, running)
            self._running[key] = entry

            mine = entry

            def forget(_done: object) -> None:
                if self._running.get(key) is mine:
                    del self._running[key]

            running.add_done_callback(forget)
        # Shielded: one subscriber leaving must not cancel the others' read.
        result: T = await asyncio.shield(entry[1])
        return result


async def follow(broker: Broker, topic: str, *, after_seq: int,
                 read: Callable[[int, float], Awaitable[list[T]]], seq_of: Callable[[T], int],
                 final: Callable[[T], bool], check: Callable[[], None],
                 batch: int, recheck_every: float = 30.0,
                 expires_at: float | None = None) -> AsyncIterator[T]:
    """Yield every item with seq > after_seq, then live ones, until a final one.

    `read(last, since)` returns up to `batch` items after `last` in seq order, from a read
    (and a check of the caller) begun no earlier than `since`, the time this subscriber was
    woken: so it may share one with the topic's other subscribers (`Shared`). `check()`
    raises when the caller may no longer listen (an expired token). Both run at every
    wake-up and at least every `recheck_every` seconds (and when the token expires). No
    connection is held between reads.
    """
    last = after_seq
    with broker.subscribe(topic) as subscription:  # before the first read: nothing slips by
        woken = time.monotonic()
        while True:
            check()
            items = await read(last, woken)
            for item in items:
                seq = seq_of(item)
                if seq <= last:
                    continue  # never repeated
                last = seq
                yield item
                if final(item):
                    return
            if len(items) >= batch:
                continue  # more in the log already
            while True:
                timeout = recheck_every
                if expires_at is not None:
                    timeout = max(0.0, min(timeout, expires_at - time.time()))
                hint = await subscription.wait(seconds=timeout)
                # A wake-up: when the notification arrived (the same for every subscriber
                # of the topic); a timeout: now.
                woken = subscription.woken_at if hint is not None else time.monotonic()
                if hint is None or hint == RECOVER or hint > last:
                    break
