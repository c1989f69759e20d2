"""Migrations go down and up cleanly; the operator CLI does what the contract says."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from domain.auth import tokens
from domain.shared import migrate
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.users.models import Role


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(_plain(url))
    try:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await connection.close()


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_plain(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    name = f"stepwise_mig_{uuid.uuid4().hex[:10]}"
    server = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        assert {"tenants", "users", "company_contacts"} <= asyncio.run(_tables(url))
        migrate.downgrade(url, "base")
        assert asyncio.run(_tables(url)) <= {"alembic_version"}
        migrate.upgrade(url)
        assert {"tenants", "users", "company_contacts"} <= asyncio.run(_tables(url))
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "STEPWISE_JWT_SECRET": settings.jwt_secret}
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


class TestCli:
    def test_migrate_is_idempotent(self, settings: Settings) -> None:
        result = _cli(settings, "migrate")
        assert result.returncode == 0, result.stderr
        assert "migrated to head" in result.stdout

    def test_tenant_create_prints_one_json_line_with_an_admin_token(
        self, settings: Settings
    ) -> None:
        result = _cli(settings, "tenant", "create", "--name", "CLI Co",
                      "--admin-email", f"boss-{uuid.uuid4().hex[:6]}@cli.test")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1
        made = json.loads(lines[0])
        assert set(made) == {"tenant_id", "user_id", "token"}
        principal = tokens.verify(made["token"], secret=settings.jwt_secret)
        assert principal.tenant_id == uuid.UUID(made["tenant_id"])
        assert principal.user_id == uuid.UUID(made["user_id"])
        assert principal.role is Role.ADMIN

    def test_tenant_create_rejects_a_bad_email(self, settings: Settings) -> None:
        result = _cli(settings, "tenant", "create", "--name", "Bad", "--admin-email", "nope")
        assert result.returncode == 1
        assert "INVALID_EMAIL" in result.stderr
        assert "Traceback" not in result.stderr

    def test_token_mints_a_verifiable_jwt(self, settings: Settings) -> None:
        made = json.loads(_cli(settings, "tenant", "create", "--name", "Tok", "--admin-email",
                               f"tok-{uuid.uuid4().hex[:6]}@cli.test").stdout)
        tenant, user = uuid.UUID(made["tenant_id"]), uuid.UUID(made["user_id"])
        result = _cli(settings, "token", "--tenant", str(tenant), "--user", str(user),
                      "--role", "editor", "--ttl", "60")
        assert result.returncode == 0, result.stderr
        principal = tokens.verify(result.stdout.strip(), secret=settings.jwt_secret)
        assert (principal.tenant_id, principal.user_id, principal.role) == (tenant, user,
                                                                             Role.EDITOR)

    def test_token_refuses_users_and_tenants_that_do_not_exist(self, settings: Settings
                                                              ) -> None:
        made = json.loads(_cli(settings, "tenant", "create", "--name", "Tok2", "--admin-email",
                               f"tok-{uuid.uuid4().hex[:6]}@cli.test").stdout)
        other = json.loads(_cli(settings, "tenant", "create", "--name", "Tok3", "--admin-email",
                                f"tok-{uuid.uuid4().hex[:6]}@cli.test").stdout)
        for tenant, user in ((made["tenant_id"], str(uuid.uuid4())),
                             (str(uuid.uuid4()), made["user_id"]),
                             (other["tenant_id"], made["user_id"])):  # someone else's user
            result = _cli(settings, "token", "--tenant", tenant, "--user", user)
            assert result.returncode == 1
            assert "no user" in result.stderr
            assert result.stdout == ""
            assert "Traceback" not in result.stderr

    def test_token_rejects_an_unknown_role(self, settings: Settings) -> None:
        result = _cli(settings, "token", "--tenant", str(uuid.uuid4()), "--user",
                      str(uuid.uuid4()), "--role", "root")
        assert result.returncode == 1
        assert "unknown role" in result.stderr


@pytest.mark.asyncio
async def test_a_cli_created_tenant_can_query_viewer(settings: Settings, gql) -> None:  # type: ignore[no-untyped-def]
    result = await asyncio.to_thread(_cli, settings, "tenant", "create", "--name", "E2E Co",
                                     "--admin-email", f"e2e-{uuid.uuid4().hex[:6]}@cli.test")
    made = json.loads(result.stdout)
    data = await gql("{ viewer { id tenant { name } } }", token=made["token"])
    assert data["viewer"] == {"id": made["user_id"], "tenant": {"name": "E2E Co"}}
