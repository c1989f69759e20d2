"""Row-level security attacked as the non-owner app role (a superuser bypasses RLS)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import pytest_asyncio

from domain.shared.settings import APP_ROLE
from domain.users.models import Role
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.asyncio


async def as_tenant(connection: asyncpg.Connection, tenant_id: uuid.UUID | None) -> None:
    """Start a transaction the way the server does, with the tenant set locally."""
    await connection.execute("BEGIN")
    if tenant_id is not None:
        await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))


@pytest_asyncio.fixture
async def two_tenants(settings):  # type: ignore[no-untyped-def]
    a = await make_tenant(settings, name="Alpha")
    b = await make_tenant(settings, name="Bravo")
    a_user = await make_user(a, email="csm@alpha.test", role=Role.EDITOR)
    return a, b, a_user


class TestTenantCannotTouchAnotherTenantsUsers:
    async def test_read_by_id_returns_nothing(self, two_tenants, app_connection_factory) -> None:
        _a, b, a_user = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        assert await conn.fetchrow("SELECT * FROM users WHERE id = $1", a_user) is None
        await conn.execute("ROLLBACK")

    async def test_list_shows_only_own_users(self, two_tenants, app_connection_factory) -> None:
        _a, b, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        tenants_seen = {r["tenant_id"] for r in await conn.fetch("SELECT tenant_id FROM users")}
        assert tenants_seen == {b.id}
        await conn.execute("ROLLBACK")

    async def test_update_and_delete_affect_no_rows(self, two_tenants,
                                                    app_connection_factory) -> None:
        a, b, a_user = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        assert await conn.execute("UPDATE users SET name = 'pwned' WHERE id = $1",
                                  a_user) == "UPDATE 0"
        assert await conn.execute("DELETE FROM users WHERE id = $1", a_user) == "DELETE 0"
        await conn.execute("COMMIT")
        await as_tenant(conn, a.id)
        row = await conn.fetchrow("SELECT name FROM users WHERE id = $1", a_user)
        assert row is not None
        assert row["name"] != "pwned"
        await conn.execute("ROLLBACK")

    async def test_insert_into_another_tenant_is_refused(self, two_tenants,
                                                        app_connection_factory) -> None:
        a, b, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO users (tenant_id, email, name) VALUES ($1, 'x@y.test', 'X')", a.id)
        await conn.execute("ROLLBACK")

    async def test_moving_own_row_to_another_tenant_is_refused(self, two_tenants,
                                                              app_connection_factory) -> None:
        a, b, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE users SET tenant_id = $1 WHERE id = $2", a.id, b.admin_id)
        await conn.execute("ROLLBACK")

    async def test_manager_must_be_of_the_same_tenant(self, two_tenants,
                                                     app_connection_factory) -> None:
        _a, b, a_user = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("UPDATE users SET manager_id = $1 WHERE id = $2", a_user, b.admin_id)
        await conn.execute("ROLLBACK")

    async def test_unique_email_does_not_reveal_other_tenants(self, two_tenants,
                                                             app_connection_factory) -> None:
        _a, b, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        # The same email as a user of tenant A: allowed, since uniqueness is per tenant.
        await conn.execute(
            "INSERT INTO users (tenant_id, email, name) VALUES ($1, 'csm@alpha.test', 'Twin')",
            b.id)
        await conn.execute("ROLLBACK")


class TestContactsAndTenants:
    async def test_company_contacts_are_private(self, two_tenants, app_connection_factory) -> None:
        a, b, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, a.id)
        await conn.execute("INSERT INTO company_contacts (tenant_id, ceo) VALUES ($1, 'ceo@a.test')"
                           " ON CONFLICT (tenant_id) DO UPDATE SET ceo = excluded.ceo", a.id)
        await conn.execute("COMMIT")
        await as_tenant(conn, b.id)
        assert await conn.fetch("SELECT * FROM company_contacts WHERE tenant_id = $1", a.id) == []
        assert await conn.execute("UPDATE company_contacts SET ceo = 'x'") == "UPDATE 0"
        assert await conn.execute("DELETE FROM company_contacts") == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO company_contacts (tenant_id) VALUES ($1)", a.id)
        await conn.execute("ROLLBACK")

    async def test_a_tenant_sees_only_its_own_tenant_row(self, two_tenants,
                                                        app_connection_factory) -> None:
        a, b, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, b.id)
        assert [r["id"] for r in await conn.fetch("SELECT id FROM tenants")] == [b.id]
        assert await conn.execute("UPDATE tenants SET name = 'x' WHERE id = $1", a.id) == "UPDATE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO tenants (name) VALUES ('rogue')")
        await conn.execute("ROLLBACK")


class TestNoTenantMeansNothing:
    async def test_without_a_tenant_nothing_is_visible(self, two_tenants,
                                                      app_connection_factory) -> None:
        conn = await app_connection_factory()
        await as_tenant(conn, None)
        for table in ("users", "tenants", "company_contacts"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        await conn.execute("ROLLBACK")

    async def test_without_a_tenant_writes_fail(self, two_tenants, app_connection_factory) -> None:
        a, _, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, None)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO users (tenant_id, email, name) VALUES ($1, 'n@t.test', 'N')", a.id)
        await conn.execute("ROLLBACK")

    async def test_an_empty_tenant_setting_fails_closed(self, two_tenants,
                                                       app_connection_factory) -> None:
        conn = await app_connection_factory()
        await conn.execute("BEGIN")
        await conn.execute("SELECT set_config('app.tenant_id', '', true)")
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
        await conn.execute("ROLLBACK")

    async def test_a_pooled_connection_carries_no_tenant_after_commit(
        self, two_tenants, app_connection_factory
    ) -> None:
        a, _, _ = two_tenants
        conn = await app_connection_factory()
        await as_tenant(conn, a.id)
        assert await conn.fetchval("SELECT count(*) FROM users") >= 1
        await conn.execute("COMMIT")
        # The same physical connection, next transaction, no tenant set: nothing visible.
        assert await conn.fetchval("SELECT current_setting('app.tenant_id', true)") == ""
        assert await conn.fetchval("SELECT count(*) FROM users") == 0

    async def test_the_server_pool_reuses_connections_without_leaking(self, gql, settings) -> None:
        # Many alternating requests through the server's pool: each sees only its own tenant.
        a = await make_tenant(settings, name="Pool A")
        b = await make_tenant(settings, name="Pool B")
        for _ in range(15):
            for tenant, name in ((a, "Pool A"), (b, "Pool B")):
                data = await gql("{ viewer { tenant { name } } }", token=tenant.token)
                assert data["viewer"]["tenant"]["name"] == name


class TestAppRole:
    async def test_app_role_is_unprivileged(self, app_connection_factory) -> None:
        conn = await app_connection_factory()
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = current_user")
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
        assert dict(role) == {"rolsuper": False, "rolbypassrls": False, "rolcreaterole": False,
                              "rolcreatedb": False}

    async def test_app_role_owns_nothing(self, app_connection_factory) -> None:
        conn = await app_connection_factory()
        owned = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = $1", APP_ROLE)
        assert owned == []
        functions = await conn.fetch(
            "SELECT p.proname FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner "
            "WHERE r.rolname = $1", APP_ROLE)
        assert functions == []

    async def test_app_role_cannot_disable_rls(self, app_connection_factory) -> None:
        conn = await app_connection_factory()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")


class TestCatalog:
    async def test_every_tenant_table_has_forced_rls_and_a_policy(
        self, app_connection_factory
    ) -> None:
        conn = await app_connection_factory()
        rows = await conn.fetch("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'tenant_id' AND NOT a.attisdropped)
                   OR c.relname = 'tenants')
        """)
        assert rows, "no tenant-owned tables found"
        weak = [r["relname"] for r in rows
                if not (r["relrowsecurity"] and r["relforcerowsecurity"] and r["policies"] > 0)]
        assert weak == []

    async def test_tables_without_tenant_id_are_known(self, app_connection_factory) -> None:
        # A new table without tenant_id must be added here on purpose, never by accident.
        conn = await app_connection_factory()
        rows = await conn.fetch("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                              AND a.attname = 'tenant_id' AND NOT a.attisdropped)
        """)
        assert {r["relname"] for r in rows} <= {"tenants", "alembic_version"}

    async def test_views_are_security_invoker(self, app_connection_factory) -> None:
        conn = await app_connection_factory()
        rows = await conn.fetch("""
            SELECT c.relname, c.reloptions FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'v'
        """)
        unsafe = [r["relname"] for r in rows
                  if "security_invoker=true" not in (r["reloptions"] or [])]
        assert unsafe == []
