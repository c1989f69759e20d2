"""The server's own overhead per chat turn and per query step, with the fake LLM answering
instantly (no scripted delay).

Usage: python -m scripts.bench_chat [--turns 60] [--clients 4] [--steps 40]

One server process (uvicorn), one worker process and the fake Messages API run as their own
processes on a scratch database. A chat turn is timed from just before the sendChatMessage
POST to the first non-empty delta on a chatStream subscription (graphql-transport-ws) that
was opened before the POST with afterSeq = the last seq seen; the fake's own time to first
text delta, measured with the SDK straight against it, is subtracted, leaving what the
server, the job queue, the worker, the ledger and the stream add. `--clients` threads chat at
once, each turn after the previous one's `done`. A query step is timed from a ChooseBranch
commit to the step after it waiting (task -> query -> task): the job, the SQL from the fake,
the guard, the READ ONLY query, the CSV and the transitions.
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
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import websockets

from domain.auth import tokens
from domain.seeding import service as seeding
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users.models import Role
from scripts import bench_runs, benchlib
from scripts.bench_runs import CHOOSE, CREATE, START, Poller

SEND = """mutation($input: SendChatMessageInput!) { sendChatMessage(input: $input) {
  thread { id } message { id seq } errors { code message } } }"""
STREAM = ("subscription($t: ID!, $a: Int) { chatStream(threadId: $t, afterSeq: $a) "
          "{ seq delta done errorCode } }")
SQL = "SELECT name, arr FROM query_api.customers ORDER BY arr DESC LIMIT 10"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _gql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    answer = await http.post("/graphql", json={"query": query, "variables": variables})
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    data: dict[str, Any] = body["data"]
    return data


async def _fake_first_delta(fake_url: str, samples: int = 30) -> float:
    """The fake's own median time to the first text delta, through the SDK (seconds)."""
    from anthropic import AsyncAnthropic

    client = AsyncAnthropic(base_url=fake_url, api_key="fake", max_retries=0)
    times = []
    try:
        for _ in range(samples):
            began = time.perf_counter()
            async with client.messages.stream(
                    model="claude-fake-1", max_tokens=64,
                    messages=[{"role": "user", "content": "hello there"}]) as events:
                async for event in events:
                    if event.type == "text":
                        times.append(time.perf_counter() - began)
                        break
    finally:
        await client.close()
    return statistics.median(times)


