"""The worker's fetch loop: a job notified while a fetch that finds nothing is in flight is
fetched at once, not at the next poll (worker/main.JobWorker over procrastinate's Worker)."""

from __future__ import annotations

from typing import Any

import procrastinate
import procrastinate.testing
import pytest

from worker.main import JobWorker

pytestmark = pytest.mark.asyncio


class Jobs:
    """A job manager whose fetches find nothing; `notify_during` fetches get a notification
    while they are in flight (the job it announces committed after the fetch's snapshot)."""

    def __init__(self, worker: list[JobWorker], notify_during: set[int]) -> None:
        self.worker = worker
        self.notify_during = notify_during
        self.fetches = 0

    async def fetch_job(self, *, queues: Any, worker_id: int) -> None:
        self.fetches += 1
        if self.fetches in self.notify_during:
            await self.worker[0]._handle_notification(
                channel="procrastinate_any_queue_v1",
                notification={"type": "job_inserted", "job_id": 1})


def _worker(notify_during: set[int]) -> tuple[JobWorker, Jobs]:
    app = procrastinate.App(connector=procrastinate.testing.InMemoryConnector())
    holder: list[JobWorker] = []
    jobs = Jobs(holder, notify_during)
    worker = JobWorker(app=app, queues=["q"], concurrency=2)
    worker.app = type("App", (), {"job_manager": jobs, "tasks": {}})()  # type: ignore[assignment]
    worker.worker_id = 1
    holder.append(worker)
    return worker, jobs


class TestWakeUp:
    async def test_a_notification_during_an_empty_fetch_fetches_again(self) -> None:
        worker, jobs = _worker(notify_during={1})
        await worker._fetch_and_process_jobs()
        assert jobs.fetches == 2  # procrastinate alone would wait for the next poll

    async def test_without_notifications_one_empty_fetch_ends_the_round(self) -> None:
        worker, jobs = _worker(notify_during=set())
        await worker._fetch_and_process_jobs()
        assert jobs.fetches == 1
