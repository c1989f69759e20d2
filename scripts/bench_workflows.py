"""The builder's reads (WorkflowList first:20, WorkflowByKey, Viewer, Run) beside a floor.

Usage: python -m scripts.bench_workflows [--seconds 10] [--connections 16] [--rounds 5]
       [--only Viewer,Run]

A scratch database (DATABASE_URL's server, or the embedded one) gets the core seeds,
2 tenants x 500 workflows x 5 versions, a customer and one run of the core `critical`
workflow. One uvicorn process (uvloop, httptools) serves Stepwise, another the floor
(scripts/bench_floor.py: plain Starlette+asyncpg, the same JSON from hand-written SQL, the
same JWT check and tenant transaction under forced RLS as the app role); both pools are
sized to the load's connections. Load comes from wrk on loopback (or a Python fallback).

The machine is shared and has 2 cores, so single numbers are noisy: the two servers are
measured alternately, operation by operation, in `--rounds` interleaved rounds (the side
measured first alternates per round), and every figure printed is the median over rounds.
Server CPU per request is the server process's user+system time over the measured window.
The target (issue 11): throughput >= 0.75x the floor's, p99 <= 30 ms, CPU/req <= 1.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from typing import Any

import asyncpg
import httpx

from domain.auth import tokens
from domain.seeding import service as seeding
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users.models import Role
from scripts import benchlib
from tests.factories import contract_operation  # the contract documents the builder sends

TENANTS, WORKFLOWS, VERSIONS = 2, 500, 5
EXAMPLE = json.loads((PROJECT_ROOT / "seeds" / "workflows" / "critical.json").read_text())
BY_KEY = "w0250"
OPERATIONS = ("WorkflowList", "WorkflowByKey", "Viewer", "Run")
FLOOR_PATHS = {"WorkflowList": "/list", "WorkflowByKey": "/by-key", "Viewer": "/viewer",
               "Run": "/run"}


async def _populate(settings: Settings) -> tuple[str, list[str]]:
    """Core seeds, then 2 tenants x 500 workflows, each config changed 4 times (5 versions)."""
    await seeding.seed_core(settings.database_url)
    tokens_out = []
    owner = await asyncpg.connect(benchlib._plain(settings.database_url))
    try:
        for t in range(TENANTS):
            made = await create_tenant_with_admin(settings.database_url, name=f"Bench {t}",
                                                  admin_email=f"admin{t}@bench.test")
            async with owner.transaction():
                await owner.execute("SELECT set_config('app.user_id', $1, true)",
                                    str(made.admin.id))
                await owner.execute(
                    "INSERT INTO workflows (tenant_id, key, name, description, tags, config, "
                    "created_by) SELECT $1, 'w' || lpad(i::text, 4, '0'), 'Workflow ' || i, "
                    "'Benchmark workflow ' || i, ARRAY['bench', 'set-' || (i % 5)], "
                    "jsonb_set($2::jsonb, '{id}', to_jsonb('w' || lpad(i::text, 4, '0'))), $3 "
                    "FROM generate_series(1, $4) AS i",
                    made.tenant_id, json.dumps(EXAMPLE), made.admin.id, WORKFLOWS)
                for revision in range(2, VERSIONS + 1):
                    await owner.execute(
                        "SELECT set_config('app.change_description', $1, true)",
                        f"revision {revision}")
                    await owner.execute(
                        "UPDATE workflows SET config = jsonb_set(config, '{description}', "
                        "to_jsonb($2::text)) WHERE tenant_id = $1", made.tenant_id,
                        f"Revision {revision}")
            tokens_out.append(tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                                          user_id=made.admin.id, role=Role.VIEWER))
        # As autovacuum would after a bulk load: fresh statistics, no dead row versions.
        await owner.execute("VACUUM ANALYZE workflows")
        await owner.execute("VACUUM ANALYZE workflow_versions")
        counts = await owner.fetchrow(
            "SELECT (SELECT count(*) FROM workflows) AS w, "
            "(SELECT count(*) FROM workflow_versions) AS v")
    finally:
        await owner.close()
    return f"{counts['w']} workflows, {counts['v']} versions", tokens_out


def _server_cpu_seconds(base: str) -> float:
    """User+system CPU of the uvicorn process listening on `base`'s port (Linux /proc)."""
    port = base.rsplit(":", 1)[1]
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            if b"uvicorn" not in b" ".join(argv) or port.encode() not in argv:
                continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            continue
    return float("nan")


