"""The floor the benches compare Stepwise with: plain Starlette + asyncpg, no GraphQL.

For each measured operation the same JSON as the GraphQL response, from hand-written SQL,
with the same JWT check and the same per-request tenant transaction (BEGIN, set_config of
the tenant, the statements, COMMIT) on the app role, so forced RLS applies exactly as it
does to Stepwise. A fixed pool of `STEPWISE_DB_POOL_SIZE` connections (default 16: one per
load connection). Served by `python -m uvicorn scripts.bench_floor:floor_app --factory`.
"""

from __future__ import annotations

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
from domain.shared.settings import Settings
from scripts import benchlib

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
VIEWER_SQL = """
SELECT u.id, u.email, u.name, u.role, t.id AS tenant_id, t.name AS tenant_name
FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1
"""
RUN_SQL = """
SELECT r.id, r.status, r.current_step_id, r.workflow_version, r.variables, r.created_at,
       r.finished_at, w.id AS workflow_id, w.key AS workflow_key, c.id AS customer_id,
       c.name AS customer_name
FROM runs r LEFT JOIN workflows w ON w.id = r.workflow_id
LEFT JOIN customers c ON c.tenant_id = r.tenant_id AND c.id = r.customer_id
WHERE r.id = $1
"""
STEPS_SQL = """
SELECT step_id, status, attempts, output, error, started_at, finished_at FROM run_steps
WHERE run_id = $1 ORDER BY started_at NULLS LAST, created_at
"""
EVENTS_SQL = ("SELECT seq, type, step_id, at, payload FROM run_events WHERE run_id = $1 "
              "AND seq > 0 ORDER BY seq LIMIT 1000")
NOTIFICATIONS_SQL = """
SELECT id, step_id, notification_id, channel, title, message, recipients, status
FROM notifications WHERE run_id = $1 ORDER BY created_at, id
"""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _cursor(row: asyncpg.Record) -> str:
    raw = json.dumps(["UPDATED_AT_DESC", row["updated_at"].isoformat(), str(row["id"])],
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def floor_app() -> Starlette:
    settings = Settings.from_env()
    size = int(os.environ.get("STEPWISE_DB_POOL_SIZE", "16"))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def init(connection: asyncpg.Connection) -> None:
            await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                                            schema="pg_catalog")

        app.state.pool = await asyncpg.create_pool(benchlib._plain(settings.app_database_url),
                                                   min_size=size, max_size=size, init=init)
        yield
        await app.state.pool.close()

    @asynccontextmanager
    async def tenant(request: Request) -> AsyncIterator[tuple[Any, asyncpg.Connection]]:
        principal = tokens.from_header(request.headers.get("authorization"),
                                       secret=settings.jwt_secret)
        async with request.app.state.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)",
                                     str(principal.tenant_id))
            yield principal, connection

    async def workflow_list(request: Request) -> Response:
        body = await request.json()
        first = int(body.get("variables", {}).get("first") or 20)
        async with tenant(request) as (_, connection):
            rows = await connection.fetch(LIST_SQL, first + 1)
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
        async with tenant(request) as (_, connection):
            rows = await connection.fetch(BY_KEY_SQL, body["variables"]["key"])
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

    async def viewer(request: Request) -> Response:
        await request.json()
        async with tenant(request) as (principal, connection):
            r = await connection.fetchrow(VIEWER_SQL, principal.user_id)
        if r is None:
            return JSONResponse({"data": {"viewer": None}})
        return JSONResponse({"data": {"viewer": {
            "id": str(r["id"]), "email": r["email"], "name": r["name"],
            "role": str(r["role"]).upper(),
            "tenant": {"id": str(r["tenant_id"]), "name": r["tenant_name"]}}}})

    async def run(request: Request) -> Response:
        body = await request.json()
        run_id = UUID(body["variables"]["id"])
        async with tenant(request) as (_, connection):
            r = await connection.fetchrow(RUN_SQL, run_id)
            if r is None:
                return JSONResponse({"data": {"run": None}})
            steps = await connection.fetch(STEPS_SQL, run_id)
            events = await connection.fetch(EVENTS_SQL, run_id)
            notes = await connection.fetch(NOTIFICATIONS_SQL, run_id)
        return JSONResponse({"data": {"run": {
            "id": str(r["id"]), "status": r["status"], "currentStepId": r["current_step_id"],
            "workflowVersion": r["workflow_version"], "variables": r["variables"],
            "createdAt": _iso(r["created_at"]), "finishedAt": _iso(r["finished_at"]),
            "workflow": {"id": str(r["workflow_id"]), "key": r["workflow_key"]}
            if r["workflow_id"] else None,
            "customer": {"id": str(r["customer_id"]), "name": r["customer_name"]}
            if r["customer_id"] else None,
            "steps": [{"stepId": s["step_id"], "status": s["status"],
                       "attempts": s["attempts"], "output": s["output"], "error": s["error"],
                       "startedAt": _iso(s["started_at"]),
                       "finishedAt": _iso(s["finished_at"])} for s in steps],
            "events": [{"seq": e["seq"], "type": e["type"], "stepId": e["step_id"],
                        "at": _iso(e["at"]), "payload": e["payload"]} for e in events],
            "notifications": [{"id": str(n["id"]), "stepId": n["step_id"],
                               "notificationId": n["notification_id"], "type": n["channel"],
                               "title": n["title"], "message": n["message"],
                               "recipients": list(n["recipients"]), "status": n["status"]}
                              for n in notes]}}})

    return Starlette(routes=[Route("/list", workflow_list, methods=["POST"]),
                             Route("/by-key", workflow_by_key, methods=["POST"]),
                             Route("/viewer", viewer, methods=["POST"]),
                             Route("/run", run, methods=["POST"]),
                             Route("/healthz", lambda r: JSONResponse({"status": "ok"}))],
                     lifespan=lifespan)
