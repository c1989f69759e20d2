"""Follow a topic: the log after a seq, then what is committed later, in order, once each.

The log is the truth; the broker only says "look again". So a subscription can resume from
any seq (a reconnecting client's last one, or the original one graphql-ws re-sends: the
reader skips what it has not asked for either way), and a missed wake-up costs latency,
never an event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from domain.live.broker import RECOVER, Broker

T = TypeVar("T")


async def follow(broker: Broker, topic: str, *, after_seq: int,
                 read: Callable[[int], Awaitable[list[T]]], seq_of: Callable[[T], int],
                 final: Callable[[T], bool], check: Callable[[], None],
                 batch: int, recheck_every: float = 30.0,
                 expires_at: float | None = None) -> AsyncIterator[T]:
    """Yield every item with seq > after_seq, then live ones, until a final one.

    `read(last)` returns up to `batch` items after `last` in seq order (opening its own short
    transaction, which re-checks the caller); `check()` raises when the caller may no longer
    listen (an expired token). Both run at every wake-up and at least every `recheck_every`
    seconds (and when the token expires). No connection is held between reads.
    """
    last = after_seq
    with broker.subscribe(topic) as subscription:  # before the first read: nothing slips by
        while True:
            check()
            items = await read(last)
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
                if hint is None or hint == RECOVER or hint > last:
                    break
