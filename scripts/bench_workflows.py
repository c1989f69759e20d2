"""WorkflowList (first: 20) and WorkflowByKey: GraphQL beside a plain Starlette+asyncpg floor.

Usage: python -m scripts.bench_workflows [--seconds 10] [--connections 16]

A scratch database (DATABASE_URL's server, or the embedded one) gets the core seeds and
2 tenants x 500 workflows x 5 versions. One uvicorn process (uvloop, httptools) serves the
real app, then another serves the floor: the same JSON from hand-written SQL, with the same
JWT check and the same per-request tenant transaction (forced RLS as the app role). Load
comes from wrk on loopback (or a Python fallback). The target is GraphQL within 2x of the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
FLOOR = "floor (Starlette+asyncpg)"
VIEWER = "query Viewer { viewer { id email name role tenant { id name } } }"


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


# The floor: the same JSON, no GraphQL.

LIST_SQL = """
WITH visible AS (
  SELECT * FROM workflows w
  WHERE w.deleted_at IS NULL AND (w.tenant_id IS NOT NULL OR NOT EXISTS (
    SELECT 1 FROM workflows o
    WHERE o.key = w.key AND o.tenant_id IS NOT NULL AND o.deleted_at IS NULL)))
SELECT v.id, v.key, v.name, v.description, v.version, v.tags, v.tenant_id, v.is_template,
       v.deleted_at, v.updated_at, v.latest_version, v.latest_version_at,
       (SELECT count(*) FROM visible) AS total
FROM visible v ORDER BY v.updated_at DESC, v.id DESC LIMIT $1
"""
BY_KEY_SQL = """
SELECT w.id, w.key, w.name, w.description, w.version, w.config, w.tenant_id, w.is_template,
       w.tags, w.created_at, w.updated_at, u.id AS user_id, u.email
