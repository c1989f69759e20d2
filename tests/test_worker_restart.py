"""A PostgreSQL restart under a running worker: on a private server this test starts (the
shared one is not ours to restart), the worker loses every connection mid-step and carries
on by itself once the server is back."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from domain.shared import migrate
from domain.shared.settings import Settings
from schema.app import create_app
from tests.factories import GraphQLClient
from tests.factories_runs import act, make_customer, make_team, start
from tests.factories_workflows import seed_core
from tests.workerlib import WorkerProcess, eventually, free_port, worker_env

pytestmark = pytest.mark.asyncio


def _binaries() -> Path | None:
    """The machine's PostgreSQL server binaries, else the embedded server's own."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
    return bundled if (bundled / "initdb").exists() else None


class PrivateServer:
    def __init__(self, root: Path) -> None:
        binaries = _binaries()
        if binaries is None:
            pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
        self.bin = binaries
        self.root = root
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
            runuser = shutil.which("runuser")
            if runuser is None or subprocess.run(
                    [shutil.which("id") or "/usr/bin/id", "postgres"],
                    capture_output=True).returncode != 0:
                pytest.skip("running as root without a postgres OS user")
            self.as_user = [runuser, "-u", "postgres", "--"]
            shutil.chown(root, "postgres")

    def _run(self, *command: str, timeout: float = 60) -> None:
        # No pipes: the postmaster would inherit them and pg_ctl -w would wait on them.
        try:
            subprocess.run([*self.as_user, *command], check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise AssertionError(f"{command[0]} {command[-1]} took over {timeout} s; the "
                                 f"server's log ends:\n{tail}") from exc

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.root / "data"), "-A", "trust",
                  "-U", "postgres")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-w", "-l",
                  str(self.root / "log"), "-o",
                  # fsync off: a throwaway cluster; its shutdown checkpoint must not wait on
                  # a disk the rest of the suite keeps busy (this test is about connections)
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")

    def restart(self) -> None:
        """Stop (fast: every connection is cut) and start again on the same port."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-w", "-m", "fast",
                  "stop", timeout=120)
        self.start()

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.root / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    # Not under pytest's tmp_path: that is private to root, and the server may run as postgres.
    root = Path(tempfile.mkdtemp(prefix="stepwise-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the server's OS user must reach its data directory
    server = PrivateServer(root)
    server.init()
    server.start()
    try:
        subprocess.run([*server.as_user, str(server.bin / "createdb"), "-h", "127.0.0.1",
                        "-p", str(server.port), "-U", "postgres", "stepwise"], check=True,
                       capture_output=True)
        migrate.upgrade(server.url("stepwise"))
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture
async def private_gql(private_server: PrivateServer, settings: Settings
                      ) -> AsyncIterator[tuple[GraphQLClient, Settings]]:
    """The app on the private server (`settings` first: it sets the session's JWT secret)."""
    settings = Settings.from_env(database_url=private_server.url("stepwise"))
    await seed_core(settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield GraphQLClient(http), settings


async def _status(url: str, run_id: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        status: str = await connection.fetchval("SELECT status FROM runs WHERE id = $1",
                                                run_id)
        return status
    finally:
        await connection.close()


async def test_a_restarted_database_does_not_stop_the_worker(
        private_server: PrivateServer, private_gql: tuple[GraphQLClient, Settings],
        clock_file: Path, fake_llm: Any, tmp_path: Path) -> None:
    gql, settings = private_gql
    team = await make_team(gql, settings)
    customer = await make_customer(gql, team, days=10, arr=90000)
    run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
    await fake_llm.script({"text": "lost in the restart", "delay": 3},
                          {"text": "After the restart."})
    process = WorkerProcess(worker_env(private_server.url("stepwise"), clock_file=clock_file,
                                       extra=fake_llm.env, log_dir=tmp_path)).start()
    try:
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                  branchId="needs-alternatives")
        await eventually(fake_llm.calls, what="the LLM call")
        await asyncio.to_thread(private_server.restart)
        back = time.monotonic()
        url = private_server.url("stepwise")

        async def completed() -> bool:
            try:
                return await _status(url, run_id) == "completed"
            except (OSError, asyncpg.PostgresError):
                return False

        await eventually(completed, deadline=20, what="the run to complete after the restart")
        recovered = time.monotonic() - back
        print(f"\nworker recovered {recovered:.2f} s after PostgreSQL came back")
        assert recovered < 10, process.output()[-3000:]
        assert process.process is not None
        assert process.process.poll() is None
    finally:
        process.stop()
