"""Every query for runs, their steps, events and timers (straight to the driver: hot path)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from domain.context import repository as context_repository
from domain.customers.models import Customer
from domain.jobs import repository as jobs_repository
from domain.jobs.models import Job
from domain.notifications.models import Notification
from domain.runs.models import Run, RunEvent, RunFilter, RunStep, RunTimer
from domain.shared import jsontext
from domain.shared.db import Database, tx_of
from domain.shared.models import from_row
from domain.usage import repository as usage_repository
from domain.workflows.models import Workflow

_RUN_COLUMNS = ("tenant_id, id, workflow_id, workflow_key, workflow_version, customer_id, "
                "status, current_step_id, variables, context, trigger, started_by, "
                "parent_run_id, renewal_date, paused_status, error, next_seq, created_at, "
                "updated_at, started_at, finished_at")
_RUN_FIELDS = tuple(c.strip() for c in _RUN_COLUMNS.split(","))
_STEP_COLUMNS = ("tenant_id, run_id, step_id, step_type, status, attempts, input, output, "
                 "error, started_at, finished_at, created_at, updated_at")


def _run(row: Any) -> Run:
    return Run(**{column: row[column] for column in _RUN_FIELDS})


def _dumps(value: Any) -> str:
    try:  # orjson writes what the standard library would, several times faster
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, separators=(",", ":"), default=str)


async def insert(session: AsyncSession, *, tenant_id: UUID, workflow_id: UUID,
                 workflow_key: str, workflow_version: int, customer_id: UUID,
                 variables: dict[str, Any], trigger: str, started_by: UUID | None,
                 parent_run_id: UUID | None, renewal_date: Any, now: datetime) -> Run:
    row = await tx_of(session).fetchrow(
        f"INSERT INTO runs (tenant_id, workflow_id, workflow_key, workflow_version, customer_id, "
        f"variables, trigger, started_by, parent_run_id, renewal_date, created_at, updated_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $11) "
        f"RETURNING {_RUN_COLUMNS}",
        tenant_id, workflow_id, workflow_key, workflow_version, customer_id, _dumps(variables),
        trigger, started_by, parent_run_id, renewal_date, now)
    assert row is not None
    return _run(row)


async def lock(session: AsyncSession, run_id: UUID) -> Run | None:
    """The run, row-locked until the transaction ends: all work on one run is serialised."""
    row = await tx_of(session).fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = $1 FOR UPDATE", run_id)
    return None if row is None else _run(row)


# The run locked, the records of its current step (and of `$2`), the ids of every step it
# has a record of, and whether it has pending timers, in one round trip. Only what a
# transaction works on is read: a long run's other records (each holding its rendered prompt)
# are never decoded per transition.
#
# A statement that waited for the row lock returns the run as the lock holder committed it,
# but its sub-selects read the snapshot taken before the wait: the version the snapshot saw
# (`seen`) differs from the one locked (`locked`) exactly when a transaction that changed the
# run committed meanwhile (every write to a run's steps and timers also updates its row, in
# `save`), and then the statement is run again, the lock held, on a fresh snapshot.
def _lock_with_steps_sql(also: str, *, customer: bool = False) -> str:
    around = (f"LEFT JOIN LATERAL (SELECT {context_repository.SURROUNDINGS_COLUMNS} "
              f"{context_repository.surroundings_from('r.customer_id')}) cx ON true "
              if customer else "")
    return (
        f"SELECT {', '.join(f'r.{c.strip()}' for c in _RUN_COLUMNS.split(','))}, "
        + ("cx.*, " if customer else "") +
        "r.xmin::text AS locked, (SELECT v.xmin::text FROM runs v WHERE v.id = r.id) AS seen, "
        "(SELECT json_agg(json_build_array(s.step_id, s.status, s.output)) FROM run_steps s "
        "WHERE s.tenant_id = r.tenant_id AND s.run_id = r.id) AS known_steps, "
        "(SELECT json_agg(json_build_object("
        + ", ".join(f"'{c.strip()}', s.{c.strip()}" for c in _STEP_COLUMNS.split(","))
        + ")) FROM run_steps s WHERE s.tenant_id = r.tenant_id AND s.run_id = r.id "
        f"AND (s.step_id = r.current_step_id{also})) AS records, "
        "EXISTS (SELECT FROM run_timers t WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id "
        "AND t.status = 'pending') AS has_timers "
        f"FROM runs r {around}WHERE r.id = $1 FOR UPDATE OF r")


# By how many other steps are asked for: none, one, several. A parameter array would make
# every execution planned anew (a custom plan for a known array always looks cheaper than the
# generic one, so the plan cache never settles on it); a scalar or none keeps the plan cached.
# With `customer`, the customer and its surroundings are read beside the run (what entering
# a step that renders a template needs: one round trip less than reading them after).
_ALSO = ("", " OR s.step_id = $2", " OR s.step_id = ANY($2::text[])")
_LOCK_WITH_STEPS = {(extra, customer): _lock_with_steps_sql(also, customer=customer)
                    for extra, also in enumerate(_ALSO) for customer in (False, True)}
_STEP_TIMES = ("started_at", "finished_at", "created_at", "updated_at")


def _step_of_json(item: dict[str, Any]) -> RunStep:
    values = dict(item)
    values["tenant_id"], values["run_id"] = UUID(values["tenant_id"]), UUID(values["run_id"])
    for name in _STEP_TIMES:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    return RunStep(**values)


CustomerFound = tuple[Customer, context_repository.Surroundings]


@dataclass(frozen=True)
class Locked:
    """A run locked for work, with what `lock_with_steps` read beside it."""

    run: Run
    steps: dict[str, RunStep]  # the current step's record, and those asked for
    known: set[str]  # every step the run has a record of
    outputs: dict[str, dict[str, Any]]  # `steps.*` of templates: what each step produced
    has_timers: bool  # whether any of its timers is pending
    customer: CustomerFound | None = None  # if asked for (None: not asked, or not visible)


async def lock_with_steps(session: AsyncSession, run_id: UUID, step_ids: Sequence[str] = (),
                          *, customer: bool = False) -> Locked | None:
    """`lock`, plus the records of the current step and of `step_ids`, the ids of all the
    run's step records and whether it has pending timers (None if it is not visible); with
    `customer`, the run's customer and its surroundings too."""
    tx = tx_of(session)
    others = list(step_ids)
    sql = _LOCK_WITH_STEPS[min(len(others), 2), customer]
    args: tuple[Any, ...] = (run_id,) if not others else (
        run_id, others[0] if len(others) == 1 else others)
    row = await tx.fetchrow(sql, *args)
    if row is not None and row["locked"] != row["seen"]:  # waited for the lock: read again
        row = await tx.fetchrow(sql, *args)
    if row is None:
        return None
    values = dict(row)
    known, records = values.pop("known_steps"), values.pop("records")
    has_timers = bool(values.pop("has_timers"))
    del values["locked"], values["seen"]
    found = None
    if customer:
        around = {key: values.pop(key) for key in list(values) if "__" in key}
        found = context_repository.found_in(around)
    if isinstance(records, str | bytes):  # json text, unless the driver decodes json itself
        records = jsontext.loads(records)
    if isinstance(known, str | bytes):
        known = jsontext.loads(known)
    steps = {item["step_id"]: _step_of_json(item) for item in records or ()}
    return Locked(run=Run(**values), steps=steps, known={step for step, _, _ in known or ()},
                  outputs=outputs_of(known or ()), has_timers=has_timers, customer=found)