FROM workflows w LEFT JOIN users u ON u.tenant_id = w.tenant_id AND u.id = w.created_by
WHERE w.key = $1 AND w.deleted_at IS NULL ORDER BY w.tenant_id IS NULL LIMIT 1
"""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _cursor(row: asyncpg.Record) -> str:
    raw = json.dumps(["UPDATED_AT_DESC", row["updated_at"].isoformat(), str(row["id"])],
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def floor_app() -> Starlette:
    settings = Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def init(connection: asyncpg.Connection) -> None:
            await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                            schema="pg_catalog")

        app.state.pool = await asyncpg.create_pool(benchlib._plain(settings.app_database_url),
                                                   min_size=10, max_size=10, init=init)
        yield
        await app.state.pool.close()

    async def run(request: Request, sql: str, *args: Any) -> tuple[UUID, list[asyncpg.Record]]:
        principal = tokens.from_header(request.headers.get("authorization"),
                                       secret=settings.jwt_secret)
        async with request.app.state.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)",
                                     str(principal.tenant_id))
            return principal.tenant_id, await connection.fetch(sql, *args)

    async def workflow_list(request: Request) -> Response:
        body = await request.json()
        first = int(body.get("variables", {}).get("first") or 20)
        _, rows = await run(request, LIST_SQL, first + 1)
        page = rows[:first]
        edges = [{"cursor": _cursor(r), "node": {
            "id": str(r["id"]), "key": r["key"], "name": r["name"],
            "description": r["description"], "version": r["version"], "tags": r["tags"],
            "isCore": r["tenant_id"] is None, "isTemplate": r["is_template"],
            "deletedAt": _iso(r["deleted_at"]), "updatedAt": _iso(r["updated_at"]),
            "latestVersion": {"number": r["latest_version"],
                              "changedAt": _iso(r["latest_version_at"])}}} for r in page]
        return JSONResponse({"data": {"workflows": {
            "totalCount": rows[0]["total"] if rows else 0,
            "pageInfo": {"hasNextPage": len(rows) > first,
                         "endCursor": edges[-1]["cursor"] if edges else None},
            "edges": edges}}})

    async def workflow_by_key(request: Request) -> Response:
        body = await request.json()
        _, rows = await run(request, BY_KEY_SQL, body["variables"]["key"])
        if not rows:
            return JSONResponse({"data": {"workflow": None}})
        r = rows[0]
        return JSONResponse({"data": {"workflow": {
            "id": str(r["id"]), "key": r["key"], "name": r["name"],
            "description": r["description"], "version": r["version"], "config": r["config"],
            "isCore": r["tenant_id"] is None, "isTemplate": r["is_template"], "tags": r["tags"],
            "createdAt": _iso(r["created_at"]), "updatedAt": _iso(r["updated_at"]),
            "createdBy": {"id": str(r["user_id"]), "email": r["email"]}
            if r["user_id"] else None}}})

    return Starlette(routes=[Route("/list", workflow_list, methods=["POST"]),
                             Route("/by-key", workflow_by_key, methods=["POST"]),
                             Route("/healthz", lambda r: JSONResponse({"status": "ok"}))],
                     lifespan=lifespan)


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


def _same_json(graphql: dict[str, Any], floor: dict[str, Any]) -> bool:
    return json.dumps(graphql, sort_keys=True) == json.dumps(floor, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1,
                        help="Repeat the whole plan; each line reports the median round.")
    args = parser.parse_args()
    import httpx

    Body = dict[str, object]
    list_body: Body = {"query": contract_operation("WorkflowList"), "operationName": "WorkflowList",
                       "variables": {"first": 20}}
    key_body: Body = {"query": contract_operation("WorkflowByKey"),
                      "operationName": "WorkflowByKey", "variables": {"key": BY_KEY}}
    viewer_body: Body = {"operationName": "Viewer", "query": VIEWER}
    rounds: dict[str, list[tuple[benchlib.LoadResult, float]]] = {}
    with benchlib.scratch_database() as url:
        settings = Settings.from_env(database_url=url)
        os.environ["STEPWISE_JWT_SECRET"] = settings.jwt_secret
        summary, bench_tokens = asyncio.run(_populate(settings))
        token = bench_tokens[0]
        headers = {"Authorization": f"Bearer {token}"}
        answers: dict[str, Any] = {}
        # Both servers up at once and measured alternately, so a busy moment on the machine
        # does not land on one side only.
        with benchlib.server_process(url) as graphql, \
                benchlib.server_process(url, app="scripts.bench_workflows:floor_app") as floor:
            plan: list[tuple[str, str, str, str, Body]] = [
                    ("GraphQL", graphql, "/graphql", "WorkflowList first:20", list_body),
                    (FLOOR, floor, "/list", "WorkflowList first:20", list_body),
                    ("GraphQL", graphql, "/graphql", "WorkflowByKey", key_body),
                    (FLOOR, floor, "/by-key", "WorkflowByKey", key_body),
                    ("GraphQL", graphql, "/graphql", "{ viewer } (the stack's own floor)",
                     viewer_body)]
            for _ in range(args.rounds):
                for label, base, path, name, body in plan:
                    answers[f"{label} {name}"] = httpx.post(f"{base}{path}", json=body,
                                                            headers=headers).json()
                    benchlib.load(f"{base}{path}", body, token=token, seconds=2)  # warm-up
                    cpu_before = _server_cpu_seconds(base)
                    result = benchlib.load(f"{base}{path}", body, token=token,
                                           seconds=args.seconds, connections=args.connections)
                    cpu = (_server_cpu_seconds(base) - cpu_before) / max(result.requests, 1)
                    rounds.setdefault(f"{label}: {name}", []).append((result, cpu * 1000))
    results = []
    for label, measured in rounds.items():
        ordered = sorted(measured, key=lambda m: m[0].requests_per_second)
        median = ordered[len(ordered) // 2]
        results.append((label, median[0], median[1]))
    print(f"data: {summary} ({TENANTS} tenants x {WORKFLOWS} workflows x {VERSIONS} versions "
          f"+ core); one uvicorn process per server; load: {results[0][1].tool}; "
          f"median of {args.rounds} round(s); load average {os.getloadavg()[0]:.2f}")
    for name in ("WorkflowList first:20", "WorkflowByKey"):
        same = _same_json(answers[f"GraphQL {name}"], answers[f"{FLOOR} {name}"])
        print(f"{name}: GraphQL and floor return the same JSON: {same}")
    for label, result, cpu_ms in results:
        print(f"{result.line(label)}   server CPU {cpu_ms:.2f} ms/req")
    by_label = {label: result for label, result, _ in results}
    for name in ("WorkflowList first:20", "WorkflowByKey"):
        ratio = (by_label[f"{FLOOR}: {name}"].requests_per_second
                 / by_label[f"GraphQL: {name}"].requests_per_second)
        print(f"{name}: floor / GraphQL throughput = {ratio:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
