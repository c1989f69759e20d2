"""The run engine under load: runs started per second, step transitions per second, and the
time from a ChooseBranch commit to the next step being ready, with 1 and 2 worker processes;
then the renewal scan over 10,000 customers (scripts/bench_scan.py).

Usage: python -m scripts.bench_runs [--runs 100] [--pairs 5] [--clients 16] [--rate 75]

One server process (uvicorn) and the workers run as their own processes on a scratch
database; the LLM is the local fake (scripts/fake_llm.py), so an llm step costs its real
path (job, SDK call over HTTP, two transactions) but no model time. The workflow is a chain
of `--pairs` (task -> llm) pairs ending in a task: each ChooseBranch commits, the worker runs
the llm step, and the next task is ready (waiting) again; one commit is two transitions (the
task completes, then the llm step). "Ready" is seen by one connection listening to the
run-event NOTIFY and reading an awaited run's state after each of its events (Watcher), so a
latency carries one notification and one read.

Latency is measured twice per worker count:
- saturated (closed loop): `--clients` clients each choose, wait until ready, choose again,
  as fast as the system allows. This measures capacity; its latency is mostly queueing
  (16 clients keep 16 jobs in the queue), so it says how long work waits at saturation.
- offered load (open loop): ChooseBranch commits arrive at `--rate` per second (Poisson
  arrivals, independent of completions) for `--open-seconds` on runs of their own; printed
  with the fraction of the capacity measured just before. This is the latency a CSM sees
  while the system is busy but not overloaded.
Targets on a 2-core machine: >= 200 transitions/s, p99 <= 100 ms, scan <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

from domain.auth import tokens
from domain.seeding import service as seeding
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users.models import Role
from scripts import bench_scan, benchlib

START = """mutation($input: StartRunInput!) { startRun(input: $input) {
  run { id status currentStepId } errors { code message } } }"""
CHOOSE = """mutation($r: ID!, $b: String!) { chooseBranch(runId: $r, branchId: $b) {
  run { status currentStepId } errors { code message } } }"""
CREATE = """mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) {
  workflow { key } errors { code message path } } }"""


def chain(key: str, pairs: int, *, kind: str = "llm",
          prompt: str = "Next move for {{customer.name}}?") -> dict[str, Any]:
    """task-1 -> <kind>-1 -> task-2 -> ... -> task-(pairs+1), which ends the run; `kind` is
    a step type the worker runs (llm, query), with `prompt`."""
    steps: list[dict[str, Any]] = []
    for index in range(1, pairs + 1):
        steps.append({"id": f"task-{index}", "name": f"Task {index}", "type": "task",
                      "chatBranches": [{"id": "go", "label": "Go", "type": "fixed",
                                        "userPrompts": ["Go"], "response": "On we go.",
                                        "next": f"{kind}-{index}"}]})
        steps.append({"id": f"{kind}-{index}", "name": f"Think {index}", "type": kind,
                      "execution": {"llmPrompt": prompt},
                      "routing": {"defaultRoute": f"task-{index + 1}"}})
    steps.append({"id": f"task-{pairs + 1}", "name": "Wrap up", "type": "task",
                  "chatBranches": [{"id": "done", "label": "Done", "type": "fixed",
                                    "userPrompts": ["Done"], "response": "Finished."}]})
    return {"id": key, "name": f"Bench {key}", "description": f"{kind} chain",
            "version": "1.0.0", "trigger": {"manualTriggers": ["csm"]},
            "context": {"systemPrompt": "Be brief."}, "steps": steps}


class _Awaited:
    """Runs awaited at a (step, status), each with the future a read that sees it resolves."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: UUID | None = None) -> None:
        self.connection = connection
        self.tenant_id = tenant_id  # given, the read goes through the primary key
        self.waiting: dict[UUID, tuple[str, str, asyncio.Future[float]]] = {}
        self.skips: dict[UUID, int] = {}

    def wait_for(self, run_id: UUID, step: str, status: str, *, skip: int = 0
                 ) -> asyncio.Future[float]:
        """`skip`: notifications of the run that cannot mean it is there (the commit of the
        ChooseBranch itself, when an I/O step lies between), so are not worth a read."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = (step, status, future)
        if skip:
            self.skips[run_id] = skip
        return future

    async def _read(self, ids: list[UUID]) -> None:
        """Read the runs once: resolve those at their awaited state, fail those that ended."""
        if self.tenant_id is None:
            rows = await self.connection.fetch(
                "SELECT id, current_step_id, status FROM runs WHERE id = ANY($1)", ids)
        else:
            rows = await self.connection.fetch(
                "SELECT id, current_step_id, status FROM runs "
                "WHERE tenant_id = $2 AND id = ANY($1)", ids, self.tenant_id)
        seen = time.perf_counter()
        for row in rows:
            step, status, future = self.waiting[row["id"]]
            if row["current_step_id"] == step and row["status"] == status:
                del self.waiting[row["id"]]
                self.skips.pop(row["id"], None)
                future.set_result(seen)
            elif row["status"] in ("failed", "cancelled"):
                del self.waiting[row["id"]]
                self.skips.pop(row["id"], None)
                future.set_exception(RuntimeError(f"run {row['id']} {row['status']}"))


class Poller(_Awaited):
    """One connection watching every in-flight run: resolves a future when a run reaches
    the awaited (step, status)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection)
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            if self.waiting:
                await self._read(list(self.waiting))
            await asyncio.sleep(0.002)


