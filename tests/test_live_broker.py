"""The broker's promises without a database: a slow consumer's buffer stays bounded and it
still gets every item of the log once, in order; a wake-all (the listener reconnected)
makes every follower read the log again."""

from __future__ import annotations

import asyncio

import pytest

from domain.live.broker import Broker
from domain.live.stream import follow

pytestmark = pytest.mark.asyncio


class Log:
    def __init__(self) -> None:
        self.items: list[int] = []
        self.reads = 0

    async def read(self, last: int) -> list[int]:
        self.reads += 1
        return [seq for seq in self.items if seq > last][:50]


async def test_a_slow_consumer_overflows_its_buffer_and_catches_up_from_the_log() -> None:
    broker = Broker("postgresql://unused", buffer=8)
    log = Log()
    log.items = [1, 2]
    stream = follow(broker, "t", after_seq=0, read=log.read, seq_of=lambda s: s,
                    final=lambda s: s == 1000, check=lambda: None, batch=50)
    got = [await anext(stream), await anext(stream)]
    pending = asyncio.ensure_future(anext(stream))  # now waiting for a wake-up
    await asyncio.sleep(0)
    [subscription] = broker._topics["t"]
    for seq in range(3, 1001):  # the consumer is slow: nobody reads while these arrive
        log.items.append(seq)
        broker.publish("t", seq)
        assert len(subscription._seqs) <= 8  # bounded
    assert subscription.overflows > 0
    got.append(await pending)
    got += [item async for item in stream]
    assert got == list(range(1, 1001))  # nothing lost, nothing repeated, in order
    assert broker.subscriptions == 0  # the stream ended and unsubscribed


async def test_a_wake_all_makes_followers_read_the_log_again() -> None:
    broker = Broker("postgresql://unused")
    log = Log()
    log.items = [1]
    stream = follow(broker, "t", after_seq=0, read=log.read, seq_of=lambda s: s,
                    final=lambda s: s == 2, check=lambda: None, batch=50)
    assert await anext(stream) == 1
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    log.items.append(2)  # committed while nobody listened: no notification
    broker.publish("t", 1)  # an old seq does not cause a read
    await asyncio.sleep(0)
    assert not pending.done()
    reads = log.reads
    broker.wake_all()
    assert await pending == 2
    assert log.reads == reads + 1
