"""One fresh, migrated database per test session, on DATABASE_URL's server or the embedded one."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from domain.shared import migrate
from domain.shared.db import Database
from domain.shared.settings import Settings
from schema.app import create_app
from tests.factories import GraphQLClient

pytest_plugins = ["tests.fake_llm_fixtures"]


def _server_url() -> str:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured
    from domain.shared.embedded import embedded_url

    return embedded_url("postgres")


def _plain(url: str) -> str:
    """asyncpg wants postgresql://, not postgresql+asyncpg://."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_plain(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Owner URL of a new database, migrated to head; dropped at the end of the session."""
    server = _server_url()
    name = f"stepwise_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    os.environ.pop("STEPWISE_APP_DATABASE_URL", None)
    # A secret of the session's own: tests never write .data/jwt-secret.
    os.environ.setdefault("STEPWISE_JWT_SECRET", secrets.token_urlsafe(48))
    return Settings.from_env(database_url=database_url)


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(scope="session")
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stepwise.test") as client:
        yield client


@pytest.fixture(scope="session")
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@pytest_asyncio.fixture(scope="session")
async def app_connection_factory(settings: Settings):  # type: ignore[no-untyped-def]
    """Open raw asyncpg connections as the non-owner app role (for RLS attacks)."""
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        connection = await asyncpg.connect(_plain(settings.app_database_url))
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        await connection.close()


@pytest_asyncio.fixture(scope="session")
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The app under a real uvicorn server on a free loopback port (for WebSocket tests)."""
    async with serving(create_app(settings)) as address:
        yield address


@asynccontextmanager
async def serving(application: Starlette) -> AsyncIterator[str]:
    """Run `application` under uvicorn on a port the OS picks; yields host:port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(scope="session")
async def app_db(settings: Settings) -> AsyncIterator[Database]:
    """The app-role pool the worker's jobs use (tests call job functions with it)."""
    database = Database(settings.app_database_url, pool_size=4)
    yield database
    await database.dispose()


@pytest.fixture
def clock_file(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A controllable clock for this test (domain.shared.clock): returns the file to move."""
    path = tmp_path / "clock"
    path.write_text("0")
    monkeypatch.setenv("STEPWISE_CLOCK_FILE", str(path))
    return path


@pytest_asyncio.fixture
async def worker(database_url, clock_file, fake_llm, tmp_path):  # type: ignore[no-untyped-def]
    """A `stepwise worker` subprocess for this test (stopped by its pid), talking to the fake
    LLM and the test's clock; jobs other tests left queued are dropped first."""
    from tests.workerlib import WorkerProcess, forget_queued_jobs, worker_env

    await forget_queued_jobs(database_url)
    process = WorkerProcess(worker_env(database_url, clock_file=clock_file,
                                       extra=fake_llm.env, log_dir=tmp_path)).start()
    try:
        yield process
    finally:
        process.stop()
