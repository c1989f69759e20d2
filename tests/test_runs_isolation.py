"""Run tables attacked as the non-owner app role: runs, steps, events, timers, the outbox,
channels. Tenant B holds a connection with its own tenant set and goes after tenant A's rows."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from domain.shared.settings import JOBS_SCHEMA
from tests.factories_runs import act, make_customer, make_team, start
from tests.factories_workflows import seed_core
from tests.test_isolation import as_tenant

pytestmark = pytest.mark.asyncio

# Every run table, with one column the attack tries to change.
TABLES = {"runs": "status", "run_steps": "status", "run_events": "type",
          "run_timers": "status", "notifications": "status",
          "notification_channels": "name", "workflow_channels": "enabled"}


@pytest_asyncio.fixture
async def victim(gql, settings, app_connection_factory):  # type: ignore[no-untyped-def]
    """Tenant A with a snoozed run (a timer), notifications and a channel; tenant B."""
    await seed_core(settings)
    a, b = await make_team(gql, settings), await make_team(gql, settings)
    customer = await make_customer(gql, a, days=10, arr=300000)
    run_id = (await start(gql, a, "critical", customer["id"]))["run"]["id"]
    await act(gql, a, "ChooseBranch", "chooseBranch", runId=run_id, branchId="snooze")
    conn = await app_connection_factory()
    await as_tenant(conn, a.tenant.id)
    channel = await conn.fetchval(
        "INSERT INTO notification_channels (tenant_id, type, name, config) "
        "VALUES ($1, 'email', 'Ops mail', '{}') RETURNING id", a.tenant.id)
    await conn.execute("INSERT INTO workflow_channels (tenant_id, workflow_key, channel_id) "
                       "VALUES ($1, 'critical', $2)", a.tenant.id, channel)
    await conn.execute("INSERT INTO notifications (tenant_id, run_id, channel, title) "
                       "VALUES ($1, $2, 'in_app', 'Private to A')", a.tenant.id,
                       uuid.UUID(run_id))
    await conn.execute("COMMIT")
    return a, b, uuid.UUID(run_id), customer


async def _count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


class TestAnotherTenantsRuns:
    async def test_every_run_table_is_invisible(self, victim, app_connection_factory) -> None:
        a, b, _, _ = victim
        conn = await app_connection_factory()
        await as_tenant(conn, a.tenant.id)
        assert all([await _count(conn, t) > 0 for t in TABLES])
        await conn.execute("ROLLBACK")
        await as_tenant(conn, b.tenant.id)
        assert {t: await _count(conn, t) for t in TABLES} == dict.fromkeys(TABLES, 0)
        await conn.execute("ROLLBACK")

    async def test_updates_and_deletes_touch_nothing(self, victim,
                                                     app_connection_factory) -> None:
        a, b, _, _ = victim
        conn = await app_connection_factory()
        await as_tenant(conn, b.tenant.id)
        for table, column in TABLES.items():
            if table == "run_events":
                continue  # not even allowed (below)
            value = "true" if column == "enabled" else "'pwned'"
            assert await conn.execute(f"UPDATE {table} SET {column} = {value}") == "UPDATE 0"
        for table in ("notification_channels", "workflow_channels"):
            assert await conn.execute(f"DELETE FROM {table}") == "DELETE 0"
        await conn.execute("COMMIT")
        await as_tenant(conn, a.tenant.id)
        assert await conn.fetchval("SELECT status FROM runs") == "waiting"
        await conn.execute("ROLLBACK")

    async def test_history_is_append_only_even_for_its_own_tenant(
            self, victim, app_connection_factory) -> None:
        a, _, _, _ = victim
        conn = await app_connection_factory()
        for statement in ("UPDATE run_events SET type = 'forged'", "DELETE FROM run_events",
                          "DELETE FROM runs", "DELETE FROM run_steps", "DELETE FROM run_timers",
                          "DELETE FROM notifications"):
            await as_tenant(conn, a.tenant.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
            await conn.execute("ROLLBACK")

    async def test_the_workers_one_statement_read_sees_its_tenant_only(
            self, victim, app_connection_factory) -> None:
        a, b, run_id, _ = victim
        conn = await app_connection_factory()
        await as_tenant(conn, a.tenant.id)
        step = await conn.fetchval("SELECT current_step_id FROM runs WHERE id = $1", run_id)
        await conn.execute("ROLLBACK")
        read = "SELECT * FROM stepwise_io_request($1, $2, $3)"
        assert await conn.fetchrow(read, b.tenant.id, run_id, step) is None
        own = await conn.fetchrow(read, a.tenant.id, run_id, step)
        assert own is not None
        assert (own["run_status"], own["current_step_id"]) == ("waiting", step)
        # the tenant it set ended with the statement's own transaction
        assert await conn.fetchval("SELECT current_setting('app.tenant_id', true)") in (None, "")
        assert await _count(conn, "runs") == 0

    async def test_rows_cannot_be_planted_in_or_moved_to_another_tenant(
            self, gql, victim, app_connection_factory) -> None:
        a, b, run_id, _ = victim
        own = await make_customer(gql, b, days=10, arr=300000)
        assert (await start(gql, b, "critical", own["id"]))["errors"] == []
        conn = await app_connection_factory()
        plants: list[tuple[str, tuple[Any, ...]]] = [
            ("INSERT INTO run_events (tenant_id, run_id, seq, type) "
             "VALUES ($1, $2, 999, 'forged')", (a.tenant.id, run_id)),
            ("INSERT INTO notifications (tenant_id, run_id, channel, title) "
             "VALUES ($1, $2, 'in_app', 'x')", (a.tenant.id, run_id)),
            ("INSERT INTO notification_channels (tenant_id, type, name) "
             "VALUES ($1, 'email', 'x')", (a.tenant.id,)),
            ("UPDATE runs SET tenant_id = $1", (a.tenant.id,)),
            ("UPDATE run_steps SET tenant_id = $1", (a.tenant.id,)),
        ]
        for statement, args in plants:
            await as_tenant(conn, b.tenant.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, *args)
            await conn.execute("ROLLBACK")

    async def test_own_rows_cannot_reference_another_tenants(
            self, victim, app_connection_factory, settings) -> None:
        a, b, run_id, a_customer = victim
        conn = await app_connection_factory()
        await as_tenant(conn, a.tenant.id)
        workflow_id, version = await conn.fetchrow(
            "SELECT workflow_id, workflow_version FROM runs WHERE id = $1", run_id)
        await conn.execute("ROLLBACK")
        # B's event on A's run, B's run for A's customer: composite keys make them dangle.
        for statement, args in (
            ("INSERT INTO run_events (tenant_id, run_id, seq, type) "
             "VALUES ($1, $2, 1, 'forged')", (b.tenant.id, run_id)),
            ("INSERT INTO runs (tenant_id, workflow_id, workflow_key, workflow_version, "
             "customer_id) VALUES ($1, $2, 'critical', $3, $4)",
             (b.tenant.id, workflow_id, version, uuid.UUID(a_customer["id"]))),
        ):
            await as_tenant(conn, b.tenant.id)
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await conn.execute(statement, *args)
            await conn.execute("ROLLBACK")

    async def test_another_tenants_workflow_cannot_be_run_by_id(
            self, gql, victim, app_connection_factory) -> None:
        from tests.factories_workflows import make_workflow

        a, b, _, _ = victim
        theirs = await make_workflow(gql, a.tenant, key="secret-playbook")
        mine = await make_customer(gql, b, days=10)
        conn = await app_connection_factory()
        await as_tenant(conn, b.tenant.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO runs (tenant_id, workflow_id, workflow_key, workflow_version, "
                "customer_id) VALUES ($1, $2, 'secret-playbook', 1, $3)",
                b.tenant.id, uuid.UUID(theirs["id"]), uuid.UUID(mine["id"]))
        await conn.execute("ROLLBACK")


class TestJobEngineIsOutOfReach:
    async def test_the_app_role_cannot_see_jobs(self, victim, app_connection_factory) -> None:
        _, b, _, _ = victim
        conn = await app_connection_factory()
        await as_tenant(conn, b.tenant.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch(f"SELECT args FROM {JOBS_SCHEMA}.procrastinate_jobs")
        await conn.execute("ROLLBACK")
        for function in ("stepwise_due_timers(now(), 10)", "stepwise_tenant_ids()",
                         "stepwise_due_notifications(now(), 10)"):
            await as_tenant(conn, b.tenant.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {function}")
            await conn.execute("ROLLBACK")

    async def test_deferring_is_allowed_but_reveals_nothing(
            self, victim, app_connection_factory) -> None:
        _, b, _, _ = victim
        conn = await app_connection_factory()
        await as_tenant(conn, b.tenant.id)
        queued = await conn.fetchval("SELECT stepwise_defer_jobs($1::jsonb)", json.dumps(
            [{"task": "start_run", "args": {"tenant_id": str(b.tenant.id)}, "queue": "x"}]))
        assert queued == 1
        await conn.execute("ROLLBACK")


class TestOverGraphQL:
    async def test_runs_lists_show_only_the_callers_runs(self, gql, victim) -> None:
        a, b, run_id, _ = victim
        seen = await gql("{ runs { totalCount edges { node { id } } } }", token=b.tenant.token)
        assert seen["runs"] == {"totalCount": 0, "edges": []}
        theirs = await gql("query($id: ID!) { run(id: $id) { id } }", {"id": str(run_id)},
                           token=b.tenant.token)
        assert theirs["run"] is None
        mine = await gql("{ runs { totalCount } }", token=a.tenant.token)
        assert mine["runs"]["totalCount"] == 1

    async def test_channels_notifications_and_inbox_are_the_callers_own(
            self, gql, victim) -> None:
        a, b, run_id, _ = victim
        own = await gql("{ notificationChannels { id name } }", token=a.tenant.token)
        channel_id = own["notificationChannels"][0]["id"]
        detail = await gql("query($id: ID!) { run(id: $id) { notifications { id } } }",
                           {"id": str(run_id)}, token=a.tenant.token)
        notification_id = detail["run"]["notifications"][0]["id"]

        assert (await gql("{ notificationChannels { id } }", token=b.tenant.token)
                ) == {"notificationChannels": []}
        assert (await gql('{ workflowChannels(workflowKey: "critical") { channelId } }',
                          token=b.tenant.token)) == {"workflowChannels": []}
        assert (await gql("{ inbox { id } }", token=b.tenant.token)) == {"inbox": []}

        update = await gql(
            "mutation($id: ID!) { updateNotificationChannel(id: $id, input: {name: \"pwned\"})"
            " { channel { id } errors { code path } } }", {"id": channel_id},
            token=b.tenant.token)
        assert update["updateNotificationChannel"] == {
            "channel": None, "errors": [{"code": "NOT_FOUND", "path": "id"}]}
        delete = await gql("mutation($id: ID!) { deleteNotificationChannel(id: $id) { "
                           "deletedId errors { code } } }", {"id": channel_id},
                           token=b.tenant.token)
        assert delete["deleteNotificationChannel"] == {"deletedId": None,
                                                       "errors": [{"code": "NOT_FOUND"}]}
        plant = await gql(
            'mutation($c: ID!) { setWorkflowChannels(workflowKey: "critical", channels: '
            "[{channelId: $c}]) { channels { channelId } errors { code } } }",
            {"c": channel_id}, token=b.tenant.token)
        assert plant["setWorkflowChannels"]["channels"] is None
        assert plant["setWorkflowChannels"]["errors"][0]["code"] == "NOT_FOUND"
        read = await gql("mutation($id: ID!) { markNotificationRead(id: $id) { "
                         "notification { id } errors { code } } }", {"id": notification_id},
                         token=b.tenant.token)
        assert read["markNotificationRead"] == {"notification": None,
                                                "errors": [{"code": "NOT_FOUND"}]}

        still = await gql("{ notificationChannels { id name } }", token=a.tenant.token)
        assert still["notificationChannels"] == own["notificationChannels"]

    async def test_another_tenants_run_and_customer_cannot_be_worked(self, gql, victim) -> None:
        a, b, run_id, customer = victim
        for operation in ("cancelRun", "pauseRun", "resumeRun"):
            done = await gql(f"mutation($id: ID!) {{ {operation}(runId: $id) {{ run {{ id }} "
                             "errors { code } } }", {"id": str(run_id)}, token=b.tenant.token)
            assert done[operation] == {"run": None, "errors": [{"code": "NOT_FOUND"}]}
        chosen = await gql('mutation($id: ID!) { chooseBranch(runId: $id, branchId: "snooze") '
                           "{ run { id } errors { code } } }", {"id": str(run_id)},
                           token=b.tenant.token)
        assert chosen["chooseBranch"] == {"run": None, "errors": [{"code": "NOT_FOUND"}]}
        started = await gql(
            "mutation($input: StartRunInput!) { startRun(input: $input) { run { id } "
            "errors { code path } } }",
            {"input": {"workflowKey": "critical", "customerId": customer["id"]}},
            token=b.tenant.token)
        assert started["startRun"]["run"] is None
        assert [e["code"] for e in started["startRun"]["errors"]] == ["NOT_FOUND"]
        mine = await gql("query($id: ID!) { run(id: $id) { status } }", {"id": str(run_id)},
                         token=a.tenant.token)
        assert mine["run"]["status"] == "waiting"