def outputs_of(records: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """`steps.*` from (step id, status, output) records: a step is there once it has
    completed, with what it produced (re-entered since, with its last output)."""
    return {step: {"output": output, "status": status} for step, status, output in records
            if status == "completed" or output is not None}


@dataclass(frozen=True)
class IORequest:
    """What the worker reads before an I/O step's call: the run's state and the step's."""

    run_status: str
    current_step_id: str | None
    step_type: str
    status: str
    attempts: int
    input: dict[str, Any] | None


async def io_request(db: Database, tenant_id: UUID, run_id: UUID, step_id: str
                     ) -> IORequest | None:
    """The run's status and current step beside the step's record: no lock, no transaction
    block, one round trip (migration 0010)."""
    row = await db.fetchrow_entering(
        tenant_id, "SELECT * FROM stepwise_io_request($1, $2, $3)", run_id, step_id)
    return None if row is None else IORequest(**dict(row))


async def step(session: AsyncSession, run_id: UUID, step_id: str) -> RunStep | None:
    row = await tx_of(session).fetchrow(
        f"SELECT {_STEP_COLUMNS} FROM run_steps WHERE run_id = $1 AND step_id = $2",
        run_id, step_id)
    return None if row is None else RunStep(**dict(row))


async def get(session: AsyncSession, run_id: UUID) -> Run | None:
    row = await tx_of(session).fetchrow(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = $1", run_id)
    return None if row is None else _run(row)


async def get_many(session: AsyncSession, run_ids: Sequence[UUID]) -> list[Run]:
    rows = await tx_of(session).fetch(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ANY($1::uuid[])", list(run_ids))
    return [_run(row) for row in rows]


async def active_for(session: AsyncSession, customer_id: UUID, workflow_key: str
                     ) -> UUID | None:
    value: UUID | None = await tx_of(session).fetchval(
        "SELECT id FROM runs WHERE customer_id = $1 AND workflow_key = $2 "
        "AND status IN ('pending', 'running', 'waiting', 'paused')", customer_id, workflow_key)
    return value


# The run, its changed step records and its new events, written in one statement (one round
# trip per transaction's save), with the jobs the work deferred if there are any.
# Data-modifying CTEs all run to completion; each touches its own table, and the event
# trigger (live NOTIFY) fires once for the statement as before.
_SAVE = (
    "WITH run AS (UPDATE runs SET status = $2, current_step_id = $3, context = $4::jsonb, "
    "paused_status = $5, error = $6, next_seq = $7, updated_at = $8, started_at = $9, "
    "finished_at = $10 WHERE id = $1), "
    "steps AS (INSERT INTO run_steps (tenant_id, run_id, step_id, step_type, status, attempts, "
    "input, output, error, started_at, finished_at, created_at, updated_at) "
    "SELECT s.tenant_id, s.run_id, s.step_id, s.step_type, s.status, s.attempts, "
    "s.input, s.output, s.error, s.started_at, s.finished_at, $8, $8 "
    "FROM jsonb_to_recordset($11::jsonb) AS s(tenant_id uuid, run_id uuid, step_id text, "
    "step_type text, status text, attempts int, input jsonb, output jsonb, error text, "
    "started_at timestamptz, finished_at timestamptz) "
    "ON CONFLICT (tenant_id, run_id, step_id) DO UPDATE SET step_type = excluded.step_type, "
    "status = excluded.status, attempts = excluded.attempts, input = excluded.input, "
    "output = excluded.output, error = excluded.error, started_at = excluded.started_at, "
    "finished_at = excluded.finished_at, updated_at = excluded.updated_at), "
    "events AS (INSERT INTO run_events (tenant_id, run_id, seq, type, step_id, payload, at) "
    "SELECT e.tenant_id, e.run_id, e.seq, e.type, e.step_id, e.payload, e.at "
    "FROM jsonb_to_recordset($12::jsonb) AS e(tenant_id uuid, run_id uuid, seq int, "
    "type text, step_id text, payload jsonb, at timestamptz)) ")

# By what the statement carries besides: jobs to defer ($13), an LLM call's settlement (the
# next parameter) in the ledger (domain.usage).
@lru_cache(maxsize=4)
def _save_sql(deferring: bool, settling: bool) -> str:
    sql = _SAVE
    if settling:
        sql = sql.rstrip() + ", " + usage_repository.SETTLE_CTE.format(
            f"${14 if deferring else 13}") + " "
    return sql + ("SELECT " + jobs_repository.DEFER_CALL.format("$13") if deferring
                  else "SELECT 1")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def save(session: AsyncSession, run: Run, steps: Sequence[RunStep],
               events: Sequence[RunEvent], *, now: datetime, jobs: Sequence[Job] = (),
               settlement: str | None = None) -> None:
    """Write the run, insert or update `steps`, append `events`, queue `jobs` (as
    domain.jobs does) and settle an LLM call (domain.usage.service.settlement), in one
    round trip.

    Step inputs and outputs, and event payloads, travel as JSON values inside the JSON
    array (a JSON null input is stored as SQL NULL, as before)."""
    carried = ((jobs_repository.payload(jobs),) if jobs else ()) + (
        (settlement,) if settlement is not None else ())
    await tx_of(session).execute(
        _save_sql(bool(jobs), settlement is not None), run.id, run.status, run.current_step_id,
        _dumps(run.context), run.paused_status, run.error, run.next_seq, now, run.started_at,
        run.finished_at,
        _dumps([{"tenant_id": step.tenant_id, "run_id": step.run_id, "step_id": step.step_id,
                 "step_type": step.step_type, "status": step.status,
                 "attempts": step.attempts, "input": step.input, "output": step.output,
                 "error": step.error, "started_at": _time(step.started_at),
                 "finished_at": _time(step.finished_at)} for step in steps]),
        _dumps([{"tenant_id": e.tenant_id, "run_id": e.run_id, "seq": e.seq, "type": e.type,
                 "step_id": e.step_id, "payload": e.payload, "at": e.at.isoformat()}
                for e in events]), *carried)


# Steps and events (reads)


async def steps_many(session: AsyncSession, run_ids: Sequence[UUID]) -> list[RunStep]:
    rows = await tx_of(session).fetch(
        f"SELECT {_STEP_COLUMNS} FROM run_steps WHERE run_id = ANY($1::uuid[]) "
        "ORDER BY run_id, started_at NULLS LAST, created_at", list(run_ids))
    return [RunStep(**dict(row)) for row in rows]


@dataclass(frozen=True)
class RunView:
    """A run with what a reader asked for beside it, read in one statement (`view`); a part
    not asked for is None."""

    run: Run
    steps: list[RunStep] | None
    events: list[RunEvent] | None
    notifications: list[Notification] | None
    workflow: Workflow | None  # (also None when not visible)
    customer: Customer | None


_STEP_FIELDS = tuple(c.strip() for c in _STEP_COLUMNS.split(","))
_EVENT_COLUMNS = ("tenant_id", "run_id", "seq", "type", "step_id", "payload", "at")
_NOTIFICATION_COLUMNS = tuple(Notification.__dataclass_fields__)
_WORKFLOW_FIELDS = tuple(Workflow.model_fields)
_CUSTOMER_FIELDS = tuple(Customer.model_fields)


def _row_of(alias: str, columns: Sequence[str]) -> str:
    return "ROW(" + ", ".join(f"{alias}.{c}" for c in columns) + ")"


@lru_cache(maxsize=32)
def _view_sql(steps: bool, events: bool, notifications: bool, workflow: bool,
              customer: bool) -> str:
    """The run and its asked-for parts as arrays of rows (each part as its own query would
    read it, in the same order), under the same RLS."""
    parts = [f"SELECT {', '.join('r.' + c.strip() for c in _RUN_COLUMNS.split(','))}"]
    if steps:
        parts.append(f"ARRAY(SELECT {_row_of('s', _STEP_FIELDS)} "
                     "FROM run_steps s WHERE s.run_id = r.id "
                     "ORDER BY s.started_at NULLS LAST, s.created_at) AS steps")
    if events:
        parts.append(f"ARRAY(SELECT {_row_of('e', _EVENT_COLUMNS)} FROM run_events e "
                     "WHERE e.run_id = r.id AND e.seq > $2 ORDER BY e.seq LIMIT $3) AS events")
    if notifications:
        parts.append(f"ARRAY(SELECT {_row_of('n', _NOTIFICATION_COLUMNS)} "
                     "FROM notifications n WHERE n.run_id = r.id "
                     "ORDER BY n.created_at, n.id) AS notifications")
    if workflow:
        parts.append(f"(SELECT {_row_of('w', _WORKFLOW_FIELDS)} FROM workflows w "
                     "WHERE w.id = r.workflow_id) AS workflow")
    if customer:
        parts.append(f"(SELECT {_row_of('c', _CUSTOMER_FIELDS)} FROM customers c "
                     "WHERE c.id = r.customer_id) AS customer")
    return ", ".join(parts) + " FROM runs r WHERE r.id = $1"


async def view(session: AsyncSession, run_id: UUID, *, steps: bool = False,
               events: tuple[int, int] | None = None, notifications: bool = False,
               workflow: bool = False, customer: bool = False) -> RunView | None:
    """The run, and the parts asked for, in one round trip (the reader's Run screen)."""
    sql = _view_sql(steps, events is not None, notifications, workflow, customer)
    args: list[Any] = [run_id]
    if events is not None:
        args += list(events)
    row = await tx_of(session).fetchrow(sql, *args)
    if row is None:
        return None
    return RunView(
        run=_run(row),
        steps=[RunStep(**dict(zip(_STEP_FIELDS, item, strict=True))) for item in row["steps"]]
        if steps else None,
        events=[RunEvent(**dict(zip(_EVENT_COLUMNS, item, strict=True)))
                for item in row["events"]] if events is not None else None,
        notifications=[Notification(**dict(zip(_NOTIFICATION_COLUMNS, item, strict=True)))
                       for item in row["notifications"]] if notifications else None,
        workflow=from_row(Workflow, dict(zip(_WORKFLOW_FIELDS, row["workflow"], strict=True)))
        if workflow and row["workflow"] is not None else None,
        customer=from_row(Customer, dict(zip(_CUSTOMER_FIELDS, row["customer"], strict=True)))
        if customer and row["customer"] is not None else None)


async def events(session: AsyncSession, run_id: UUID, *, after_seq: int, limit: int
                 ) -> list[RunEvent]:
    rows = await tx_of(session).fetch(
        "SELECT tenant_id, run_id, seq, type, step_id, payload, at FROM run_events "
        "WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", run_id, after_seq, limit)
    return [RunEvent(**dict(row)) for row in rows]


# Timers


async def insert_timers(session: AsyncSession, timers: Sequence[RunTimer]) -> None:
    for timer in timers:
        await tx_of(session).execute(
            "INSERT INTO run_timers (tenant_id, id, run_id, kind, fire_at, payload) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            timer.tenant_id, timer.id, timer.run_id, timer.kind, timer.fire_at,
            _dumps(timer.payload))


async def lock_timer(session: AsyncSession, timer_id: UUID) -> RunTimer | None:
    row = await tx_of(session).fetchrow(
        "SELECT tenant_id, id, run_id, kind, fire_at, payload, status, fired_at "
        "FROM run_timers WHERE id = $1 FOR UPDATE", timer_id)
    return None if row is None else RunTimer(**dict(row))


async def pending_timers(session: AsyncSession, run_id: UUID) -> list[RunTimer]:
    rows = await tx_of(session).fetch(
        "SELECT tenant_id, id, run_id, kind, fire_at, payload, status, fired_at "
        "FROM run_timers WHERE run_id = $1 AND status = 'pending' ORDER BY fire_at", run_id)
    return [RunTimer(**dict(row)) for row in rows]


async def set_timer_status(session: AsyncSession, timer_ids: Sequence[UUID], status: str, *,
                           now: datetime) -> None:
    if timer_ids:
        await tx_of(session).execute(
            "UPDATE run_timers SET status = $2, fired_at = CASE WHEN $2 = 'fired' THEN $3 "
            "ELSE fired_at END, updated_at = $3 WHERE id = ANY($1::uuid[])",
            list(timer_ids), status, now)


# Versions (immutable: cached per process; the run row, read under RLS, says which)

_configs: dict[tuple[UUID, int], dict[str, Any]] = {}


async def version_config(session: AsyncSession, workflow_id: UUID, number: int
                         ) -> dict[str, Any] | None:
    key = (workflow_id, number)
    found = _configs.get(key)
    if found is None:
        found = await tx_of(session).fetchval(
            "SELECT config FROM workflow_versions WHERE workflow_id = $1 AND number = $2",
            workflow_id, number)
        if found is None:
            return None
        if len(_configs) > 4096:
            _configs.clear()
        _configs[key] = found
    return found


# Listing


def _filter_sql(spec: RunFilter, args: list[Any]) -> str:
    conditions = ["TRUE"]
    if spec.statuses:
        args.append(list(spec.statuses))
        conditions.append(f"status = ANY(${len(args)}::text[])")
    if spec.workflow_key:
        args.append(spec.workflow_key)
        conditions.append(f"workflow_key = ${len(args)}")
    if spec.customer_id:
        args.append(spec.customer_id)
        conditions.append(f"customer_id = ${len(args)}")
    return " AND ".join(conditions)


async def page(session: AsyncSession, spec: RunFilter, *, limit: int,
               after: tuple[datetime, UUID] | None) -> tuple[list[Run], int]:
    """Newest first, keyset-paginated, with the filter's total."""
    args: list[Any] = []
    where = _filter_sql(spec, args)
    total = await tx_of(session).fetchval(f"SELECT count(*) FROM runs WHERE {where}", *args)
    page_where = where
    if after is not None:
        args += [after[0], after[1]]
        page_where += f" AND (created_at, id) < (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    rows = await tx_of(session).fetch(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE {page_where} "
        f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}", *args)
    return [_run(row) for row in rows], int(total)


async def active_keys_calling(session: AsyncSession, action_id: str) -> list[str]:
    """Workflow keys of the tenant's active runs whose pinned version calls `action_id`."""
    rows = await tx_of(session).fetch(
        "SELECT DISTINCT r.workflow_key FROM runs r JOIN workflow_versions v "
        "ON v.workflow_id = r.workflow_id AND v.number = r.workflow_version "
        "WHERE r.status IN ('pending', 'running', 'waiting', 'paused') AND jsonb_path_exists("
        "v.config, '$.steps[*].chatBranches[*] ? (@.savedAction == $action)', "
        "jsonb_build_object('action', $1::text)) ORDER BY 1", action_id)
    return [row["workflow_key"] for row in rows]


# The renewal scan


async def scan_workflows(session: AsyncSession) -> list[dict[str, Any]]:
    """Live workflows with a trigger, one per key: the tenant's own shadows the core one."""
    rows = await tx_of(session).fetch(
        "SELECT DISTINCT ON (key) id, key, latest_version, config FROM workflows "
        "WHERE deleted_at IS NULL AND config ? 'trigger' ORDER BY key, tenant_id IS NULL")
    return [dict(row) for row in rows]


async def scan_customers(session: AsyncSession) -> list[tuple[UUID, Any]]:
    rows = await tx_of(session).fetch(
        "SELECT id, renewal_date FROM customers WHERE renewal_date IS NOT NULL")
    return [(row["id"], row["renewal_date"]) for row in rows]


async def scan_blocked(session: AsyncSession) -> set[tuple[UUID, str]]:
    """(customer, workflow key) pairs the scan must not start: an active run, or a scan run
    for the customer's current renewal date."""
    rows = await tx_of(session).fetch(
        "SELECT r.customer_id, r.workflow_key FROM runs r JOIN customers c "
        "ON c.tenant_id = r.tenant_id AND c.id = r.customer_id "
        "WHERE r.status IN ('pending', 'running', 'waiting', 'paused') "
        "OR (r.trigger = 'scan' AND r.renewal_date = c.renewal_date)")
    return {(row["customer_id"], row["workflow_key"]) for row in rows}


async def insert_scanned(session: AsyncSession, items: Sequence[dict[str, Any]], *,
                         now: datetime) -> list[tuple[UUID, UUID, str]]:
    """Pending runs for the scan, with their run_created event, in two statements; a run
    another scan (or person) started meanwhile is skipped by the unique indexes."""
    if not items:
        return []
    tx = tx_of(session)
    rows = await tx.fetch(
        "INSERT INTO runs (tenant_id, workflow_id, workflow_key, workflow_version, customer_id, "
        "variables, context, trigger, renewal_date, next_seq, created_at, updated_at) "
        "SELECT i.tenant_id, i.workflow_id, i.workflow_key, i.workflow_version, i.customer_id, "
        "i.variables, i.context, 'scan', i.renewal_date, 1, $2, $2 "
        "FROM jsonb_to_recordset($1::jsonb) AS i(tenant_id uuid, workflow_id uuid, "
        "workflow_key text, workflow_version int, customer_id uuid, variables jsonb, "
        "context jsonb, renewal_date date) ON CONFLICT DO NOTHING "
        "RETURNING tenant_id, id, workflow_key",
        _dumps(items), now)
    created = [(row["tenant_id"], row["id"], row["workflow_key"]) for row in rows]
    if created:
        await tx.execute(
            "INSERT INTO run_events (tenant_id, run_id, seq, type, payload, at) "
            "SELECT r.tenant_id, r.id, 1, 'run_created', jsonb_build_object('trigger', 'scan', "
            "'workflowKey', r.workflow_key, 'workflowVersion', r.workflow_version, "
            "'reason', r.context->'trigger'), $2 FROM runs r WHERE r.id = ANY($1::uuid[])",
            [run_id for _, run_id, _ in created], now)
    return created
