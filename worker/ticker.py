"""The worker's tick: turn what has come due into jobs, and recover stalled ones.

Every `tick_seconds` (by the controllable clock's notion of now): due run timers and due
scheduled notifications become jobs (one queued job per row: queueing locks, so several
workers ticking at once queue each once); jobs of a worker that stopped sending heartbeats
(SIGKILL, a lost machine) are retried; chat threads idle too long are ended; every
`scan_seconds` each tenant's renewal scan is queued. Discovery goes through SECURITY
DEFINER functions that return ids only; the work itself runs in tenant transactions as the
app role.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime
from typing import Any

import procrastinate

from domain.chat import service as chat
from domain.jobs import models as names
from domain.shared import clock
from domain.shared.settings import Settings

log = logging.getLogger("stepwise.worker")

BATCH = 500
RECENT_SECONDS = 60.0  # a row already nudged is not nudged again for this long


class Ticker:
    def __init__(self, app: procrastinate.App, settings: Settings, *,
                 scan_seconds: float) -> None:
        self.app = app
        self.settings = settings
        self.scan_seconds = scan_seconds
        self._recent: dict[str, float] = {}
        self._last_scan = 0.0 if scan_seconds > 0 else float("inf")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.tick_seconds)

    async def tick(self) -> dict[str, int]:
        counts = {"timers": await self._due("stepwise_due_timers", names.FIRE_TIMER,
                                            "timer_id", "timer"),
                  "notifications": await self._due("stepwise_due_notifications",
                                                   names.RELEASE, "notification_id",
                                                   "release"),
                  "idle_chats": await self._due("stepwise_idle_chat_threads",
                                                names.CHAT_EXPIRE, "thread_id", "chat-idle",
                                                now=clock.now() - chat.idle_after()),
                  "stalled": await self._stalled()}
        if time.monotonic() - self._last_scan >= self.scan_seconds:
            self._last_scan = time.monotonic()
            counts["scans"] = await self._scan()
        return counts

    async def _defer(self, jobs: list[dict[str, Any]]) -> int:
        if not jobs:
            return 0
        row = await self.app.connector.execute_query_one_async(
            "SELECT public.stepwise_defer_jobs(%(jobs)s::jsonb) AS queued",
            jobs=json.dumps(jobs))
        return int(row["queued"])

    async def _due(self, function: str, task: str, key: str, lock: str, *,
                   now: datetime | None = None) -> int:
        now = now or clock.now()
        rows = await self.app.connector.execute_query_all_async(
            f"SELECT tenant_id, id FROM public.{function}(%(now)s, %(limit)s)",  # type: ignore[arg-type]
            now=now, limit=BATCH)
        moment = time.monotonic()
        self._recent = {k: t for k, t in self._recent.items() if moment - t < RECENT_SECONDS}
        jobs = []
        for row in rows:
            queueing_lock = f"{lock}:{row['id']}"
            if queueing_lock in self._recent:
                continue
            self._recent[queueing_lock] = moment
            jobs.append({"task": task, "queue": names.QUEUE, "queueing_lock": queueing_lock,
                         "args": {"tenant_id": str(row["tenant_id"]), key: str(row["id"])}})
        return await self._defer(jobs)

    async def _stalled(self) -> int:
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(
            seconds_since_heartbeat=self.settings.stalled_seconds))
        for job in stalled:
            try:
                await manager.retry_job(job)
                log.warning("retrying job %s (%s) of a stalled worker", job.id, job.task_name)
            except Exception:  # another worker retried it first
                log.debug("stalled job %s already retried", job.id, exc_info=True)
        if stalled:
            await manager.prune_stalled_workers(self.settings.stalled_seconds)
        return len(stalled)

    async def _scan(self) -> int:
        rows = await self.app.connector.execute_query_all_async(
            "SELECT id FROM public.stepwise_tenant_ids() AS id")
        return await self._defer([{"task": names.SCAN, "queue": names.QUEUE,
                                   "queueing_lock": f"scan:{row['id']}",
                                   "args": {"tenant_id": str(row["id"])}} for row in rows])
