"""Live runs under load, one server process: subscriptions held, memory, latency.

Usage: python -m scripts.bench_live [--held 5000] [--watchers 1000] [--runs 50] [--seconds 10]
       [--pairs 40] [--rate 10]

A scratch database gets the core seeds, one tenant and `--runs` waiting runs (the critical
workflow). One uvicorn process (uvloop, httptools) serves it; this process is the client.

1. Held: `--held` runEvents subscriptions (20 per socket, the server's per-connection limit),
   each resuming at its run's last seq (nothing to replay). Memory per subscription is the
   server's RSS delta divided by the number held.
2. Latency: `--watchers` subscriptions spread over `--runs` runs of a chain workflow
   (task -> llm -> task ..., scripts/bench_runs.py) that a worker process is driving: a
   driver answers each task with ChooseBranch and the worker runs the llm step against the
   local fake LLM and moves the run on, so events come from both the API's and the worker's
   transactions. Latency is arrival time minus the event's `at`, stamped inside the
   committing transaction before COMMIT: an upper bound on commit-to-subscriber.

The machine is shared (2 cores, other engineers' tests and benches, and this client runs on
the same cores as the server): numbers are noisy, run it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import websockets
from websockets.typing import Subprotocol

from domain.auth import tokens
from domain.seeding import service as seeding
from domain.shared.actor import Role
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants.onboarding import create_tenant_with_admin
from scripts import bench_runs, benchlib

PER_SOCKET = 20
RUN_EVENTS = ("subscription($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, "
              "afterSeq: $afterSeq) { seq type at } }")
START = ("mutation($input: StartRunInput!) { startRun(input: $input) { run { id } "
         "errors { code message } } }")
LAST = "query($id: ID!) { run(id: $id) { events(first: 1000) { seq } } }"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _server_pid(port: str) -> int:
    """The uvicorn child listening on `port` (the only process of ours with that socket)."""
    inode = None
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == int(port):
                inode = fields[9]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError("server process not found")


async def _populate(settings: Settings, base: str, runs: int) -> tuple[str, list[str]]:
    await seeding.seed_core(settings.database_url)
    made = await create_tenant_with_admin(settings.database_url, name="Live bench",
                                          admin_email="admin@live.bench")
    owner = await asyncpg.connect(benchlib._plain(settings.database_url))
    try:
        await owner.execute(
            "INSERT INTO customers (tenant_id, external_id, name, arr, renewal_date, "
            "has_account_plan, health_score, csm_id) SELECT $1, 'c' || i, 'Customer ' || i, "
            "300000, current_date + 10, true, 60, $3 FROM generate_series(1, $2) AS i",
            made.tenant_id, runs, made.admin.id)
        customer_ids = [str(r["id"]) for r in await owner.fetch(
            "SELECT id FROM customers WHERE tenant_id = $1", made.tenant_id)]
    finally:
        await owner.close()
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN)
    run_ids = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as client:
        for customer_id in customer_ids:
            body = (await client.post("/graphql", json={"query": START, "variables": {
                "input": {"workflowKey": "critical", "customerId": customer_id}}})).json()
            payload = body["data"]["startRun"]
            if payload["errors"]:
                raise RuntimeError(payload["errors"])
            run_ids.append(payload["run"]["id"])
    return token, run_ids


async def _last_seqs(client: httpx.AsyncClient, run_ids: list[str]) -> dict[str, int]:
    found = {}
    for run_id in run_ids:
        body = (await client.post("/graphql", json={"query": LAST,
                                                    "variables": {"id": run_id}})).json()
        found[run_id] = body["data"]["run"]["events"][-1]["seq"]
    return found


class Watchers:
    """Sockets with PER_SOCKET subscriptions each; records every event's arrival."""

    def __init__(self) -> None:
        self.sockets: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.latencies: list[float] = []
        self.by_type: dict[str, list[float]] = {}
        self.delivered = 0
        self.acked = 0

    async def open(self, address: str, token: str, targets: list[tuple[str, int]]) -> None:
        for start in range(0, len(targets), PER_SOCKET):
            ws = await websockets.connect(f"ws://{address}/graphql",
                                          subprotocols=[Subprotocol("graphql-transport-ws")],
                                          max_queue=None, open_timeout=60)
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for i, (run_id, seq) in enumerate(targets[start:start + PER_SOCKET]):
                await ws.send(json.dumps({"type": "subscribe", "id": str(i), "payload": {
                    "query": RUN_EVENTS, "variables": {"runId": run_id, "afterSeq": seq}}}))
            self.sockets.append(ws)
            self.readers.append(asyncio.create_task(self._read(ws)))

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "next":
                    now = time.time()
                    event = message["payload"]["data"]["runEvents"]
                    at = datetime.fromisoformat(event["at"])
                    self.latencies.append(now - at.timestamp())
                    self.by_type.setdefault(event["type"], []).append(now - at.timestamp())
                    self.delivered += 1
                elif message["type"] in ("error", "complete"):
                    print("unexpected", message)
        except websockets.ConnectionClosed:
            return

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.sockets.clear()
        self.readers.clear()



