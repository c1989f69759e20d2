"""Benchmark plumbing: a scratch database, a uvicorn server process, and wrk (or a fallback)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from domain.shared import migrate
from domain.shared.settings import PROJECT_ROOT


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_url() -> str:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured
    from domain.shared.embedded import embedded_url

    return embedded_url("postgres")


@contextmanager
def scratch_database(prefix: str = "stepwise_bench") -> Iterator[str]:
    """A migrated database that is dropped afterwards; yields its owner URL."""
    server = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(_plain(server))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if os.environ.get("STEPWISE_BENCH_KEEP"):  # to inspect it afterwards (EXPLAIN)
            print(f"kept database {name}", file=sys.stderr)
        else:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(database_url: str, *, app: str = "schema.app:create_app",
                   workers: int = 1) -> Iterator[str]:
    """uvicorn (uvloop + httptools) in a child process; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "warning",
               "--no-access-log", "--loop", "uvloop", "--http", "httptools",
               "--ws-per-message-deflate", "false"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str

    def line(self, label: str) -> str:
        return (f"{label:<44} {self.requests_per_second:>9.0f} req/s   p50 {self.p50_ms:6.2f} ms"
                f"   p99 {self.p99_ms:6.2f} ms   ({self.requests} requests, {self.errors} errors,"
                f" {self.tool})")


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(url: str, body: Mapping[str, object] | None, *, token: str | None = None,
         seconds: int = 10, connections: int = 16) -> LoadResult:
    """Drive `url` with POSTs of `body` (GET if None) from wrk, or from Python if wrk is missing."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if shutil.which("wrk"):
        return _wrk(url, body, headers, seconds, connections)
    return asyncio.run(_python_load(url, body, headers, seconds, connections))


def _wrk(url: str, body: Mapping[str, object] | None, headers: dict[str, str], seconds: int,
         connections: int) -> LoadResult:
    lua = ['wrk.method = "%s"' % ("POST" if body is not None else "GET")]
    if body is not None:
        lua.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    lua += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lua.append("""
done = function(summary, latency, requests)
  io.write(string.format("STEPWISE %d %d %d %d %d\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end""")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lua))
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url],
        capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    os.unlink(script.name)
    line = next(x for x in output.splitlines() if x.startswith("STEPWISE"))
    requests, errors, p50, p99, duration = (int(x) for x in line.split()[1:])
    return LoadResult(requests / (duration / 1e6), p50 / 1000, p99 / 1000, requests, errors,
                      f"wrk -t2 -c{connections} -d{seconds}s")


async def _python_load(url: str, body: Mapping[str, object] | None, headers: dict[str, str],
                       seconds: int, connections: int) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            started = time.perf_counter()
            if body is None:
                response = await client.get(url, headers=headers)
            else:
                response = await client.post(url, json=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as client:
        began = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        elapsed = time.monotonic() - began
    cuts = statistics.quantiles(latencies, n=100)
    return LoadResult(len(latencies) / elapsed, cuts[49], cuts[98], len(latencies), errors,
                      f"python httpx x{connections} (wrk not installed)")