LIVE_CHANNEL = "stepwise_live"  # run-event NOTIFY (migration 0007): "run:<tenant>:<run> <seq>"


class Watcher(_Awaited):
    """Poller's job on a connection of its own, woken by the run-event NOTIFY: one read of
    the awaited runs per event of one of them (and every 50 ms, should a notification be
    missed), instead of a read every 2 ms whatever happens. Reading 500 times a second cost
    the measured machine a tenth of a core; this costs one read per commit: the ChooseBranch's
    own commit notifies first (notifications arrive in commit order) and cannot mean ready
    when the llm step lies between, so a wait skips it (`skip`); the worker's notifies next."""

    def __init__(self, connection: asyncpg.Connection, tenant_id: UUID | None = None) -> None:
        super().__init__(connection, tenant_id)
        self.dirty: set[UUID] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Watcher:
        await self.connection.add_listener(LIVE_CHANNEL, self._notified)
        self.task = asyncio.create_task(self._loop())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.connection.remove_listener(LIVE_CHANNEL, self._notified)

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError, IndexError):
            run_id = UUID(payload.split()[0].rsplit(":", 1)[1])
            if run_id in self.waiting:
                if self.skips.get(run_id):
                    self.skips[run_id] -= 1
                    return
                self.dirty.add(run_id)
                self.wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), 0.05)
                timed_out = False
            except TimeoutError:
                timed_out = True
            self.wake.clear()
            ids = list(self.waiting) if timed_out else [r for r in self.dirty
                                                         if r in self.waiting]
            self.dirty.clear()
            if ids:
                await self._read(ids)


class Client:
    """The load's HTTP client, on aiohttp: the load shares the machine's cores with the
    system it measures, and aiohttp spends about a third less CPU per request than httpx."""

    def __init__(self, base: str, token: str, *, connections: int) -> None:
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends: reusing one the
        # server is closing fails the request.
        self.session = aiohttp.ClientSession(
            base_url=base, headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=2.0),
            timeout=aiohttp.ClientTimeout(total=60), json_serialize=json.dumps)

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post("/graphql", json={"query": query,
                                                       "variables": variables}) as answer:
            body: dict[str, Any] = await answer.json(loads=orjson.loads)
        return body

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


async def _gql(http: httpx.AsyncClient | Client, query: str, **variables: Any
               ) -> dict[str, Any]:
    if isinstance(http, Client):
        body = await http.graphql(query, variables)
    else:
        body = (await http.post("/graphql", json={"query": query,
                                                   "variables": variables})).json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    data: dict[str, Any] = body["data"]
    return data


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def _database_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (a server on this
    machine; an empty dict otherwise)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                title = cmdline.read()
        except OSError:
            continue
        if title.startswith(b"postgres:") and f" {database} ".encode() in title:
            found[int(pid)] = _cpu_seconds([int(pid)])
    return found


