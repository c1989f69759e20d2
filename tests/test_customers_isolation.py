"""Customers' row-level security attacked as the app role, and through GraphQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import pytest_asyncio

from tests.factories import make_tenant, make_user
from tests.factories_customers import UPSERT_FULL, upsert_customer

pytestmark = pytest.mark.asyncio


async def as_tenant(connection: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    """Begin a transaction the way the server does, with the tenant set locally."""
    await connection.execute("BEGIN")
    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))


@pytest_asyncio.fixture
async def two_with_customers(gql, settings):  # type: ignore[no-untyped-def]
    a, b = await make_tenant(settings), await make_tenant(settings)
    a_csm = await make_user(a, email="csm@alpha.test")
    a_customer = await upsert_customer(gql, a, externalId="crm-1", name="Alpha's",
                                       csmId=str(a_csm))
    return a, b, a_csm, uuid.UUID(a_customer["id"])


class TestCustomersUnderRls:
    async def test_reads_updates_and_deletes_see_nothing(self, two_with_customers,
                                                         app_connection_factory) -> None:
        a, b, _, customer = two_with_customers
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        assert await conn.fetchrow("SELECT * FROM customers WHERE id = $1", customer) is None
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE tenant_id = $1",
                                   a.id) == 0
        assert await conn.execute("UPDATE customers SET name = 'pwned' WHERE id = $1",
                                  customer) == "UPDATE 0"
        assert await conn.execute("DELETE FROM customers WHERE id = $1", customer) == "DELETE 0"
        await conn.execute("COMMIT")
        await as_tenant(conn, a.id)
        assert await conn.fetchval("SELECT name FROM customers WHERE id = $1", customer) == \
            "Alpha's"
        await conn.execute("ROLLBACK")

    async def test_inserting_or_moving_into_another_tenant_is_refused(
            self, two_with_customers, app_connection_factory) -> None:
        a, b, _, _ = two_with_customers
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO customers (tenant_id, external_id, name) "
                               "VALUES ($1, 'x', 'X')", a.id)
        await conn.execute("ROLLBACK")
        await as_tenant(conn, b.id)
        own = await conn.fetchval("INSERT INTO customers (tenant_id, external_id, name) "
                                  "VALUES ($1, 'mine', 'Mine') RETURNING id", b.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE customers SET tenant_id = $1 WHERE id = $2", a.id, own)
        await conn.execute("ROLLBACK")

    async def test_a_csm_must_be_a_user_of_the_same_tenant(self, two_with_customers,
                                                          app_connection_factory) -> None:
        _, b, a_csm, _ = two_with_customers
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("INSERT INTO customers (tenant_id, external_id, name, csm_id) "
                               "VALUES ($1, 'c', 'C', $2)", b.id, a_csm)
        await conn.execute("ROLLBACK")

    async def test_an_external_id_taken_elsewhere_reveals_nothing(
            self, two_with_customers, app_connection_factory) -> None:
        _, b, _, _ = two_with_customers
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        # Alpha uses crm-1; Bravo may too (the key is per tenant), so no error can leak it.
        await conn.execute("INSERT INTO customers (tenant_id, external_id, name) "
                           "VALUES ($1, 'crm-1', 'Twin')", b.id)
        await conn.execute("ROLLBACK")

    async def test_deleting_the_csm_keeps_the_customer(self, two_with_customers,
                                                       app_connection_factory) -> None:
        a, _, a_csm, customer = two_with_customers
        conn = await app_connection_factory()
        await as_tenant(conn, a.id)
        await conn.execute("DELETE FROM users WHERE id = $1", a_csm)
        row = await conn.fetchrow("SELECT tenant_id, csm_id FROM customers WHERE id = $1",
                                  customer)
        assert (row["tenant_id"], row["csm_id"]) == (a.id, None)
        await conn.execute("ROLLBACK")


class TestCustomersOverGraphql:
    async def test_one_external_id_upserts_separately_per_tenant(
            self, gql, two_with_customers) -> None:
        a, b, _, _ = two_with_customers
        data = await gql(UPSERT_FULL, {"input": {"externalId": "crm-1", "name": "Bravo's"}},
                         token=b.token)
        assert data["upsertCustomer"]["errors"] == []
        assert data["upsertCustomer"]["customer"]["name"] == "Bravo's"
        listed = await gql("{ customers { totalCount edges { node { name } } } }", token=a.token)
        assert listed["customers"]["edges"] == [{"node": {"name": "Alpha's"}}]
