"""The worker's fetch loop on the real job engine (worker/main.GatedJobs and JobWorker over
procrastinate's Worker): one fetch per job notification and worker, another at once when a
notification arrives while a fetch that found nothing is in flight, and a drain for what no
notification announces. The workers run in this process on a queue of the test's own, so
the fetches counted are exactly theirs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import procrastinate
import pytest
from procrastinate import sql

from domain.shared.settings import Settings
from tests.workerlib import eventually
from worker.main import GatedJobs, JobWorker
from worker.tasks import connector

pytestmark = pytest.mark.asyncio
NEVER = 3600.0


@dataclass
class Harness:
    queue: str
    apps: list[procrastinate.App] = field(default_factory=list)
    workers: list[JobWorker] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    blockers: dict[int, asyncio.Event] = field(default_factory=dict)  # jobs that wait
    fetches: int = 0
    in_flight: int = 0
    # Called inside the next database fetch that finds nothing, before it returns.
    during_next_empty_fetch: Callable[[], Awaitable[None]] | None = None

    @property
    def gates(self) -> list[Gate]:
        return [app.job_manager for app in self.apps]  # type: ignore[misc]

    async def defer(self, number: int, **schedule: Any) -> int:
        return await self.apps[0].tasks["gate-test"].configure(
            queue=self.queue, **schedule).defer_async(number=number)

    async def settled(self) -> None:
        """Until no credit is left and no fetch is in flight in any worker."""
        async def probe() -> bool:
            return not self.in_flight and not any(gate.credits for gate in self.gates)

        await eventually(probe, every=0.01, what="the workers to settle")

    async def heard(self, count: int) -> None:
        """Until every worker has heard `count` job notifications."""
        await eventually(lambda: _true(all(gate.heard_count >= count for gate in self.gates)),
                         every=0.01, what=f"{count} notifications in every worker")

    async def one_by_one(self, count: int) -> None:
        heard = min(gate.heard_count for gate in self.gates)
        for number in range(count):
            await self.defer(number)
            await eventually(lambda: _true(number in self.done),  # noqa: B023 (awaited here)
                             every=0.01, what=f"job {number}")
            # (the worker that did not get it may not have heard of it yet)
            await self.heard(heard + number + 1)
            await self.settled()


async def _true(value: bool) -> bool:
    return value


class Gate(GatedJobs):
    heard_count = 0

    def heard(self, job_id: int) -> bool:
        self.heard_count += 1
        return super().heard(job_id)

    async def fetch_job(self, queues: Any, worker_id: int) -> Any:
        """Records, for each job found, the credits held when its fetch began (0: a drain)."""
        credits = self.credits
        job = await super().fetch_job(queues, worker_id)
        if job is not None:
            self.found_with[job.id] = credits
        return job

    @property
    def found_with(self) -> dict[int, int]:
        return self.__dict__.setdefault("_found_with", {})


def _app(settings: Settings, harness: Harness, *, drain: float,
         alive: float | None) -> procrastinate.App:
    app = procrastinate.App(connector=connector(settings, max_size=3))
    app.job_manager = Gate(app.connector, drain_seconds=drain, alive_seconds=alive)

    @app.task(name="gate-test", queue=harness.queue)
    async def gate_test(number: int) -> None:
        harness.started.append(number)
        if number in harness.blockers:
            await harness.blockers[number].wait()
        harness.done.append(number)

    query_one = app.connector.execute_query_one_async

    async def counted(query: str, **arguments: Any) -> dict[str, Any]:
        if query != sql.queries["fetch_job"]:
            return await query_one(query, **arguments)
        harness.fetches += 1
        harness.in_flight += 1
        try:
            row = await query_one(query, **arguments)
            hook = harness.during_next_empty_fetch
            if hook is not None and row["id"] is None:
                harness.during_next_empty_fetch = None
                await hook()
            return row
        finally:
            harness.in_flight -= 1

    app.connector.execute_query_one_async = counted  # type: ignore[method-assign]
    return app


async def _listening(settings: Settings, queue: str, count: int) -> None:
    """Until `count` sessions listen on the queue's channel (LISTEN goes beside the first
    fetch: a job deferred before it would be heard by nobody)."""
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        async def probe() -> bool:
            found = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' "
                "AND strpos(query, $1) > 0 AND state = 'idle'", f"#{queue}")
            return bool(found == count)

        await eventually(probe, every=0.02, what="the workers to listen")
    finally:
        await connection.close()


async def _finished(settings: Settings, queue: str, remaining: int) -> None:
    """Until only `remaining` jobs of the queue are left in the table (finished ones are
    deleted)."""
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        async def probe() -> bool:
            left = await connection.fetchval(
                "SELECT count(*) FROM jobs.procrastinate_jobs WHERE queue_name = $1", queue)
            return bool(left == remaining)

        await eventually(probe, every=0.02, what=f"{remaining} jobs left")
    finally:
        await connection.close()


async def _only_these_workers(settings: Settings, harness: Harness) -> None:
    """Drop the worker rows other tests left (a killed worker's stays until pruned): the
    test's workers are then the only live ones."""
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        await connection.execute(
            "DELETE FROM jobs.procrastinate_workers WHERE NOT id = ANY($1)",
            [worker.worker_id for worker in harness.workers])
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _running(settings: Settings, count: int, *, drain: float, poll: float,
                   alive: float | None = None) -> AsyncIterator[Harness]:
    harness = Harness(queue=f"gate-{uuid.uuid4().hex[:8]}")
    async with contextlib.AsyncExitStack() as stack:
        tasks = []
        for _ in range(count):
            app = _app(settings, harness, drain=drain, alive=alive)
            await stack.enter_async_context(app.open_async())
            harness.apps.append(app)
            worker = JobWorker(app=app, queues=[harness.queue], concurrency=2,
                               install_signal_handlers=False, delete_jobs="successful",
                               listen_notify=True, fetch_job_polling_interval=poll)
            harness.workers.append(worker)
            tasks.append(asyncio.create_task(worker.run()))
        try:
            # Each worker's first fetch is its start-up drain; then each listens.
            await eventually(lambda: _true(harness.fetches >= count), every=0.01,
                             what="the workers' first fetches")
            await harness.settled()
            await _listening(settings, harness.queue, count)
            yield harness
        finally:
            for worker in harness.workers:
                worker.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)


