"""The broker's promises without a database: a slow consumer's buffer stays bounded and it
still gets every item of the log once, in order; a wake-all (the listener reconnected)
makes every follower read the log again; followers woken by one commit share one read,
but never a read begun before they were woken."""

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

    async def read(self, last: int, since: float = 0.0) -> list[int]:
        self.reads += 1
        return [seq for seq in self.items if seq > last][:50]


class SlowLog(Log):
    """A log whose reads take a while, shared by followers through the broker."""

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self.broker = broker
        self.gate = asyncio.Event()

    async def read(self, last: int, since: float = 0.0) -> list[int]:
        async def actually() -> list[int]:
            self.reads += 1
            snapshot = [seq for seq in self.items if seq > last][:50]  # what is committed now
            await self.gate.wait()
            return snapshot

        return await self.broker.reads.run(("t", last), actually, since=since)


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


async def test_followers_woken_by_one_commit_share_one_read() -> None:
    broker = Broker("postgresql://unused")
    log = SlowLog(broker)
    log.gate.set()
    log.items = [1]
    streams = [follow(broker, "t", after_seq=0, read=log.read, seq_of=lambda s: s,
                      final=lambda s: s == 2, check=lambda: None, batch=50) for _ in range(5)]
    assert [await anext(s) for s in streams] == [1] * 5
    pending = [asyncio.ensure_future(anext(s)) for s in streams]
    await asyncio.sleep(0)
    reads = log.reads
    log.items.append(2)
    broker.publish("t", 2)
    assert [await p for p in pending] == [2] * 5
    assert log.reads == reads + 1  # five followers, one read


async def test_a_read_begun_before_a_wake_up_is_not_shared_with_it() -> None:
    broker = Broker("postgresql://unused")
    log = SlowLog(broker)
    log.items = [1]
    early = follow(broker, "t", after_seq=0, read=log.read, seq_of=lambda s: s,
                   final=lambda s: s == 2, check=lambda: None, batch=50)
    first = asyncio.ensure_future(anext(early))  # its read is running, gate closed
    await asyncio.sleep(0.01)
    log.items.append(2)  # committed after that read took its snapshot
    late = follow(broker, "t", after_seq=0, read=log.read, seq_of=lambda s: s,
                  final=lambda s: s == 2, check=lambda: None, batch=50)
    second = asyncio.ensure_future(anext(late))
    await asyncio.sleep(0.01)
    log.gate.set()
    assert await first == 1
    assert await second == 1
    assert await anext(late) == 2  # its own read saw seq 2 (the early one's could not)
    assert log.reads == 2
