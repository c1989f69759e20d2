"""Workflow test helpers: contract operations by name, configs, and workflows made over GraphQL."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from domain.seeding import service as seeding
from domain.shared.settings import PROJECT_ROOT, Settings
from tests.factories import GraphQLClient, TenantHandle
from tests.factories import contract_operation as operation

_DOC = (PROJECT_ROOT / "tests" / "contract" / "workflow-config.md").read_text()
EXAMPLE: dict[str, Any] = json.loads(re.search(r"```json\n(.*?)```", _DOC, re.S).group(1))  # type: ignore[union-attr]


def config(key: str = "playbook", **changes: Any) -> dict[str, Any]:
    """The documented example config (valid with core saved actions), bound to `key`."""
    made = copy.deepcopy(EXAMPLE)
    made["id"] = key
    made.update(changes)
    return made


async def seed_core(settings: Settings) -> None:
    await seeding.seed_core(settings.database_url)


async def op(gql: GraphQLClient, name: str, variables: dict[str, Any] | None = None, *,
             token: str) -> dict[str, Any]:
    return await gql(operation(name), variables or {}, token=token)


async def make_workflow(gql: GraphQLClient, tenant: TenantHandle, *, key: str,
                        name: str | None = None, description: str | None = None,
                        tags: list[str] | None = None, is_template: bool = False,
                        config_: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create through CreateWorkflow; returns the payload's workflow (fails on errors)."""
    data = await op(gql, "CreateWorkflow", {"input": {
        "key": key, "name": name or f"Workflow {key}", "description": description,
        "config": config_ or config(key), "tags": tags or [], "isTemplate": is_template,
    }}, token=tenant.token)
    payload = data["createWorkflow"]
    assert payload["errors"] == [], payload["errors"]
    workflow: dict[str, Any] = payload["workflow"]
    return workflow
