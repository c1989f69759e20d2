"""The one tenant-transaction primitive (domain.shared.db): every edge's way to a session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from domain.shared.actor import Actor, Role
from domain.shared.db import Database, UnknownCaller
from domain.shared.errors import Forbidden
from domain.shared.settings import Settings
from tests.factories import make_tenant, make_user
from tests.factories_customers import make_workflow
from tests.factories_workflows import config, seed_core
from tests.workerlib import eventually

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.app_database_url, pool_size=2)
    yield database
    await database.dispose()


class TestEntering:
    async def test_a_user_is_re_read_with_the_role_stored_now(self, db, settings) -> None:
        tenant = await make_tenant(settings)
        viewer = await make_user(tenant, role=Role.VIEWER)
        async with db.transaction(tenant.id, user_id=viewer) as tx:
            assert tx.actor == Actor(tenant_id=tenant.id, user_id=viewer, role=Role.VIEWER)
            assert tx.user is not None
            assert tx.user["id"] == viewer
            with pytest.raises(Forbidden):
                tx.actor.require(Role.EDITOR)

    async def test_an_unknown_user_is_refused_and_the_connection_returns_clean(
            self, db, settings) -> None:
        tenant = await make_tenant(settings)
        for _ in range(3):  # more than the pool holds: a leaked connection would block
            with pytest.raises(UnknownCaller):
                async with db.transaction(tenant.id, user_id=uuid.uuid4()):
                    pass
        async with db.transaction(tenant.id) as tx:
            assert await tx.fetchval("SELECT count(*) FROM users") == 1

    async def test_a_user_of_another_tenant_is_unknown(self, db, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        with pytest.raises(UnknownCaller):
            async with db.transaction(a.id, user_id=b.admin_id):
                pass

    async def test_the_system_sees_its_tenant_only(self, db, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        async with db.transaction(a.id) as tx:
            assert tx.actor == Actor.system(a.id)
            ids = {row["id"] for row in await tx.fetch("SELECT id FROM users")}
        assert ids == {a.admin_id}
        assert b.admin_id not in ids


class TestEnding:
    async def test_an_exception_rolls_everything_back(self, db, settings) -> None:
        tenant = await make_tenant(settings)
        async def change_then_fail() -> None:
            async with db.transaction(tenant.id) as tx:
                await tx.execute("UPDATE tenants SET name = 'Changed' WHERE id = $1", tenant.id)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await change_then_fail()
        async with db.transaction(tenant.id) as tx:
            assert await tx.fetchval("SELECT name FROM tenants") != "Changed"

    async def test_read_only_transactions_refuse_writes(self, db, settings) -> None:
        tenant = await make_tenant(settings)
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            async with db.transaction(tenant.id, read_only=True) as tx:
                await tx.execute("UPDATE tenants SET name = 'x' WHERE id = $1", tenant.id)

    async def test_no_tenant_survives_on_a_pooled_connection(self, db, settings) -> None:
        tenant = await make_tenant(settings)
        async with db.transaction(tenant.id):
            pass
        async with db.transaction(None, read_only=True) as tx:
            # (the same pooled connection: the last one given back is the next one taken)
            setting = await tx.fetchval("SELECT current_setting('app.tenant_id', true)")
        assert setting in (None, "")

    async def test_a_one_statement_read_sees_its_tenant_only_and_keeps_nothing_set(
            self, db, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        enter = "SELECT id FROM stepwise_enter($1, $2)"
        own = await db.fetchrow_entering(a.id, enter, a.admin_id)
        assert own is not None
        assert own["id"] == a.admin_id
        assert await db.fetchrow_entering(a.id, enter, b.admin_id) is None
        # a statement that does not set the tenant itself sees nothing at all
        assert await db.fetchrow_entering(
            a.id, "SELECT id FROM users WHERE $1::uuid IS NOT NULL LIMIT 1") is None
        async with db.transaction(None, read_only=True) as tx:  # the same pooled connection
            setting = await tx.fetchval("SELECT current_setting('app.tenant_id', true)")
        assert setting in (None, "")

    async def test_a_refused_one_statement_read_leaves_the_connection_usable(
            self, db, settings) -> None:
        tenant = await make_tenant(settings)
        for _ in range(3):  # more than the pool holds: a leaked connection would block
            with pytest.raises(asyncpg.PostgresError):
                await db.fetchrow_entering(tenant.id, "SELECT 1 / 0 WHERE $1::uuid IS NOT NULL")
        async with db.transaction(tenant.id) as tx:
            assert await tx.fetchval("SELECT count(*) FROM users") == 1

    async def test_a_solo_database_runs_transactions_to_the_same_end(self, settings) -> None:
        solo = Database(settings.app_database_url, pool_size=1, solo=True)
        try:
            tenant = await make_tenant(settings)

            async def fail() -> None:
                async with solo.transaction(tenant.id) as tx:
                    await tx.execute("UPDATE users SET name = 'Changed'")
                    raise RuntimeError("boom")

            with pytest.raises(RuntimeError):
                await fail()
            async with solo.transaction(tenant.id) as tx:
                assert await tx.fetchval("SELECT name FROM users") != "Changed"
                await tx.execute("UPDATE users SET name = 'Kept'")
            async with solo.transaction(tenant.id, read_only=True) as tx:
                assert await tx.fetchval("SELECT name FROM users") == "Kept"
        finally:
            await solo.dispose()

    async def test_a_transaction_ending_after_dispose_closes_its_connection(
            self, settings) -> None:
        # (a server shutting down while a subscription's transaction runs: its connection
        # must not go back to a pool nobody will close)
        database = Database(settings.app_database_url, pool_size=2)
        tenant = await make_tenant(settings)
        async with database.transaction(tenant.id) as warm:
            idle = await warm.fetchval("SELECT pg_backend_pid()")
        tx = await database.begin(tenant.id)
        busy = await tx.fetchval("SELECT pg_backend_pid()")
        await database.dispose()
        await tx.commit()
        owner = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
        try:
            async def gone() -> bool:
                alive = await owner.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                    [idle, busy])
                return bool(alive == 0)

            await eventually(gone, deadline=10, every=0.02, what="both sessions to end")
        finally:
            await owner.close()

    async def test_a_savepoint_undoes_its_own_writes_only(self, db, settings) -> None:
        tenant = await make_tenant(settings)
        async with db.transaction(tenant.id) as tx:
            await tx.execute("UPDATE tenants SET name = 'Kept' WHERE id = $1", tenant.id)

            async def change_then_fail() -> None:
                async with tx.savepoint():
                    await tx.execute("UPDATE tenants SET name = 'Undone' WHERE id = $1",
                                     tenant.id)
                    raise RuntimeError("undo")

            with pytest.raises(RuntimeError):
                await change_then_fail()
        async with db.transaction(tenant.id) as tx:
            assert await tx.fetchval("SELECT name FROM tenants") == "Kept"


class TestOneCoroutineAtATime:
    async def test_concurrent_callers_are_serialised(self, db, settings) -> None:
        tenant = await make_tenant(settings)
        async with db.transaction(tenant.id) as tx:
            results = await asyncio.gather(*(
                tx.fetchval("SELECT $1::int FROM pg_sleep(0.01)", i) for i in range(8)))
            orm = await asyncio.gather(*(tx.session.scalar(_select_one()) for _ in range(4)))
        assert results == list(range(8))
        assert orm == [1, 1, 1, 1]

    async def test_a_cancelled_caller_does_not_poison_the_transaction(
            self, db, settings) -> None:
        tenant = await make_tenant(settings)
        async with db.transaction(tenant.id) as tx:
            slow = asyncio.ensure_future(tx.fetchval("SELECT 1 FROM pg_sleep(0.2)"))
            await asyncio.sleep(0.05)  # the statement is on the wire
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            await tx.execute("UPDATE tenants SET name = 'After cancel' WHERE id = $1",
                             tenant.id)
        async with db.transaction(tenant.id) as tx:
            assert await tx.fetchval("SELECT name FROM tenants") == "After cancel"


def _select_one():  # type: ignore[no-untyped-def]
    from sqlalchemy import literal, select

    return select(literal(1))


class TestOverGraphQL:
    async def test_a_failing_field_beside_a_querying_sibling_is_a_clean_error(
            self, gql, settings) -> None:
        """Sibling fields resolve concurrently; one failing cancels the others mid-query."""
        await seed_core(settings)
        tenant = await make_tenant(settings)
        for index in range(3):
            await make_workflow(tenant, key=f"w{index}", config=config(f"w{index}"))
        query = """{ workflows(first: 3, filter: {isCore: false}) { edges { node {
            exportDocument versions(after: "garbage") { totalCount } } } } }"""
        for _ in range(5):
            response = await gql.raw(query, token=tenant.token)
            assert response.status_code == 200
            codes = {e["extensions"]["code"] for e in response.json()["errors"]}
            assert codes == {"INVALID_CURSOR"}, response.json()["errors"]
        after = await gql("{ viewer { id } }", token=tenant.token)
        assert after["viewer"]["id"] == str(tenant.admin_id)


class TestDoomed:
    async def test_a_doomed_transaction_ends_in_rollback_even_when_committed(
            self, db, settings) -> None:
        tenant = await make_tenant(settings)
        async with db.transaction(tenant.id) as tx:
            await tx.execute("UPDATE tenants SET name = 'Doomed' WHERE id = $1", tenant.id)
            tx.doom()
        async with db.transaction(tenant.id) as tx:
            assert await tx.fetchval("SELECT name FROM tenants") != "Doomed"


CREATE_TWO = """mutation($a: CreateWorkflowInput!, $b: CreateWorkflowInput!) {
  first: createWorkflow(input: $a) { workflow { key } errors { code path } }
  second: createWorkflow(input: $b) { workflow { key } errors { code path } } }"""


class TestMutationErrors:
    async def test_beside_another_mutation_a_failing_one_undoes_only_its_own_work(
            self, gql, settings) -> None:
        """Several mutations share the operation's transaction: each runs in a savepoint."""
        tenant = await make_tenant(settings)
        good = {"key": "kept", "name": "Kept", "config": config("kept")}
        data = await gql(CREATE_TWO, {"a": good, "b": good}, token=tenant.token)
        assert data["first"] == {"workflow": {"key": "kept"}, "errors": []}
        assert data["second"]["workflow"] is None
        assert data["second"]["errors"][0]["code"]
        listed = await gql("{ workflows(first: 5, filter: {isCore: false}) "
                           "{ edges { node { key } } } }", token=tenant.token)
        assert [e["node"]["key"] for e in listed["workflows"]["edges"]] == ["kept"]

    async def test_a_sole_failing_mutation_keeps_nothing_and_the_next_one_works(
            self, gql, settings) -> None:
        """Alone in its operation, a mutation's error rolls the whole transaction back."""
        tenant = await make_tenant(settings)
        good = {"key": "once", "name": "Once", "config": config("once")}
        create = """mutation($input: CreateWorkflowInput!) { createWorkflow(input: $input) {
            workflow { key } errors { code path } } }"""
        assert (await gql(create, {"input": good}, token=tenant.token))[
            "createWorkflow"]["errors"] == []
        again = await gql(create, {"input": good}, token=tenant.token)
        assert again["createWorkflow"]["workflow"] is None
        assert again["createWorkflow"]["errors"][0]["code"]
        other = {"key": "twice", "name": "Twice", "config": config("twice")}
        assert (await gql(create, {"input": other}, token=tenant.token))[
            "createWorkflow"]["workflow"] == {"key": "twice"}
        listed = await gql("{ workflows(first: 5, filter: {isCore: false}) "
                           "{ edges { node { key } } } }", token=tenant.token)
        assert sorted(e["node"]["key"] for e in listed["workflows"]["edges"]) == [
            "once", "twice"]