class TestFetches:
    async def test_one_worker_fetches_once_per_job(self, settings: Settings) -> None:
        async with _running(settings, 1, drain=NEVER, poll=NEVER) as harness:
            before = harness.fetches
            await harness.one_by_one(5)
            # procrastinate alone fetches until a fetch finds nothing: 10
            assert harness.fetches - before == 5

    async def test_two_workers_fetch_once_each_per_job(self, settings: Settings) -> None:
        async with _running(settings, 2, drain=NEVER, poll=NEVER) as harness:
            before = harness.fetches
            await harness.one_by_one(5)
            # one finds the job, the other nothing; procrastinate alone: 15
            assert harness.fetches - before == 10
            assert sorted(harness.done) == list(range(5))

    async def test_live_workers_share_the_jobs_one_fetch_in_all(
            self, settings: Settings) -> None:
        async with _running(settings, 2, drain=NEVER, poll=NEVER, alive=30) as harness:
            await _only_these_workers(settings, harness)
            for worker, gate in zip(harness.workers, harness.gates, strict=True):
                assert worker.worker_id is not None
                await gate.update_heartbeat(worker.worker_id)  # each sees both
            assert sorted(gate.share for gate in harness.gates) == [(0, 2), (1, 2)]
            before = harness.fetches
            await harness.one_by_one(6)
            # each job is fetched by the one worker whose share its id falls in: 6 (12
            # when each worker fetches once per job, 18 with procrastinate alone)
            assert harness.fetches - before == 6
            assert sorted(harness.done) == list(range(6))

    async def test_a_job_whose_owner_does_not_fetch_it_is_found_by_the_drain(
            self, settings: Settings) -> None:
        async with _running(settings, 1, drain=0.2, poll=0.1, alive=30) as harness:
            gate = harness.gates[0]
            # This worker believes in a second live worker, which never fetches: the jobs
            # in that one's share are nobody's credit.
            gate.share = (0, 2)
            number = 0
            while (job_id := await harness.defer(number)) % 2 == 0:  # its own: at once
                await eventually(lambda: _true(number in harness.done),  # noqa: B023
                                 every=0.01, what=f"job {number}")
                number += 1
            await eventually(lambda: _true(number in harness.done), every=0.02, deadline=4,
                             what="the other worker's job")
            assert sorted(harness.done) == list(range(number + 1))
            assert gate.found_with[job_id] == 0  # found by a fetch no credit paid for

    async def test_a_live_workers_view_counts_only_workers_with_a_recent_heartbeat(
            self, settings: Settings) -> None:
        async with _running(settings, 1, drain=NEVER, poll=NEVER, alive=30) as harness:
            gate, worker = harness.gates[0], harness.workers[0]
            assert worker.worker_id is not None
            connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
            try:
                fresh, stale = [await connection.fetchval(
                    "INSERT INTO jobs.procrastinate_workers (last_heartbeat) "
                    "VALUES (now() - make_interval(secs => $1)) RETURNING id", age)
                    for age in (0.0, 60.0)]
                await gate.update_heartbeat(worker.worker_id)
                assert gate.share == (sorted([worker.worker_id, fresh]).index(
                    worker.worker_id), 2)
                # a row of this process's own before a restart looks live but takes no jobs
                gate.retired.add(fresh)
                await gate.update_heartbeat(worker.worker_id)
                assert gate.share == (0, 1)
            finally:
                await connection.execute(
                    "DELETE FROM jobs.procrastinate_workers WHERE id = ANY($1)", [fresh, stale])
                await connection.close()

    async def test_a_notification_during_an_empty_fetch_fetches_again(
            self, settings: Settings) -> None:
        async with _running(settings, 1, drain=NEVER, poll=NEVER) as harness:
            async def defer_and_hear() -> None:
                # This job commits after the fetch's snapshot, and its NOTIFY arrives before
                # the fetch returns: procrastinate alone would wait for the next poll (never).
                await harness.defer(7)
                await eventually(lambda: _true(harness.gates[0].credits > 1), every=0.01,
                                 what="the notification")

            harness.during_next_empty_fetch = defer_and_hear
            before = harness.fetches
            # Announced but not due: the fetch its notification pays for finds nothing.
            await harness.defer(6, schedule_in={"hours": 1})
            await eventually(lambda: _true(7 in harness.done), every=0.01,
                             what="the job notified during the empty fetch")
            assert harness.fetches - before == 2

    async def test_a_job_nobody_announced_spends_no_notified_jobs_credit(
            self, settings: Settings) -> None:
        async with _running(settings, 1, drain=NEVER, poll=NEVER) as harness:
            harness.blockers[1] = asyncio.Event()
            await harness.defer(1, lock="the-run")
            await eventually(lambda: _true(1 in harness.started), every=0.01, what="job 1")
            # Announced while its lock is held: the fetch its notification pays for finds
            # nothing, and nothing announces it again once the lock is free.
            await harness.defer(2, lock="the-run")
            await harness.heard(2)
            await harness.settled()
            harness.blockers[1].set()
            await _finished(settings, harness.queue, 1)
            # This one's fetch finds job 2 (the older): job 3 still holds its credit and is
            # fetched next, with polling off.
            await harness.defer(3)
            await eventually(lambda: _true({2, 3} <= set(harness.done)), every=0.01,
                             what="jobs 2 and 3")

    async def test_a_job_no_notification_announces_is_found_by_the_drain(
            self, settings: Settings) -> None:
        async with _running(settings, 1, drain=0.2, poll=0.1) as harness:
            # Its NOTIFY comes at insertion, when it is not due: the fetch it pays for finds
            # nothing, and no notification says when it comes due.
            await harness.defer(3, schedule_in={"seconds": 1})
            await eventually(lambda: _true(3 in harness.done), every=0.02, deadline=4,
                             what="the scheduled job")

    async def test_without_credits_or_a_due_drain_no_fetch_reaches_the_database(
            self, settings: Settings) -> None:
        async with _running(settings, 1, drain=NEVER, poll=0.01) as harness:
            before = harness.fetches
            gate = harness.gates[0]
            asked = 0
            fetch_job = gate.fetch_job

            async def counted(*args: Any, **kwargs: Any) -> Any:
                nonlocal asked
                asked += 1
                return await fetch_job(*args, **kwargs)

            gate.fetch_job = counted  # type: ignore[method-assign]
            await eventually(lambda: _true(asked >= 20), every=0.01, what="20 polls")
            assert harness.fetches == before
