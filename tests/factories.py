"""Test factories: plain async functions with keyword defaults, and a GraphQL client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from graphql import OperationDefinitionNode, parse
from sqlalchemy import event

from domain.auth import tokens
from domain.shared.db import owner_transaction
from domain.shared.settings import PROJECT_ROOT, Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users import service as users
from domain.users.models import Role

CONTRACT_DIR = PROJECT_ROOT / "tests" / "contract"  # the repo copy of ../shared/contract


@dataclass(frozen=True)
class TenantHandle:
    """A tenant made for a test, with its admin and a token for them."""

    id: uuid.UUID
    admin_id: uuid.UUID
    token: str
    settings: Settings

    def token_for(self, user_id: uuid.UUID, role: Role = Role.EDITOR, ttl: int = 3600) -> str:
        return tokens.mint(secret=self.settings.jwt_secret, tenant_id=self.id, user_id=user_id,
                           role=role, ttl=ttl)


async def make_tenant(settings: Settings, *, name: str | None = None,
                      time_zone: str = "UTC") -> TenantHandle:
    suffix = uuid.uuid4().hex[:8]
    made = await create_tenant_with_admin(
        settings.database_url, name=name or f"Tenant {suffix}",
        admin_email=f"admin-{suffix}@example.test", time_zone=time_zone,
    )
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN)
    return TenantHandle(made.tenant_id, made.admin.id, token, settings)


async def make_user(tenant: TenantHandle, *, email: str | None = None, name: str = "Pat User",
                    role: Role = Role.EDITOR, manager_id: uuid.UUID | None = None) -> uuid.UUID:
    async with owner_transaction(tenant.settings.database_url, tenant_id=tenant.id) as session:
        user = await users.create(
            session, tenant_id=tenant.id, email=email or f"u-{uuid.uuid4().hex[:8]}@example.test",
            name=name, role=role, manager_id=manager_id,
        )
    return user.id


class GraphQLClient:
    """POSTs operations to /graphql the way the builder does."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(self, query: str, variables: dict[str, Any] | None = None, *,
                  token: str | None = None, operation: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation:
            body["operationName"] = operation
        return await self.http.post("/graphql", json=body, headers=headers)

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, *,
                       token: str, operation: str | None = None) -> dict[str, Any]:
        """The `data` of a successful operation; fails the test on any top-level error."""
        response = await self.raw(query, variables, token=token, operation=operation)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert not payload.get("errors"), payload["errors"]
        data: dict[str, Any] = payload["data"]
        return data


@cache
def contract_operation(name: str) -> str:
    """The exact text of a named operation from the contract documents (the repo copy)."""
    for path in sorted(CONTRACT_DIR.glob("*.graphql")):
        source = path.read_text()
        for definition in parse(source).definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name \
                    and definition.name.value == name:
                return source[definition.loc.start:definition.loc.end]  # type: ignore[union-attr]
    raise KeyError(name)


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def counting(app: Any) -> Iterator[list[str]]:
    """Every SQL statement the app runs inside the block, ORM and driver-level alike, except
    transaction control (BEGIN, COMMIT, savepoints) that every operation sends."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def record_driver(statement: str) -> None:
        if not statement.startswith(_CONTROL) or "set_config" in statement:
            statements.append(statement)

    engine = app.state.db.engine.sync_engine
    listeners = app.state.db.listeners
    event.listen(engine, "before_cursor_execute", record)
    listeners.append(record_driver)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
        listeners.remove(record_driver)