def _driver_processes(url: str) -> tuple[subprocess.Popen[bytes], list[subprocess.Popen[bytes]]]:
    """The local fake LLM and one worker process, each on its own pid."""
    fake_port = benchlib.free_port()
    fake = subprocess.Popen([sys.executable, "-m", "scripts.cli", "fake-llm", "--port",
                             str(fake_port)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    return fake, bench_runs._workers(1, url, f"http://127.0.0.1:{fake_port}")


async def _chain_runs(client: httpx.AsyncClient, *, owner_url: str, tenant_token: str,
                      runs: int, pairs: int) -> list[str]:
    """`runs` runs of a (task -> llm) chain of `pairs` pairs, each waiting at task-1."""
    created = await bench_runs._gql(client, bench_runs.CREATE, input={
        "key": "live-chain", "name": "Live chain",
        "config": bench_runs.chain("live-chain", pairs)})
    if created["createWorkflow"]["errors"]:
        raise RuntimeError(created["createWorkflow"]["errors"])
    owner = await asyncpg.connect(benchlib._plain(owner_url))
    try:
        customers = [str(r["id"]) for r in await owner.fetch(
            "SELECT id FROM customers ORDER BY external_id LIMIT $1", runs)]
    finally:
        await owner.close()
    made = []
    for customer in customers:
        data = await bench_runs._gql(client, bench_runs.START, input={
            "workflowKey": "live-chain", "customerId": customer})
        if data["startRun"]["errors"]:
            raise RuntimeError(data["startRun"]["errors"])
        made.append(data["startRun"]["run"]["id"])
    return made


async def _drive(client: httpx.AsyncClient, owner: asyncpg.Connection, run_ids: list[str], *,
                 pairs: int, until: float, rate: float) -> int:
    """Answer each run's next task once the worker has made it ready, at most `rate` answers
    a second in all, until `until`."""
    poller = bench_runs.Poller(owner)
    answered = 0
    pace = asyncio.Lock()
    next_slot = time.perf_counter()

    async def one(run_id: str) -> None:
        nonlocal answered, next_slot
        for index in range(1, pairs + 1):
            await asyncio.wait_for(poller.wait_for(UUID(run_id), f"task-{index}", "waiting"),
                                   60)
            async with pace:  # one answer per 1/rate seconds
                delay = next_slot - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_slot = max(next_slot, time.perf_counter()) + 1 / rate
            if time.perf_counter() >= until:
                return
            data = await bench_runs._gql(client, bench_runs.CHOOSE, r=run_id, b="go")
            if data["chooseBranch"]["errors"]:
                raise RuntimeError(data["chooseBranch"]["errors"])
            answered += 1

    try:
        await asyncio.gather(*(one(r) for r in run_ids))
    finally:
        poller.task.cancel()
    return answered


async def _measure(url: str, held: int, watchers: int, runs: int, seconds: float,
                   pairs: int, rate: float) -> None:
    settings = Settings.from_env(database_url=url)
    os.environ["STEPWISE_JWT_SECRET"] = settings.jwt_secret  # the server's, too
    manager = benchlib.server_process(url)
    base = await asyncio.to_thread(manager.__enter__)
    try:
        address = base.removeprefix("http://")
        pid = _server_pid(address.rsplit(":", 1)[1])
        token, run_ids = await _populate(settings, base, runs)
        async with httpx.AsyncClient(base_url=base, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            last = await _last_seqs(client, run_ids)
            targets = [(run_ids[i % runs], last[run_ids[i % runs]]) for i in range(held)]

            # 1. Held subscriptions and memory
            await asyncio.sleep(1)
            before = _rss_kb(pid)
            group = Watchers()
            started = time.perf_counter()
            await group.open(address, token, targets)
            await asyncio.sleep(3)  # the last subscriptions finish their first read
            opened = time.perf_counter() - started
            after = _rss_kb(pid)
            print(f"held subscriptions        {held:>8d}  over {len(group.sockets)} sockets, "
                  f"opened in {opened:.1f} s")
            print(f"server RSS                {before / 1024:>8.1f} MB -> {after / 1024:.1f} MB"
                  f"   per subscription {(after - before) / held:.1f} KB "
                  f"(socket share included)")
            await group.close()
            await asyncio.sleep(2)

            # 2. Latency with `watchers` subscribers on runs a worker is driving
            chain_ids = await _chain_runs(client, owner_url=url, tenant_token=token,
                                          runs=runs, pairs=pairs)
            last = await _last_seqs(client, chain_ids)
            targets = [(chain_ids[i % runs], last[chain_ids[i % runs]])
                       for i in range(watchers)]
            group = Watchers()
            await group.open(address, token, targets)
            await asyncio.sleep(2)
            fake, workers = _driver_processes(url)
            owner = await asyncpg.connect(benchlib._plain(url))
            try:
                await asyncio.sleep(3)  # the worker connects and imports
                begin = time.perf_counter()
                answered = await _drive(client, owner, chain_ids, pairs=pairs,
                                        until=begin + seconds, rate=rate)
                elapsed = time.perf_counter() - begin
                await asyncio.sleep(1)  # the last llm steps finish
                now = await _last_seqs(client, chain_ids)
            finally:
                await owner.close()
                bench_runs._stop(workers)
                fake.terminate()
                fake.wait(10)
            events = sum(now[r] - last[r] for r in chain_ids)
            expected = events * (watchers // runs)
            deadline = time.perf_counter() + 30
            while group.delivered < expected and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            ms = sorted(x * 1000 for x in group.latencies)
            p50 = statistics.median(ms)
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(f"watchers                  {watchers:>8d}  on {runs} runs driven by a worker: "
                  f"{answered} tasks answered (at most {rate:g}/s), {events} events "
                  f"committed in {elapsed:.1f} s "
                  f"({events / elapsed:.0f} events/s)")
            print(f"delivered                 {group.delivered:>8d} of {expected}   "
                  f"{group.delivered / elapsed:.0f} deliveries/s")
            print(f"commit-to-subscriber      p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
                  f"max {ms[-1]:6.1f} ms  (upper bound: `at` is stamped before COMMIT)")
            for kind, values in sorted(group.by_type.items()):
                ordered = sorted(x * 1000 for x in values)
                print(f"  {kind:<24}{len(ordered):>7d}   p50 "
                      f"{statistics.median(ordered):6.1f} ms   p99 "
                      f"{ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]:6.1f} ms")
            await group.close()
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--held", type=int, default=5000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pairs", type=int, default=40,
                        help="(task -> llm) pairs per driven run: enough not to finish early")
    parser.add_argument("--rate", type=float, default=10,
                        help="tasks answered per second in all (each makes ~8 events: the "
                             "ChooseBranch's and the worker's llm step's)")
    args = parser.parse_args()
    with benchlib.scratch_database("stepwise_bench_live") as url:
        asyncio.run(_measure(url, args.held, args.watchers, args.runs, args.seconds,
                             args.pairs, args.rate))


if __name__ == "__main__":
    main()
