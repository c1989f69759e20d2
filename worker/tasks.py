"""One procrastinate task per domain task name (domain/jobs/models.py)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import procrastinate
import psycopg
import psycopg_pool
from procrastinate.jobs import Job as QueuedJob
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from domain.chat import service as chat
from domain.jobs import models as names
from domain.notifications import delivery
from domain.notifications.transports import Transports
from domain.runs import scan, work
from domain.shared.db import Database
from domain.shared.settings import JOBS_SCHEMA, Settings
from domain.shared.signing import signed_headers
from domain.tenants import service as tenants

log = logging.getLogger("stepwise.worker")


class WebhookFailed(Exception):
    pass


@dataclass(frozen=True)
class Backoff(BaseRetryStrategy):
    """`attempts` runs in all, waiting base, 2*base, 4*base... between them."""

    base: int
    attempts: int

    def get_retry_decision(self, *, exception: BaseException, job: QueuedJob
                           ) -> RetryDecision | None:
        if job.attempts + 1 >= self.attempts:
            return None
        if _connection_lost(exception):  # the database went away: the next try is cheap
            return RetryDecision(retry_in={"seconds": 1})
        return RetryDecision(retry_in={"seconds": self.base * 2 ** job.attempts})


def _connection_lost(exception: BaseException) -> bool:
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exception, DBAPIError):
        return bool(exception.connection_invalidated) or isinstance(
            exception.orig, (asyncpg.PostgresConnectionError, ConnectionError))
    return isinstance(exception, (asyncpg.PostgresConnectionError,
                                  asyncpg.exceptions.ConnectionDoesNotExistError,
                                  asyncpg.InterfaceError, ConnectionError, OSError))


@dataclass
class Runtime:
    """What every job of one worker process shares."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient

    @property
    def transports(self) -> Transports:
        return Transports(self.http)

    def final(self, context: procrastinate.JobContext) -> bool:
        return context.job.attempts + 1 >= self.settings.retry_attempts


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    await connection.set_autocommit(True)


def _pool(**options: Any) -> psycopg_pool.AsyncConnectionPool[Any]:
    # procrastinate asks for a check on every checkout (one more round trip per query): a
    # connection the server dropped fails its query instead, and the supervisor
    # (worker/main.py) starts again with a new pool; a broken one never returns to the pool.
    options.pop("check", None)
    return psycopg_pool.AsyncConnectionPool(**options)


def connector(settings: Settings, *, max_size: int) -> procrastinate.PsycopgConnector:
    """procrastinate's pool, in autocommit: each of its queries is one statement (a function
    call), so psycopg's implicit BEGIN and COMMIT were two round trips more per query, four
    per job.

    Its commits do not wait for the WAL flush (synchronous_commit off): a crash may forget
    the last few milliseconds of fetches and finishes, which only means a job is fetched
    again (still `todo`) or recovered as stalled (still `doing`) and runs again, and every
    job is a nudge that re-checks our tables first. Jobs are deferred inside our own
    transactions, which stay synchronous. The fetch's flush sat on every step's path."""
    return procrastinate.PsycopgConnector(
        conninfo=settings.jobs_database_url, min_size=1, max_size=max_size, timeout=5.0,
        kwargs={"options": f"-c search_path={JOBS_SCHEMA} -c synchronous_commit=off",
                "connect_timeout": 3},
        configure=_autocommit, pool_factory=_pool)


def build_app(runtime: Runtime, *, max_size: int) -> procrastinate.App:
    app = procrastinate.App(connector=connector(runtime.settings, max_size=max_size))
    retry = Backoff(base=runtime.settings.retry_base_seconds,
                    attempts=runtime.settings.retry_attempts)
    db = runtime.db

    def task(name: str) -> Any:
        return app.task(name=name, queue=names.QUEUE, retry=retry, pass_context=True)

    @task(names.EXECUTE_STEP)
    async def execute_step(context: procrastinate.JobContext, tenant_id: str, run_id: str,
                           step_id: str, attempt: int, started: bool = False,
                           reservation: str | None = None) -> str:
        return await work.execute_step(db, UUID(tenant_id), UUID(run_id), step_id, attempt,
                                       started=started,
                                       reservation=UUID(reservation) if reservation else None)

    @task(names.CALL_WEBHOOK)
    async def call_webhook(context: procrastinate.JobContext, tenant_id: str, run_id: str,
                           step_id: str, attempt: int, url: str, action_id: str | None = None,
                           branch_id: str | None = None, return_to: str | None = None,
                           timeout: float | None = None) -> str:  # noqa: ASYNC109 (job arg)
        tenant = UUID(tenant_id)
        async with db.transaction(tenant) as tx:
            secret = await tenants.webhook_secret(tx.session, tenant)
        key = f"{run_id}:{step_id}:{attempt}"

        async def post(body: bytes) -> None:
            headers = signed_headers(secret, body, timestamp=int(time.time()),
                                     idempotency_key=key)
            answer = await runtime.http.post(url, content=body, headers=headers,
                                             timeout=float(timeout or 10))
            if answer.status_code >= 300:
                raise WebhookFailed(f"HTTP {answer.status_code}")

        body = {"runId": run_id, "stepId": step_id, "attempt": attempt, "actionId": action_id,
                "branchId": branch_id, "returnToStep": return_to}
        return await work.call_webhook(db, tenant, UUID(run_id), step_id, attempt, call=post,
                                       body=body, final=runtime.final(context))

    @task(names.DELIVER)
    async def deliver(context: procrastinate.JobContext, tenant_id: str,
                      notification_id: str) -> str:
        return await delivery.deliver(db, UUID(tenant_id), UUID(notification_id),
                                      send=runtime.transports.send,
                                      final=runtime.final(context))

    @task(names.RELEASE)
    async def release(context: procrastinate.JobContext, tenant_id: str,
                      notification_id: str) -> str:
        return await delivery.release(db, UUID(tenant_id), UUID(notification_id))

    @task(names.START_RUN)
    async def start_run(context: procrastinate.JobContext, tenant_id: str, run_id: str) -> str:
        return await work.begin_pending(db, UUID(tenant_id), UUID(run_id))

    @task(names.FIRE_TIMER)
    async def fire_timer(context: procrastinate.JobContext, tenant_id: str,
                         timer_id: str) -> str:
        return await work.fire_timer(db, UUID(tenant_id), UUID(timer_id))

    @task(names.SCAN)
    async def scan_tenant(context: procrastinate.JobContext, tenant_id: str) -> str:
        reports = await scan.scan_all(db, [UUID(tenant_id)])
        return json.dumps([report.as_dict() for report in reports], default=str)

    @task(names.CHAT_REPLY)
    async def chat_reply(context: procrastinate.JobContext, tenant_id: str, thread_id: str,
                         message_id: str) -> str:
        return await chat.reply(db, UUID(tenant_id), UUID(thread_id), UUID(message_id))

    @task(names.CHAT_EXPIRE)
    async def chat_expire(context: procrastinate.JobContext, tenant_id: str,
                          thread_id: str) -> str:
        return await chat.expire_idle(db, UUID(tenant_id), UUID(thread_id))

    return app