def _cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _server_pids() -> list[int]:
    """This process's children that are the uvicorn server (for its CPU time)."""
    found = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as children:
                pids = [int(p) for p in children.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if b"uvicorn" in cmdline.read():
                        found.append(pid)
            except OSError:
                continue
    return found


def _log() -> Any:
    """Where workers write (STEPWISE_BENCH_LOG=path appends there; else nowhere)."""
    path = os.environ.get("STEPWISE_BENCH_LOG")
    return open(path, "ab") if path else subprocess.DEVNULL


def _workers(count: int, url: str, fake_url: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "ANTHROPIC_BASE_URL": fake_url,
           "ANTHROPIC_API_KEY": "fake", "STEPWISE_LLM_MODEL": "claude-fake-1"}
    return [subprocess.Popen([sys.executable, "-m", "scripts.cli", "worker", "--concurrency",
                              "16", "--scan-every", "0"], cwd=PROJECT_ROOT, env=env,
                             stdout=_log(), stderr=subprocess.STDOUT)
            for _ in range(count)]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


async def _start_runs(http: Client, *, key: str, customers: list[str],
                      clients: int) -> tuple[list[UUID], float]:
    """One run of `key` per customer, `clients` at a time; the ids and runs started/s."""
    gate = asyncio.Semaphore(clients)
    run_ids: list[UUID] = []

    async def start(customer: str) -> None:
        async with gate:
            data = await _gql(http, START, input={"workflowKey": key, "customerId": customer})
            if data["startRun"]["errors"]:
                raise RuntimeError(data["startRun"]["errors"])
            run_ids.append(UUID(data["startRun"]["run"]["id"]))

    began = time.perf_counter()
    await asyncio.gather(*(start(c) for c in customers))
    return run_ids, len(customers) / (time.perf_counter() - began)


async def _create_chain(http: Client, key: str, pairs: int) -> None:
    created = await _gql(http, CREATE, input={"key": key, "name": key,
                                               "config": chain(key, pairs)})
    if created["createWorkflow"]["errors"]:
        raise RuntimeError(created["createWorkflow"]["errors"])


# A month of finished work before the measurement, as a live database has: tables with rows
# and statistics. On empty, never-analyzed tables every index looks equally cheap, and the
# generic plans the connections cache then (kept until the tables are analyzed) may scan a
# tenant's rows through the wrong index for each one-row update.
_HISTORY = """
WITH made AS (
  INSERT INTO runs (tenant_id, workflow_id, workflow_key, workflow_version, customer_id,
                    status, current_step_id, trigger, next_seq, created_at, updated_at,
                    started_at, finished_at)
  SELECT w.tenant_id, w.id, w.key, w.latest_version, c.id, 'completed', 'task-1', 'manual',
         $3 * 5, now() - interval '30 days' + i * interval '1 minute', now(), now(), now()
  FROM workflows w, generate_series(1, $2) AS i
  JOIN customers c ON c.external_id = 'c' || (1 + i % $4)
  WHERE w.key = $1 RETURNING tenant_id, id),
steps AS (
  INSERT INTO run_steps (tenant_id, run_id, step_id, step_type, status, attempts, input,
                         output, started_at, finished_at)
  SELECT m.tenant_id, m.id, 'llm-' || k, 'llm', 'completed', 1,
         jsonb_build_object('prompt', 'Next move for Customer ' || k || '?'),
         to_jsonb('Call them this week about the renewal.'::text), now(), now()
  FROM made m, generate_series(1, $3) AS k),
usage AS (
  INSERT INTO llm_usage (tenant_id, status, purpose, model, price_version, run_id, step_id,
                         workflow_key, input_tokens, output_tokens, tokens, settled_at)
  SELECT m.tenant_id, 'settled', 'llm_step', 'claude-fake-1', '2026-11-01', m.id, 'llm-' || k,
         $1, 120, 40, 160, now()
  FROM made m, generate_series(1, $3) AS k)
INSERT INTO run_events (tenant_id, run_id, seq, type, step_id, payload)
SELECT m.tenant_id, m.id, e, 'step_completed', 'llm-' || (1 + e / 5), '{}'
FROM made m, generate_series(1, $3 * 5) AS e
"""


async def _history(owner: asyncpg.Connection, key: str, *, runs: int, pairs: int,
                   customers: int) -> float:
    """`runs` completed runs of `key` with their steps, events and ledger rows, then
    ANALYZE; the seconds it took."""
    began = time.perf_counter()
    await owner.execute(_HISTORY, key, runs, pairs, customers)
    await owner.execute("ANALYZE")
    return time.perf_counter() - began


async def _completed(owner: asyncpg.Connection) -> int:
    value = await owner.fetchval("SELECT count(*) FROM run_steps WHERE status = 'completed'")
    return int(value)


async def _phase(http: Client, owner: asyncpg.Connection,
                 watch: asyncpg.Connection, *, key: str, tenant_id: UUID, database: str,
                 customers: list[str], pairs: int, clients: int, workers: int,
                 worker_pids: list[int]) -> dict[str, float]:
    """Saturated: `clients` closed-loop clients drive every run to its end."""
    gate = asyncio.Semaphore(clients)
    run_ids, start_rate = await _start_runs(http, key=key, customers=customers,
                                            clients=clients)
    poller = await Watcher(watch, tenant_id).start()
    latencies: list[float] = []

    async def drive(run_id: UUID) -> None:
        async with gate:
            for index in range(1, pairs + 1):
                ready = poller.wait_for(run_id, f"task-{index + 1}", "waiting", skip=1)
                data = await _gql(http, CHOOSE, r=str(run_id), b="go")
                committed = time.perf_counter()  # the response follows the commit
                if data["chooseBranch"]["errors"]:
                    raise RuntimeError(data["chooseBranch"]["errors"])
                latencies.append(await asyncio.wait_for(ready, 60) - committed)
            data = await _gql(http, CHOOSE, r=str(run_id), b="done")
            if data["chooseBranch"]["run"]["status"] != "completed":
                raise RuntimeError(f"run {run_id} did not complete")

    before = await _completed(owner)
    cpu_before = _cpu_seconds(worker_pids), _cpu_seconds(_server_pids())
    database_before = _database_cpu(database)
    began = time.perf_counter()
    await asyncio.gather(*(drive(r) for r in run_ids))
    elapsed = time.perf_counter() - began
    database_cpu = _cpu_since(database_before, _database_cpu(database))
    transitions = await _completed(owner) - before
    await poller.stop()
    return {"workers": workers, "start_rate": start_rate,
            "transitions": transitions / elapsed, "commits": len(latencies) / elapsed,
            "p50": statistics.median(latencies) * 1000, "p99": _percentile(latencies, 0.99) * 1000,
            "worker_cpu_ms": (_cpu_seconds(worker_pids) - cpu_before[0]) * 1000 / transitions,
            "server_cpu_ms": (_cpu_seconds(_server_pids()) - cpu_before[1]) * 1000 / transitions,
            "database_cpu_ms": database_cpu * 1000 / transitions,
            "runs": len(run_ids), "seconds": elapsed}


def _dump(path: str, began: float, timeline: list[tuple[float, float]]) -> None:
    """Seconds into the open loop and latency in ms, one commit per line: whether the tail
    is spread (queueing) or bunched (a pause somewhere)."""
    with open(path, "w") as dump:
        dump.writelines(f"{at - began:.4f} {latency * 1000:.2f}\n"
                        for at, latency in sorted(timeline))


async def _open_phase(http: Client, owner: asyncpg.Connection,
                      watch: asyncpg.Connection, *, key: str, tenant_id: UUID,
                      database: str, customers: list[str], pairs: int, rate: float, seconds: float,
                      workers: int, seed: int, worker_pids: list[int]) -> dict[str, float]:
    """Offered load: ChooseBranch commits arrive at `rate` per second (Poisson), whatever
    the system has finished; each goes to a run whose next task is ready."""
    run_ids, _ = await _start_runs(http, key=key, customers=customers, clients=16)
    poller = await Watcher(watch, tenant_id).start()
    ready: list[tuple[UUID, int]] = [(run_id, 1) for run_id in run_ids]  # (run, its task)
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (commit seen, latency): STEPWISE_BENCH_DUMP
    starved = 0  # arrivals that found no run ready: the runs are all busy (overload)
    in_flight: set[asyncio.Task[None]] = set()
    chooser = random.Random(seed)  # noqa: S311 (a reproducible load, not a secret)

    async def choose(run_id: UUID, index: int) -> None:
        waiting = poller.wait_for(run_id, f"task-{index + 1}", "waiting", skip=1)
        data = await _gql(http, CHOOSE, r=str(run_id), b="go")
        committed = time.perf_counter()
        if data["chooseBranch"]["errors"]:
            raise RuntimeError(data["chooseBranch"]["errors"])
        latencies.append(await asyncio.wait_for(waiting, 60) - committed)
        timeline.append((committed, latencies[-1]))
        if index < pairs:
            ready.append((run_id, index + 1))

    arrivals = random.Random(seed + 1)  # noqa: S311 (a reproducible load, not a secret)
    cpu_before = _cpu_seconds(worker_pids), _cpu_seconds(_server_pids())
    database_before = _database_cpu(database)
    began = time.perf_counter()
    due = began
    while due - began < seconds:
        due += arrivals.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if not ready:
            starved += 1
            continue
        run_id, index = ready.pop(chooser.randrange(len(ready)))
        task = asyncio.create_task(choose(run_id, index))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    offered = time.perf_counter() - began
    if in_flight:
        await asyncio.gather(*in_flight)
    worker_cpu = _cpu_seconds(worker_pids) - cpu_before[0]
    server_cpu = _cpu_seconds(_server_pids()) - cpu_before[1]
    database_cpu = _cpu_since(database_before, _database_cpu(database))
    await poller.stop()
    if os.environ.get("STEPWISE_BENCH_DUMP"):
        _dump(f"{os.environ['STEPWISE_BENCH_DUMP']}.{workers}", began, timeline)
    return {"workers": workers, "rate": rate, "achieved": len(latencies) / offered,
            "starved": starved, "p50": statistics.median(latencies) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000, "commits": len(latencies),
            "seconds": offered,
            "worker_cpu_ms": worker_cpu * 1000 / (2 * len(latencies)),
            "server_cpu_ms": server_cpu * 1000 / (2 * len(latencies)),
            "database_cpu_ms": database_cpu * 1000 / (2 * len(latencies))}


async def _measure(url: str, base: str, fake_url: str, *, runs: int, pairs: int,
                   clients: int, rate: float, open_seconds: float, seed: int,
                   worker_counts: list[int], history: int
                   ) -> list[tuple[dict[str, float], dict[str, float] | None]]:
    settings = Settings.from_env(database_url=url)
    await seeding.seed_core(settings.database_url)
    made = await create_tenant_with_admin(settings.database_url, name="Runs bench",
                                          admin_email="admin@runs.bench")
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN)
    owner = await asyncpg.connect(benchlib._plain(url))
    database = str(make_url(url).database)
    watch = await asyncpg.connect(benchlib._plain(url))  # LISTEN for "ready", beside owner
    # Its read takes an array of run ids: without this every read would be planned anew.
    await watch.execute("SET plan_cache_mode = force_generic_plan")
    # The open loop's runs are its own (fresh, at their first task), enough for every
    # arrival plus those in flight.
    open_runs = math.ceil(rate * open_seconds / pairs) + 64 if rate > 0 else 0
    results: list[tuple[dict[str, float], dict[str, float] | None]] = []
    try:
        ids = await owner.fetch(
            "INSERT INTO customers (tenant_id, external_id, name, arr, renewal_date) "
            "SELECT $1, 'c' || i, 'Customer ' || i, 100000, current_date + 30 "
            "FROM generate_series(1, $2) AS i RETURNING id", made.tenant_id,
            max(runs, open_runs))
        customers = [str(row["id"]) for row in ids]
        # The open loop must not queue on the client side: room for every commit in flight.
        async with Client(base, token, connections=max(clients, 128)) as http:
            if history:
                await _create_chain(http, "bench-history", pairs)
                took = await _history(owner, "bench-history", runs=history, pairs=pairs,
                                      customers=len(customers))
                print(f"history: {history} finished runs written and analyzed in {took:.1f} s",
                      file=sys.stderr)
            for workers in worker_counts:
                key = f"bench-{workers}"
                await _create_chain(http, key, pairs)
                if open_runs:
                    await _create_chain(http, f"{key}-open", pairs)
                processes = _workers(workers, url, fake_url)
                try:
                    await asyncio.sleep(3)  # let the workers connect and import
                    closed = await _phase(http, owner, watch, key=key,
                                          tenant_id=made.tenant_id, database=database,
                                          customers=customers[:runs],
                                          pairs=pairs, clients=clients, workers=workers,
                                          worker_pids=[p.pid for p in processes])
                    opened = None
                    if open_runs:
                        opened = await _open_phase(
                            http, owner, watch, key=f"{key}-open", tenant_id=made.tenant_id,
                            database=database, customers=customers[:open_runs],
                            pairs=pairs, rate=rate, seconds=open_seconds, workers=workers,
                            seed=seed, worker_pids=[p.pid for p in processes])
                    results.append((closed, opened))
                finally:
                    _stop(processes)
    finally:
        await owner.close()
        await watch.close()
    return results


