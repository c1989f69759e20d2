"""The in-process broker of live topics: one LISTEN connection per process, wake-ups only.

Generic: a topic is any string (`run:<tenant>:<run_id>`, a chat thread's), a notification
carries a topic and a sequence number and nothing else. LISTEN ignores RLS, so a payload is
never trusted beyond those ids: a subscriber, woken, re-reads what it streams from its log
inside its own tenant transaction (domain.shared.db), which is also where its caller is
checked again.

The listener is a direct asyncpg connection outside the pool (LISTEN needs a session that
PgBouncer in transaction mode cannot give). When it is lost it reconnects with backoff and,
once listening again, wakes every subscription: whatever was committed while nobody
listened is recovered from the log. A subscription holds a bounded buffer of wake-ups; a
slow consumer that overflows it loses the buffer (not the events: it reads the log from its
last seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

log = logging.getLogger("stepwise.live")

CHANNEL = "stepwise_live"
RECOVER = -1  # "something may have been missed": read the log whatever the last seq is


class Subscription:
    """Wake-ups for one topic: the highest seq announced since the last `wait`."""

    __slots__ = ("_event", "_seqs", "limit", "overflows", "topic", "woken_at")

    def __init__(self, topic: str, *, limit: int) -> None:
        self.topic = topic
        self.limit = limit
        self._seqs: list[int] = []
        self._event = asyncio.Event()
        self.overflows = 0
        self.woken_at = 0.0  # time.monotonic() of the latest wake-up (one per publish)

    def push(self, seq: int, at: float | None = None) -> None:
        self.woken_at = time.monotonic() if at is None else at
        if len(self._seqs) >= self.limit:
            # A slow consumer: drop the buffer, it catches up from the log.
            self._seqs.clear()
            self._seqs.append(RECOVER)
            self.overflows += 1
        else:
            self._seqs.append(seq)
        self._event.set()

    async def wait(self, seconds: float | None) -> int | None:
        """The highest seq announced (RECOVER: read the log anyway), or None on timeout."""
        if not self._seqs:
            try:
                await asyncio.wait_for(self._event.wait(), seconds)
            except TimeoutError:
                return None
        seqs, self._seqs = self._seqs, []
        self._event.clear()
        if not seqs:
            return None
        return RECOVER if RECOVER in seqs else max(seqs)


class Broker:
    """One per server process: LISTEN on one connection, fan out to subscriptions."""

    def __init__(self, dsn: str, *, channel: str = CHANNEL, buffer: int = 64,
                 min_backoff: float = 0.05, max_backoff: float = 5.0,
                 health_interval: float = 5.0) -> None:
        self.dsn = dsn
        self.channel = channel
        self.buffer = buffer
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.health_interval = health_interval
        self._topics: dict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self.listening = asyncio.Event()
        self.connects = 0  # how many times the listener (re)connected
        self.backend_pid: int | None = None
        # Subscribers of one topic woken by one commit share the read (domain.live.stream).
        from domain.live.stream import Shared

        self.reads = Shared()

    # Subscriptions

    @contextmanager
    def subscribe(self, topic: str) -> Iterator[Subscription]:
        subscription = Subscription(topic, limit=self.buffer)
        self._topics[topic].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._topics.get(topic)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._topics[topic]

    @property
    def subscriptions(self) -> int:
        return sum(len(s) for s in self._topics.values())

    def publish(self, topic: str, seq: int) -> None:
        """Wake the subscriptions of a topic (what a notification does), all at one time."""
        at = time.monotonic()
        for subscription in self._topics.get(topic, ()):
            subscription.push(seq, at)

    def wake_all(self) -> None:
        at = time.monotonic()
        for subscribers in self._topics.values():
            for subscription in subscribers:
                subscription.push(RECOVER, at)

    def _on_notification(self, connection: object, pid: int, channel: str,
                         payload: str) -> None:
        topic, _, seq = payload.rpartition(" ")
        try:
            number = int(seq)
        except ValueError:
            log.warning("ignored a malformed live notification")
            return
        self.publish(topic, number)

    # The listener

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stepwise-live-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.wake_all()

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(self.dsn, timeout=10)
            except Exception as exc:  # any failure: retry with backoff
                log.warning("live listener cannot connect (%s); retrying in %.2fs",
                            type(exc).__name__, backoff)
                jitter = 1 + random.random() / 2  # noqa: S311 - jitter, not a secret
                await asyncio.sleep(backoff * jitter)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            try:
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(self.channel, self._on_notification)
                self._connection = connection
                self.backend_pid = connection.get_server_pid()
                self.connects += 1
                backoff = self.min_backoff
                self.listening.set()
                # Anything committed while nobody listened is in the log: every
                # subscription reads it again.
                self.wake_all()
                await self._watch(connection, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live listener lost (%s); reconnecting", type(exc).__name__)
            finally:
                self.listening.clear()
                self._connection = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 1)
                if connection.is_closed() is False:
                    connection.terminate()

    async def _watch(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Return when the connection is gone (terminated, or a health check fails)."""
        while not lost.is_set() and not connection.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.health_interval)
                return
            await asyncio.wait_for(connection.execute("SELECT 1"), self.health_interval)
