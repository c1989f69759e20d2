"""What worker tests start: the worker itself (a subprocess, stopped by its pid), a local
SMTP server and a local webhook receiver, all on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from domain.shared.settings import PROJECT_ROOT
from tests.factories import GraphQLClient
from tests.factories_runs import Team, run

T = TypeVar("T")


async def run_in_status(gql: GraphQLClient, team: Team, run_id: str,
                        status: str = "completed") -> dict[str, Any]:
    """The Run query's answer once the run has `status` (polled with a 30 s deadline)."""
    async def probe() -> dict[str, Any] | None:
        detail = await run(gql, team, run_id)
        return detail if detail["status"] == status else None

    return await eventually(probe, deadline=30, what=f"run {run_id} to be {status}")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually(probe: Callable[[], Awaitable[T | None]], *, deadline: float = 20.0,
                     every: float = 0.1, what: str = "the condition") -> T:
    """Poll `probe` until it returns something truthy, or fail after `deadline` seconds."""
    until = time.monotonic() + deadline
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > until:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(every)


# SMTP


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def key(self) -> str:
        return str(self.message["X-Stepwise-Idempotency-Key"])


@dataclass
class SMTPServer:
    """Just enough SMTP for smtplib: every accepted message is kept."""

    host: str = "127.0.0.1"
    port: int = 0
    mails: list[Mail] = field(default_factory=list)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await say("220 localhost ESMTP test")
        sender, recipients = "", []
        try:
            while line := await reader.readline():
                command = line.decode(errors="replace").strip()
                verb = command[:4].upper()
                if verb in ("EHLO", "HELO"):
                    await say("250 localhost")
                elif verb == "MAIL":
                    sender, recipients = command.partition(":")[2].strip(" <>"), []
                    await say("250 ok")
                elif verb == "RCPT":
                    recipients.append(command.partition(":")[2].strip(" <>"))
                    await say("250 ok")
                elif verb == "DATA":
                    await say("354 go ahead")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.mails.append(Mail(sender, recipients,
                                           message_from_bytes(data[:-5].replace(b"\r\n..",
                                                                                b"\r\n."))))
                    await say("250 queued")
                elif verb == "QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("250 ok")
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SMTPServer]:
        server = await asyncio.start_server(self._session, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


# Webhooks


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    """Records every POST; `fail(path, n)` answers the next n requests to it with 500."""

    address: str = ""
    received: list[Received] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, path: str, times: int) -> None:
        self.failures[path] = times

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def at(self, path: str, *, ok_only: bool = True) -> list[Received]:
        return [r for r in self.received if r.path == path and (r.status < 300 or not ok_only)]

    def app(self) -> Starlette:
        async def receive(request: Request) -> JSONResponse:
            path = request.url.path
            status = 200
            if self.failures.get(path, 0) > 0:
                self.failures[path] -= 1
                status = 500
            self.received.append(Received(path, dict(request.headers), await request.body(),
                                          status))
            return JSONResponse({"ok": status == 200}, status_code=status)

        return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


# The worker


@dataclass
class WorkerProcess:
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    options: list[str] = field(default_factory=list)  # more `stepwise worker` options

    def start(self) -> WorkerProcess:
        assert self.process is None or self.process.poll() is not None
        self.log = Path(self.env["STEPWISE_TEST_LOG_DIR"]) / f"worker-{time.time_ns()}.log"
        with self.log.open("wb") as handle:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scripts.cli", "worker", "--concurrency", "4",
                 "--scan-every", "0", *self.options], cwd=PROJECT_ROOT, env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


async def forget_queued_jobs(database_url: str) -> None:
    """Drop jobs other tests left queued in the shared session database (their runs are
    not this test's), so a worker started now only does what this test causes."""
    import asyncpg  # the superuser URL of the test database

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""),
                                       server_settings={"search_path": "jobs"})
    try:  # the engine's triggers name their tables unqualified
        await connection.execute("DELETE FROM procrastinate_jobs")
    finally:
        await connection.close()


def worker_env(database_url: str, *, clock_file: Path, extra: dict[str, str],
               log_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STEPWISE_", "ANTHROPIC_"))}
    env.update({
        "DATABASE_URL": database_url,
        "STEPWISE_JWT_SECRET": os.environ["STEPWISE_JWT_SECRET"],
        "STEPWISE_CLOCK_FILE": str(clock_file),
        "STEPWISE_RETRY_BASE_SECONDS": "1",
        "STEPWISE_TICK_SECONDS": "0.2",
        "STEPWISE_STALLED_SECONDS": "2",
        "STEPWISE_BUDGET_RETRY_SECONDS": "1",
        "STEPWISE_LLM_MODEL": "claude-fake-1",
        "STEPWISE_LLM_MAX_RETRIES": "0",
        "STEPWISE_LLM_TIMEOUT": "10",
        "STEPWISE_TEST_LOG_DIR": str(log_dir),
        **extra,
    })
    return env