def _report(args: argparse.Namespace, results: list[tuple[dict[str, float],
                                                           dict[str, float] | None]]) -> None:
    print(f"{args.runs} runs of {args.pairs} (task -> llm) pairs, {os.cpu_count()} cores; "
          "one ChooseBranch commit = 2 step transitions")
    print(f"saturated (closed loop, {args.clients} clients choosing as fast as they can): "
          "capacity, and latency that is mostly queueing")
    print(f"{'workers':>7} {'starts/s':>9} {'transitions/s':>14} {'commits/s':>10} "
          f"{'ready p50 ms':>13} {'ready p99 ms':>13} {'worker CPU ms':>14} "
          f"{'server CPU ms':>14} {'database CPU ms':>16}")
    for closed, _ in results:
        print(f"{closed['workers']:7.0f} {closed['start_rate']:9.1f} "
              f"{closed['transitions']:14.1f} {closed['commits']:10.1f} {closed['p50']:13.1f} "
              f"{closed['p99']:13.1f} {closed['worker_cpu_ms']:14.2f} "
              f"{closed['server_cpu_ms']:14.2f} {closed['database_cpu_ms']:16.2f}")
    print("  (CPU ms: per step transition, all worker processes / the server process / the "
          "database's backends, when PostgreSQL runs on this machine)")
    if args.rate > 0:
        print(f"offered load (open loop, Poisson arrivals at {args.rate:g} ChooseBranch "
              f"commits/s = {2 * args.rate:g} transitions/s, {args.open_seconds:g} s):")
        print(f"{'workers':>7} {'offered/s':>10} {'achieved/s':>11} {'of capacity':>12} "
              f"{'ready p50 ms':>13} {'ready p99 ms':>13} {'starved':>8} "
              f"{'worker CPU ms':>14} {'server CPU ms':>14} {'database CPU ms':>16}")
        for closed, opened in results:
            if opened is None:
                continue
            print(f"{opened['workers']:7.0f} {opened['rate']:10.1f} {opened['achieved']:11.1f} "
                  f"{opened['rate'] / closed['commits']:11.0%} {opened['p50']:13.1f} "
                  f"{opened['p99']:13.1f} {opened['starved']:8.0f} "
                  f"{opened['worker_cpu_ms']:14.2f} {opened['server_cpu_ms']:14.2f} "
                  f"{opened['database_cpu_ms']:16.2f}")
        print("  (of capacity: offered commits/s over the saturated commits/s above; starved:"
              " arrivals that found no run ready)")
    print("targets: >= 200 transitions/s, p99 <= 100 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--scan-customers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=75.0,
                        help="open loop: ChooseBranch commits per second (0: skip); the "
                             "default, 150 transitions/s, is ~70%% of the capacity measured "
                             "on this 2-core machine")
    parser.add_argument("--open-seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--history", type=int, default=2000,
                        help="finished runs written (and the tables analyzed) before "
                             "measuring, as a database in use has (0: none)")
    parser.add_argument("--workers", default="1,2",
                        help="worker process counts to measure, comma-separated")
    args = parser.parse_args()
    fake_port = benchlib.free_port()
    fake = subprocess.Popen([sys.executable, "-m", "scripts.cli", "fake-llm", "--port",
                             str(fake_port)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    try:
        with benchlib.scratch_database("stepwise_bench_runs") as url, \
                benchlib.server_process(url) as base:
            results = asyncio.run(_measure(
                url, base, f"http://127.0.0.1:{fake_port}", runs=args.runs, pairs=args.pairs,
                clients=args.clients, rate=args.rate, open_seconds=args.open_seconds,
                seed=args.seed, worker_counts=[int(n) for n in args.workers.split(",")],
                history=args.history))
    finally:
        fake.terminate()
        fake.wait(10)
    _report(args, results)
    if args.scan_customers <= 0:
        return
    print(f"scan over {args.scan_customers} customers (target <= 5 s):")
    with benchlib.scratch_database("stepwise_bench_scan") as url:
        asyncio.run(bench_scan._measure(url, args.scan_customers))


if __name__ == "__main__":
    main()
