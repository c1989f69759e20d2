"""`stepwise worker`: procrastinate's worker and the tick, under a supervisor.

The supervisor restarts both after a lost database (a PostgreSQL restart, a failover) with
backoff, and stops them gracefully on SIGTERM/SIGINT: jobs in flight finish (up to a grace
period), the rest stay queued for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import signal
import time
from collections.abc import Iterable

import httpx
import procrastinate
import procrastinate.jobs
import procrastinate.manager
import procrastinate.worker

from domain.jobs.models import QUEUE
from domain.shared import heap
from domain.shared.db import Database
from domain.shared.settings import Settings
from worker.tasks import Runtime, build_app
from worker.ticker import Ticker

log = logging.getLogger("stepwise.worker")
GRACE_SECONDS = 20.0
POLL_SECONDS = 0.1


_LIVE_WORKERS = ("SELECT id FROM procrastinate_workers WHERE last_heartbeat >= "
                 "now() - make_interval(secs => %(seconds)s) ORDER BY id")


class GatedJobs(procrastinate.manager.JobManager):
    """procrastinate's job manager, asking the database for a job only when one may be there.

    Every worker hears every job's NOTIFY, and procrastinate's loop fetches until a fetch
    finds nothing: two fetches per job with one worker, three with two (the other worker's
    fetch finds nothing), and a fetch is the most expensive statement of a step. Here each
    announced job is a credit for one fetch: a fetch that finds it spends it, a fetch that
    finds nothing spends those heard before it began (a job whose NOTIFY came during it may
    have committed after its snapshot), and a fetch that finds a job nobody announced spends
    nothing. Without credits, a fetch goes to the database only when none has found the
    queue empty for `drain_seconds`: the drain that finds what no notification announced (a
    scheduled job or retry come due, a job whose run's lock was released, a NOTIFY missed
    while the listener reconnected).

    With `alive_seconds`, the live workers (heartbeat within it, read at registration and
    with every heartbeat) share the announced jobs: worker k of n takes the credits of ids
    equal to k modulo n, so a job costs one fetch in all instead of one per worker. The
    others' jobs reach this worker's fetches too (a fetch takes the oldest job due, whoever
    was announced it), and one whose owner does not fetch it (busy, or gone before its
    heartbeat expired) is found by a drain within `drain_seconds`."""

    # The poll's timer may fire a little early (uvloop's clock counts milliseconds): a drain
    # that early still counts as due, or it would wait a whole interval more.
    EARLY = 0.01
    MOST = 10_000  # announced ids kept at most (a long backlog other workers drain)

    def __init__(self, connector: procrastinate.BaseConnector, *,
                 drain_seconds: float, alive_seconds: float | None = None,
                 retired: set[int] | None = None) -> None:
        super().__init__(connector)
        self.drain_seconds = drain_seconds
        self.alive_seconds = alive_seconds
        # This process's earlier worker ids (before a restart after a lost database): their
        # rows, never unregistered, look live until their heartbeat expires, but take no jobs.
        self.retired = retired if retired is not None else set()
        self.registered: int | None = None
        self._announced: set[int] = set()  # jobs heard of and not yet fetched or missed
        self._emptied = -math.inf  # when the last fetch that found nothing began
        self.share = (0, 1)  # (this worker's rank, live workers): the ids it takes credit for

    @property
    def credits(self) -> int:
        return len(self._announced)

    async def register_worker(self) -> int:
        worker_id = self.registered = await super().register_worker()
        await self._count_peers(worker_id)
        return worker_id

    async def update_heartbeat(self, worker_id: int) -> None:
        await super().update_heartbeat(worker_id)
        await self._count_peers(worker_id)

    async def _count_peers(self, worker_id: int) -> None:
        """Every procrastinate worker on the database counts (Stepwise's all serve one
        queue). Should the read fail, this worker takes every credit until the next one:
        more fetches, no job missed, and the worker goes on."""
        if self.alive_seconds is None:
            return
        try:
            rows = await self.connector.execute_query_all_async(
                query=_LIVE_WORKERS, seconds=self.alive_seconds)
        except Exception as error:
            log.warning("could not read the live workers (%s): taking every job's credit",
                        type(error).__name__)
            self.share = (0, 1)
            return
        alive = [row["id"] for row in rows if row["id"] not in self.retired]
        self.share = (alive.index(worker_id), len(alive)) if worker_id in alive else (0, 1)

    def heard(self, job_id: int) -> bool:
        """Whether the announced job is a credit here (else another worker's to fetch, and
        this one's drain's should that one not)."""
        rank, count = self.share
        if job_id % count != rank:
            return False
        if len(self._announced) >= self.MOST:
            self._announced.clear()  # the drain finds what they announced
        self._announced.add(job_id)
        return True

    async def fetch_job(self, queues: Iterable[str] | None,
                        worker_id: int) -> procrastinate.jobs.Job | None:
        began = time.monotonic()
        if not self._announced and began - self._emptied < self.drain_seconds - self.EARLY:
            return None
        before = set(self._announced)
        job = await super().fetch_job(queues, worker_id)
        if job is None:
            self._announced -= before
            self._emptied = began
        elif job.id is not None:
            self._announced.discard(job.id)
        return job


class JobWorker(procrastinate.worker.Worker):
    """procrastinate's worker, fetching as its `GatedJobs` allows and without its lost
    wake-up.

    procrastinate clears its "new job" flag after every fetch, so a job whose NOTIFY arrived
    while a fetch that found nothing was in flight waited for the next poll (up to the
    polling interval: the tail of step latency at moderate load). Here a round of fetches
    ends only when no credit is left.
    """

    async def _handle_notification(self, *, channel: str,
                                   notification: procrastinate.jobs.Notification) -> None:
        if notification["type"] == "job_inserted" and not self._jobs.heard(
                notification["job_id"]):
            return  # another worker's job: no wake-up for a fetch it would not pay for
        await super()._handle_notification(channel=channel, notification=notification)

    @property
    def _jobs(self) -> GatedJobs:
        jobs = self.app.job_manager
        assert isinstance(jobs, GatedJobs), "the worker's app fetches through GatedJobs"
        return jobs

    async def _fetch_and_process_jobs(self) -> None:
        while True:
            await super()._fetch_and_process_jobs()  # returns once a fetch found nothing
            if not self._jobs.credits or self._stop_event.is_set():
                return


async def _run_once(settings: Settings, concurrency: int, stop: asyncio.Event, *,
                    scan_seconds: float, retired: set[int]) -> None:
    db = Database(settings.app_database_url, pool_size=concurrency + 2, solo=True)
    async with httpx.AsyncClient() as client:
        runtime = Runtime(settings=settings, db=db, http=client)
        app = build_app(runtime, max_size=concurrency + 3)
        heartbeat = max(settings.stalled_seconds / 4, 0.5)
        # (a worker is live for at least two heartbeats, or peers would flicker in and out)
        jobs = GatedJobs(app.connector, drain_seconds=POLL_SECONDS,
                         alive_seconds=max(settings.stalled_seconds, 2 * heartbeat),
                         retired=retired)
        app.job_manager = jobs
        try:
            async with app.open_async():
                ticker = Ticker(app, settings, scan_seconds=scan_seconds)
                worker = asyncio.create_task(JobWorker(
                    app=app, queues=[QUEUE], concurrency=concurrency,
                    install_signal_handlers=False, delete_jobs="successful",
                    listen_notify=True,
                    # The fallback when a NOTIFY is missed (the listener reconnecting) and
                    # the clock of scheduled jobs and retries: one cheap query per 0.1 s
                    # when idle.
                    fetch_job_polling_interval=POLL_SECONDS,
                    update_heartbeat_interval=heartbeat,
                    stalled_worker_timeout=settings.stalled_seconds,
                    shutdown_graceful_timeout=GRACE_SECONDS).run())
                ticking = asyncio.create_task(ticker.run(stop))
                stopping = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({worker, ticking, stopping},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in (worker, ticking, stopping):
                    if task not in done:
                        task.cancel()
                for task in (worker, ticking, stopping):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task  # re-raises a crash of the worker or the tick
                if not stop.is_set():
                    raise RuntimeError("the worker stopped by itself")
        finally:
            if jobs.registered is not None:
                retired.add(jobs.registered)
                while len(retired) > 100:  # (kept only while their rows may look live)
                    retired.discard(min(retired))
            await db.dispose()


class _NotPerJob(logging.Filter):
    """Drops procrastinate's line for a job starting and for one that succeeded."""

    QUIET = frozenset({"start_job", "job_success"})

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("procrastinate.worker")
                    and getattr(record, "action", None) in self.QUIET)