class Chat:
    """One thread's client: a socket, turns timed to the first delta."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.ws_url, self.token = ws_url, token
        self.last_seq = 0
        self.ops = 0

    async def open(self) -> None:
        self.ws = await websockets.connect(self.ws_url, subprotocols=[
            websockets.Subprotocol("graphql-transport-ws")])
        await self.ws.send(json.dumps({"type": "connection_init",
                                       "payload": {"Authorization": f"Bearer {self.token}"}}))
        while json.loads(await self.ws.recv())["type"] != "connection_ack":
            pass

    async def turn(self, http: httpx.AsyncClient, *, run_id: str, thread_id: str | None,
                   text: str) -> tuple[str, float, float]:
        """(thread id, seconds to the first delta, seconds to done)."""
        if thread_id is not None:
            self.ops += 1
            await self.ws.send(json.dumps({"type": "subscribe", "id": str(self.ops), "payload": {
                "query": STREAM, "variables": {"t": thread_id, "a": self.last_seq}}}))
            await asyncio.sleep(0.02)  # the subscription is registered before the reply
        began = time.perf_counter()
        data = await _gql(http, SEND, input={"runId": run_id, "stepId": "executive-escalation",
                                             "content": text, "threadId": thread_id})
        sent = data["sendChatMessage"]
        if sent["errors"]:
            raise RuntimeError(sent["errors"])
        if thread_id is None:  # the first message opens the thread: subscribe now
            thread_id = str(sent["thread"]["id"])
            self.ops += 1
            await self.ws.send(json.dumps({"type": "subscribe", "id": str(self.ops),
                                           "payload": {"query": STREAM,
                                                       "variables": {"t": thread_id}}}))
        first = None
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            if message["type"] != "next":
                continue
            item = message["payload"]["data"]["chatStream"]
            self.last_seq = max(self.last_seq, item["seq"])
            if first is None and item["delta"]:
                first = time.perf_counter() - began
            if item["done"]:
                if item["errorCode"]:
                    raise RuntimeError(item["errorCode"])
                return thread_id, first or 0.0, time.perf_counter() - began


async def _chat(http: httpx.AsyncClient, ws_url: str, token: str, customers: list[str], *,
                turns: int) -> tuple[list[float], list[float]]:
    firsts: list[float] = []
    dones: list[float] = []

    async def client(customer: str) -> None:
        data = await _gql(http, START, input={"workflowKey": "critical", "customerId": customer})
        run_id = data["startRun"]["run"]["id"]
        chat = Chat(ws_url, token)
        await chat.open()
        try:
            thread_id, _, _ = await chat.turn(http, run_id=run_id, thread_id=None,
                                              text="Warm up")
            for index in range(turns):
                _, first, done = await chat.turn(http, run_id=run_id, thread_id=thread_id,
                                                 text=f"Question {index}?")
                firsts.append(first)
                dones.append(done)
        finally:
            await chat.ws.close()

    await asyncio.gather(*(client(c) for c in customers))
    return firsts, dones


async def _queries(http: httpx.AsyncClient, owner: asyncpg.Connection, customer: str, *,
                   steps: int) -> list[float]:
    config = bench_runs.chain("bench-query", steps, kind="query", prompt="Top accounts by ARR")
    created = await _gql(http, CREATE, input={"key": "bench-query", "name": "bench-query",
                                              "config": config})
    if created["createWorkflow"]["errors"]:
        raise RuntimeError(created["createWorkflow"]["errors"])
    data = await _gql(http, START, input={"workflowKey": "bench-query", "customerId": customer})
    run_id = UUID(data["startRun"]["run"]["id"])
    poller = Poller(owner)
    latencies = []
    try:
        for index in range(1, steps + 1):
            ready = poller.wait_for(run_id, f"task-{index + 1}", "waiting")
            chosen = await _gql(http, CHOOSE, r=str(run_id), b="go")
            committed = time.perf_counter()
            if chosen["chooseBranch"]["errors"]:
                raise RuntimeError(chosen["chooseBranch"]["errors"])
            latencies.append(await asyncio.wait_for(ready, 60) - committed)
    finally:
        poller.task.cancel()
    return latencies


async def _measure(url: str, base: str, fake_url: str, *, turns: int, clients: int,
                   steps: int) -> dict[str, Any]:
    settings = Settings.from_env(database_url=url)
    await seeding.seed_core(settings.database_url)
    made = await create_tenant_with_admin(settings.database_url, name="Chat bench",
                                          admin_email="admin@chat.bench")
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN)
    owner = await asyncpg.connect(benchlib._plain(url))
    try:
        rows = await owner.fetch(
            "INSERT INTO customers (tenant_id, external_id, name, arr, renewal_date) "
            "SELECT $1, 'c' || i, 'Customer ' || i, 100000 * i, current_date + 10 "
            "FROM generate_series(1, $2) AS i RETURNING id", made.tenant_id, clients + 1)
        customers = [str(row["id"]) for row in rows]
        async with httpx.AsyncClient(base_url=fake_url) as fake:
            (await fake.post("/_fake/script", json={"match": "Top accounts by ARR",
                                                    "text": SQL, "times": 100_000})
             ).raise_for_status()
        fake_first = await _fake_first_delta(fake_url)
        ws_url = base.replace("http://", "ws://") + "/graphql"
        async with httpx.AsyncClient(base_url=base, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            firsts, dones = await _chat(http, ws_url, token, customers[:clients], turns=turns)
            queries = await _queries(http, owner, customers[-1], steps=steps)
    finally:
        await owner.close()
    return {"fake_first": fake_first, "firsts": firsts, "dones": dones, "queries": queries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=60, help="chat turns per client")
    parser.add_argument("--clients", type=int, default=4, help="threads chatting at once")
    parser.add_argument("--steps", type=int, default=40, help="query steps in the chain")
    args = parser.parse_args()
    fake_port = benchlib.free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen([sys.executable, "-m", "scripts.cli", "fake-llm", "--port",
                             str(fake_port)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    try:
        with benchlib.scratch_database("stepwise_bench_chat") as url, \
                benchlib.server_process(url) as base:
            env = {**os.environ, "DATABASE_URL": url, "ANTHROPIC_BASE_URL": fake_url,
                   "ANTHROPIC_API_KEY": "fake", "STEPWISE_LLM_MODEL": "claude-fake-1"}
            worker = subprocess.Popen([sys.executable, "-m", "scripts.cli", "worker",
                                       "--concurrency", "16", "--scan-every", "0"],
                                      cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT)
            try:
                time.sleep(3)  # let the worker connect and import
                result = asyncio.run(_measure(url, base, fake_url, turns=args.turns,
                                              clients=args.clients, steps=args.steps))
            finally:
                worker.terminate()
                worker.wait(30)
    finally:
        fake.terminate()
        fake.wait(10)
    fake_ms = result["fake_first"] * 1000
    overhead = [f * 1000 - fake_ms for f in result["firsts"]]
    dones = [d * 1000 for d in result["dones"]]
    queries = [q * 1000 for q in result["queries"]]
    print(f"{len(overhead)} chat turns ({args.clients} threads at once), "
          f"{len(queries)} query steps, {os.cpu_count()} cores; fake: no scripted delay, "
          f"its own first delta {fake_ms:.1f} ms (subtracted)")
    print(f"chat turn, server overhead to the first delta: p50 "
          f"{statistics.median(overhead):.1f} ms, p99 {_percentile(overhead, 0.99):.1f} ms")
    print(f"chat turn, send to done (whole reply stored): p50 {statistics.median(dones):.1f} "
          f"ms, p99 {_percentile(dones, 0.99):.1f} ms")
    print(f"query step, ChooseBranch commit to the next step waiting: p50 "
          f"{statistics.median(queries):.1f} ms, p99 {_percentile(queries, 0.99):.1f} ms")


if __name__ == "__main__":
    main()
