"""The row-level-security pattern every tenant-owned table copies.

Policies compare with `(SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid)`:
'' after first use on a connection becomes NULL (fails closed, never a cast error), and the
sub-select is evaluated once per statement rather than once per row.
"""

from __future__ import annotations

import os

from alembic import op

from domain.shared.settings import APP_ROLE, OWNER_ROLE

CURRENT_TENANT = "(SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid)"


def _app_password() -> str | None:
    """The app role's password from the environment; None leaves it without one."""
    return os.environ.get("STEPWISE_APP_PASSWORD") or None


def create_roles() -> None:
    """The app role (LOGIN, no bypass) and the owner role; cluster-global, so idempotent.

    Several databases on one server (tests, staging) share the roles; concurrent creation
    races are swallowed.
    """
    op.execute(f"""
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
        BEGIN
          CREATE ROLE {OWNER_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
      END IF;
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        BEGIN
          CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
      END IF;
    END $$;
    """)
    # No default password: without STEPWISE_APP_PASSWORD the role can log in only where the
    # server trusts local connections (the embedded database, a developer's machine). Set
    # outside the DO block as a plain literal, so no password can break out of a $$ body.
    password = _app_password()
    if password is not None:
        literal = password.replace("'", "''")
        op.execute(f"ALTER ROLE {APP_ROLE} PASSWORD '{literal}'")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    # The owner path drops to the app role (SET LOCAL ROLE) to act for a tenant under RLS.
    op.execute(f"""
    DO $$
    BEGIN
      IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT %I TO %I', '{APP_ROLE}', current_user);
      END IF;
    END $$;
    """)


def drop_roles() -> None:
    """Drop the roles unless another database still uses them."""
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute(f"""
    DO $$
    BEGIN
      DROP ROLE IF EXISTS {APP_ROLE};
      DROP ROLE IF EXISTS {OWNER_ROLE};
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
      RAISE NOTICE 'stepwise roles still used by another database; kept';
    END $$;
    """)


def grant_dml(table: str, *, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
    _give_to_owner(table)


def _give_to_owner(table: str) -> None:
    # Tables belong to the owner role when the migrating role may hand them over (it is a
    # member or a superuser); otherwise they stay with the migrating role. Either way the
    # app role owns nothing.
    op.execute(f"""
    DO $$
    BEGIN
      ALTER TABLE {table} OWNER TO {OWNER_ROLE};
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END $$;
    """)


def tenant_rls(table: str, *, column: str = "tenant_id") -> None:
    """ENABLE + FORCE RLS and one policy: a tenant sees and writes only its own rows."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {table}_tenant ON {table} "
        f"USING ({column} = {CURRENT_TENANT}) WITH CHECK ({column} = {CURRENT_TENANT})"
    )


def tenant_or_core_rls(table: str) -> None:
    """Core rows (tenant_id IS NULL) readable by all tenants, writable by none."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {table}_read ON {table} FOR SELECT "
        f"USING (tenant_id IS NULL OR tenant_id = {CURRENT_TENANT})"
    )
    for command in ("INSERT", "UPDATE", "DELETE"):
        clause = "WITH CHECK" if command == "INSERT" else "USING"
        extra = f" WITH CHECK (tenant_id = {CURRENT_TENANT})" if command == "UPDATE" else ""
        op.execute(
            f"CREATE POLICY {table}_{command.lower()} ON {table} FOR {command} "
            f"{clause} (tenant_id = {CURRENT_TENANT}){extra}"
        )


def drop_table(table: str) -> None:
    op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