def quiet_job_logs() -> None:
    """No line per job that went well: procrastinate's "Starting job" and "... ended with
    status: Success" and the HTTP clients' request lines were three log lines per llm step,
    about 3.5% of a worker's CPU at 100 jobs a second. Everything else procrastinate says
    stays: a failure to be retried (with its traceback), a final one (ERROR), aborts, the
    worker's start and stop. Call after the handlers are configured (logging.basicConfig)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NotPerJob())
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def serve(settings: Settings, *, concurrency: int = 10, scan_seconds: float = 3600.0,
                stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # `import anthropic` takes over a second: pay it before the first job, not inside one
    # (it would block the loop and every job running beside it).
    await asyncio.to_thread(importlib.import_module, "anthropic")
    heap.settle()  # start-up's objects frozen out of the collector's sight
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    backoff = 0.2
    retired: set[int] = set()  # worker ids of this process's earlier runs
    while not stop.is_set():
        try:
            await _run_once(settings, concurrency, stop, scan_seconds=scan_seconds,
                            retired=retired)
            backoff = 0.2
        except Exception as error:  # a lost database, mostly: start again shortly
            log.warning("worker restarting in %.1fs after %s: %s", backoff,
                        type(error).__name__, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 2.0)
    log.info("worker stopped")


def run(settings: Settings, *, concurrency: int = 10, scan_seconds: float = 3600.0) -> None:
    """`serve` on uvloop (what the server runs on; uvicorn[standard] brings it): its
    transports and callbacks are C, and a job is mostly small socket writes and reads."""
    try:
        import uvloop
    except ImportError:  # an install without uvicorn[standard]: the standard loop works too
        asyncio.run(serve(settings, concurrency=concurrency, scan_seconds=scan_seconds))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, concurrency=concurrency, scan_seconds=scan_seconds))
