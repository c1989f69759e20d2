"""Publishing a reply as it is written: coalesced delta rows, NOTIFYed with ids only.

Why rows and not NOTIFY payloads (migration 0009 has the whole argument): a payload is seen
by every listening process of every tenant and is capped at 8 kB, while a row is under the
tenant's RLS and lets a subscriber resume from a seq. Why coalesced: one transaction per
token would cost more than the token. The first piece goes out at once (time to first delta
is what a user feels); later pieces wait at most `window` seconds for company, so a fast
model costs a handful of rows per reply and a slow one is still shown as it types.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from domain.chat import repository
from domain.shared.db import Database

log = logging.getLogger("stepwise.chat")
WINDOW_SECONDS = 0.04


class DeltaWriter:
    """The deltas of one reply attempt (`message_id`: the assistant message it will be)."""

    def __init__(self, db: Database, tenant_id: UUID, *, thread_id: UUID, message_id: UUID,
                 reply_to: UUID, window: float = WINDOW_SECONDS) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.thread_id = thread_id
        self.message_id = message_id
        self.reply_to = reply_to
        self.window = window
        self.text: list[str] = []  # everything published, in order
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0

    async def __aenter__(self) -> DeltaWriter:
        self._task = asyncio.create_task(self._run(), name="chat-delta-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()

    def add(self, piece: str) -> None:
        if piece:
            self._pending.append(piece)
            self._wake.set()

    @property
    def published(self) -> str:
        return "".join(self.text)

    @property
    def written(self) -> int:
        """Characters handed to the writer so far (published or about to be)."""
        return sum(map(len, self.text)) + sum(map(len, self._pending))

    async def _run(self) -> None:
        # Never cancelled: a flush cut off mid-transaction would lose its piece.
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            await self._flush()
            with contextlib.suppress(TimeoutError):  # what arrives meanwhile: the next row
                await asyncio.wait_for(self._stop.wait(), self.window)

    async def _flush(self) -> None:
        if not self._pending:
            return
        piece, self._pending = "".join(self._pending), []
        async with self.db.transaction(self.tenant_id) as tx:
            await repository.insert_delta(tx.session, self.tenant_id, thread_id=self.thread_id,
                                          message_id=self.message_id, reply_to=self.reply_to,
                                          delta=piece)
        self.text.append(piece)
        self.flushes += 1

    async def drain(self) -> None:
        """Stop the background flusher and publish what is still pending."""
        task, self._task = self._task, None
        self._stop.set()
        self._wake.set()
        if task is not None:
            await task
        await self._flush()