def _post(base: str, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    data: dict[str, Any] = response.json()
    if data.get("errors"):
        raise RuntimeError(f"set-up failed: {data['errors']}")
    return data["data"]


def _make_run(base: str, token: str, admin_email: str) -> str:
    """A customer and one run of the core `critical` workflow, made through the API."""
    contacts = "mutation($input: CompanyContactsInput!) { updateCompanyContacts(input: $input) " \
               "{ errors { code message path } } }"
    _post(base, contacts, {"input": {"vpCustomerSuccess": "vp@bench.test",
                                     "ceo": "ceo@bench.test"}}, token)
    viewer = _post(base, "{ viewer { id } }", {}, token)["viewer"]
    made = _post(base, contract_operation("UpsertCustomer"), {"input": {
        "externalId": "bench-1", "name": "Bench Customer", "arr": 250000,
        "renewalDate": "2027-01-15", "hasAccountPlan": False, "healthScore": 40,
        "csmId": viewer["id"], "accountTeam": {"ae": admin_email}}}, token)
    customer = made["upsertCustomer"]["customer"]["id"]
    started = _post(base, contract_operation("StartRun"), {"input": {
        "workflowKey": "critical", "customerId": customer}}, token)["startRun"]
    if started["errors"]:
        raise RuntimeError(f"could not start the bench run: {started['errors']}")
    run_id: str = started["run"]["id"]
    return run_id


def _same_json(graphql: dict[str, Any], floor: dict[str, Any]) -> bool:
    return json.dumps(graphql, sort_keys=True) == json.dumps(floor, sort_keys=True)


Sample = tuple[benchlib.LoadResult, float]


def _measure(base: str, path: str, body: dict[str, object], token: str, seconds: int,
             connections: int) -> Sample:
    benchlib.load(f"{base}{path}", body, token=token, seconds=1)  # warm-up
    cpu_before = _server_cpu_seconds(base)
    result = benchlib.load(f"{base}{path}", body, token=token, seconds=seconds,
                           connections=connections)
    cpu = (_server_cpu_seconds(base) - cpu_before) / max(result.requests, 1)
    return result, cpu * 1000


def _median(samples: list[Sample]) -> tuple[float, float, float, int]:
    """Median req/s, p99 and CPU ms/req over rounds (each its own median), and the errors."""
    return (statistics.median(s[0].requests_per_second for s in samples),
            statistics.median(s[0].p99_ms for s in samples),
            statistics.median(s[1] for s in samples),
            sum(s[0].errors for s in samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5,
                        help="Interleaved rounds; every figure is the median over rounds.")
    parser.add_argument("--only", default=",".join(OPERATIONS),
                        help="Comma-separated subset of " + ", ".join(OPERATIONS))
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operations: {sorted(unknown)}")
    os.environ["STEPWISE_DB_POOL_SIZE"] = str(args.connections)  # both pools: one per client
    samples: dict[tuple[str, str], list[Sample]] = {}
    with benchlib.scratch_database() as url:
        settings = Settings.from_env(database_url=url)
        os.environ["STEPWISE_JWT_SECRET"] = settings.jwt_secret
        summary, bench_tokens = asyncio.run(_populate(settings))
        token = bench_tokens[0]
        with benchlib.server_process(url) as graphql, \
                benchlib.server_process(url, app="scripts.bench_floor:floor_app") as floor:
            run_id = _make_run(graphql, token, "admin0@bench.test")
            variables: dict[str, dict[str, object]] = {
                "WorkflowList": {"first": 20}, "WorkflowByKey": {"key": BY_KEY},
                "Viewer": {}, "Run": {"id": run_id}}
            bodies: dict[str, dict[str, object]] = {
                name: {"query": contract_operation(name), "operationName": name,
                       "variables": variables[name]} for name in OPERATIONS}
            headers = {"Authorization": f"Bearer {token}"}
            for name in chosen:
                answers = [httpx.post(f"{base}{path}", json=bodies[name], headers=headers,
                                      timeout=30).json()
                           for base, path in ((graphql, "/graphql"),
                                              (floor, FLOOR_PATHS[name]))]
                same = _same_json(*answers)
                print(f"{name}: Stepwise and the floor return the same JSON: {same}", flush=True)
                if not same:
                    print(f"  Stepwise: {json.dumps(answers[0])[:600]}\n"
                          f"  floor:    {json.dumps(answers[1])[:600]}")
            for number in range(args.rounds):
                for name in chosen:
                    sides = [("Stepwise", graphql, "/graphql"),
                             ("floor", floor, FLOOR_PATHS[name])]
                    if number % 2:
                        sides.reverse()
                    for side, base, path in sides:
                        samples.setdefault((name, side), []).append(_measure(
                            base, path, bodies[name], token, args.seconds, args.connections))
                print(f"round {number + 1}/{args.rounds} done "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    tool = next(iter(samples.values()))[0][0].tool
    print(f"\ndata: {summary} ({TENANTS} tenants x {WORKFLOWS} workflows x {VERSIONS} versions"
          f" + core, one run); one uvicorn process per server; load: {tool}; medians of "
          f"{args.rounds} interleaved rounds on a shared 2-core machine (noisy)")
    print(f"{'operation':<15}{'Stepwise req/s':>15}{'p99 ms':>8}{'CPU ms':>8}"
          f"{'floor req/s':>13}{'p99 ms':>8}{'CPU ms':>8}{'ratio':>7}{'CPU x':>7}  target")
    for name in chosen:
        ours, theirs = _median(samples[(name, "Stepwise")]), _median(samples[(name, "floor")])
        ratio, cpu_ratio = ours[0] / theirs[0], ours[2] / theirs[2]
        met = ratio >= 0.75 and ours[1] <= 30 and cpu_ratio <= 1.5
        errors = f"  ({ours[3]} / {theirs[3]} non-200)" if ours[3] or theirs[3] else ""
        print(f"{name:<15}{ours[0]:>15.0f}{ours[1]:>8.1f}{ours[2]:>8.2f}{theirs[0]:>13.0f}"
              f"{theirs[1]:>8.1f}{theirs[2]:>8.2f}{ratio:>7.2f}{cpu_ratio:>7.2f}  "
              f"{'met' if met else 'not met'}{errors}")


if __name__ == "__main__":
    main()
