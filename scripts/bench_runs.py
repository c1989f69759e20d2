"""The run engine under load: runs started per second, step transitions per second, and the
time from a ChooseBranch commit to the next step being ready, with 1 and 2 worker processes;
then the renewal scan over 10,000 customers (scripts/bench_scan.py).

Usage: python -m scripts.bench_runs [--runs 100] [--pairs 5] [--clients 16]

One server process (uvicorn) and the workers run as their own processes on a scratch
database; the LLM is the local fake (scripts/fake_llm.py), so an llm step costs its real
path (job, SDK call over HTTP, two transactions) but no model time. The workflow is a chain
of `--pairs` (task -> llm) pairs ending in a task: each ChooseBranch commits, the worker runs
the llm step, and the next task is ready (waiting) again. "Ready" is seen by one poller
connection reading every in-flight run every 2 ms, so latencies carry up to ~2 ms of
polling. Targets on a 2-core machine: >= 200 transitions/s, p99 <= 100 ms, scan <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any
from uuid import UUID

import asyncpg
import httpx

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


class Poller:
    """One connection watching every in-flight run: resolves a future when a run reaches
    the awaited (step, status)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.waiting: dict[UUID, tuple[str, str, asyncio.Future[float]]] = {}
        self.task = asyncio.create_task(self._loop())

    def wait_for(self, run_id: UUID, step: str, status: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = (step, status, future)
        return future

    async def _loop(self) -> None:
        while True:
            if self.waiting:
                rows = await self.connection.fetch(
                    "SELECT id, current_step_id, status FROM runs WHERE id = ANY($1)",
                    list(self.waiting))
                seen = time.perf_counter()
                for row in rows:
                    step, status, future = self.waiting[row["id"]]
                    if row["current_step_id"] == step and row["status"] == status:
                        del self.waiting[row["id"]]
                        future.set_result(seen)
                    elif row["status"] in ("failed", "cancelled"):
                        del self.waiting[row["id"]]
                        future.set_exception(RuntimeError(f"run {row['id']} {row['status']}"))
            await asyncio.sleep(0.002)


async def _gql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    answer = await http.post("/graphql", json={"query": query, "variables": variables})
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    data: dict[str, Any] = body["data"]
    return data


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


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


async def _phase(http: httpx.AsyncClient, owner: asyncpg.Connection, *, key: str,
                 customers: list[str], pairs: int, clients: int, workers: int
                 ) -> dict[str, float]:
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
    start_rate = len(customers) / (time.perf_counter() - began)

    poller = Poller(owner)
    latencies: list[float] = []

    async def drive(run_id: UUID) -> None:
        async with gate:
            for index in range(1, pairs + 1):
                ready = poller.wait_for(run_id, f"task-{index + 1}", "waiting")
                data = await _gql(http, CHOOSE, r=str(run_id), b="go")
                committed = time.perf_counter()  # the response follows the commit
                if data["chooseBranch"]["errors"]:
                    raise RuntimeError(data["chooseBranch"]["errors"])
                latencies.append(await asyncio.wait_for(ready, 60) - committed)
            data = await _gql(http, CHOOSE, r=str(run_id), b="done")
            if data["chooseBranch"]["run"]["status"] != "completed":
                raise RuntimeError(f"run {run_id} did not complete")

    before = await owner.fetchval("SELECT count(*) FROM run_steps WHERE status = 'completed'")
    began = time.perf_counter()
    await asyncio.gather(*(drive(r) for r in run_ids))
    elapsed = time.perf_counter() - began
    after = await owner.fetchval("SELECT count(*) FROM run_steps WHERE status = 'completed'")
    poller.task.cancel()
    return {"workers": workers, "start_rate": start_rate,
            "transitions": (after - before) / elapsed,
            "p50": statistics.median(latencies) * 1000, "p99": _percentile(latencies, 0.99) * 1000,
            "runs": len(run_ids), "seconds": elapsed}


async def _measure(url: str, base: str, fake_url: str, *, runs: int, pairs: int,
                   clients: int) -> list[dict[str, float]]:
    settings = Settings.from_env(database_url=url)
    await seeding.seed_core(settings.database_url)
    made = await create_tenant_with_admin(settings.database_url, name="Runs bench",
                                          admin_email="admin@runs.bench")
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN)
    owner = await asyncpg.connect(benchlib._plain(url))
    results = []
    try:
        ids = await owner.fetch(
            "INSERT INTO customers (tenant_id, external_id, name, arr, renewal_date) "
            "SELECT $1, 'c' || i, 'Customer ' || i, 100000, current_date + 30 "
            "FROM generate_series(1, $2) AS i RETURNING id", made.tenant_id, runs)
        customers = [str(row["id"]) for row in ids]
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            for workers in (1, 2):
                key = f"bench-{workers}"
                created = await _gql(http, CREATE, input={
                    "key": key, "name": key, "config": chain(key, pairs)})
                if created["createWorkflow"]["errors"]:
                    raise RuntimeError(created["createWorkflow"]["errors"])
                processes = _workers(workers, url, fake_url)
                try:
                    await asyncio.sleep(3)  # let the workers connect and import
                    results.append(await _phase(http, owner, key=key, customers=customers,
                                                pairs=pairs, clients=clients,
                                                workers=workers))
                finally:
                    _stop(processes)
    finally:
        await owner.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--scan-customers", type=int, default=10_000)
    args = parser.parse_args()
    fake_port = benchlib.free_port()
    fake = subprocess.Popen([sys.executable, "-m", "scripts.cli", "fake-llm", "--port",
                             str(fake_port)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    try:
        with benchlib.scratch_database("stepwise_bench_runs") as url, \
                benchlib.server_process(url) as base:
            results = asyncio.run(_measure(url, base, f"http://127.0.0.1:{fake_port}",
                                           runs=args.runs, pairs=args.pairs,
                                           clients=args.clients))
    finally:
        fake.terminate()
        fake.wait(10)
    print(f"{args.runs} runs of {args.pairs} (task -> llm) pairs, {args.clients} clients, "
          f"{os.cpu_count()} cores")
    print(f"{'workers':>7} {'starts/s':>9} {'transitions/s':>14} {'ready p50 ms':>13} "
          f"{'ready p99 ms':>13}")
    for r in results:
        print(f"{r['workers']:7.0f} {r['start_rate']:9.1f} {r['transitions']:14.1f} "
              f"{r['p50']:13.1f} {r['p99']:13.1f}")
    print("targets: >= 200 transitions/s, p99 <= 100 ms")
    print(f"scan over {args.scan_customers} customers (target <= 5 s):")
    with benchlib.scratch_database("stepwise_bench_scan") as url:
        asyncio.run(bench_scan._measure(url, args.scan_customers))


if __name__ == "__main__":
    main()
