"""No N+1: a workflow list costs the same number of SQL statements for 5 rows or 50."""

from __future__ import annotations

from typing import Any

import pytest

from domain.shared.actor import Actor
from domain.shared.db import owner_transaction
from domain.users.models import Role
from domain.workflows import service as workflows
from tests.factories import TenantHandle, counting, make_tenant, make_user
from tests.factories_workflows import config, op, seed_core

pytestmark = pytest.mark.asyncio

# The contract's list plus every field that needs another table.
HEAVY_LIST = """
query HeavyList($first: Int) {
  workflows(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id key name description version tags isCore isTemplate deletedAt updatedAt usageCount
      createdBy { id email manager { id } }
      latestVersion { number changedAt changeDescription tags changedBy { id email } }
      versions(first: 2) { totalCount pageInfo { hasNextPage } edges { node { number } } }
      config
    } }
  }
}
"""


# Every operation first checks the caller still exists and reads their current role.
CALLER = "SELECT e.tenant_id, e.id, e.email, e.name, e.role, e.manager_id, e.created_at, "


async def tenant_with(settings: Any, count: int) -> TenantHandle:
    tenant = await make_tenant(settings)
    authors = [tenant.admin_id, await make_user(tenant), await make_user(tenant)]
    async with owner_transaction(settings.database_url, tenant_id=tenant.id) as session:
        for i in range(count):
            me = Actor(user_id=authors[i % 3], tenant_id=tenant.id, role=Role.EDITOR)
            await workflows.create_workflow(session, me, key=f"w{i:03d}", name=f"W {i}",
                                            description=None, config=config(f"w{i:03d}"))
    return tenant


class TestNoNPlusOne:
    async def test_fifty_workflows_cost_what_five_cost(self, gql, app, settings) -> None:
        await seed_core(settings)
        small, large = await tenant_with(settings, 5), await tenant_with(settings, 50)
        counts = {}
        for name, tenant, first in (("small", small, 8), ("large", large, 53)):
            with counting(app) as statements:
                data = await gql(HEAVY_LIST, {"first": first}, token=tenant.token)
            edges = data["workflows"]["edges"]
            assert len(edges) == first
            own = [e["node"] for e in edges if not e["node"]["isCore"]]
            assert all(n["latestVersion"]["changedBy"] for n in own)
            assert all(n["versions"]["totalCount"] == 1 for n in own)
            assert all(n["versions"]["edges"] == [{"node": {"number": 1}}] for n in own)
            assert all(n["config"]["id"] == n["key"] for n in own)
            counts[name] = len(statements)
        assert counts["small"] == counts["large"], counts
        # the page (with its count), users, managers, latest versions, histories, configs,
        # usage counts; versions' users are deduplicated by the loader.
        assert counts["large"] <= 8, counts

    async def test_the_contract_list_is_one_query_after_the_tenant_setting(
            self, gql, app, settings) -> None:
        await seed_core(settings)
        tenant = await tenant_with(settings, 50)
        with counting(app) as statements:
            data = await op(gql, "WorkflowList", {"first": 50}, token=tenant.token)
        assert len(data["workflows"]["edges"]) == 50
        reads = [s for s in statements if "set_config" not in s and not s.startswith(CALLER)]
        assert len(reads) == 1, statements

    async def test_by_key_brings_its_author_in_the_same_query(self, gql, app, settings) -> None:
        await seed_core(settings)
        tenant = await tenant_with(settings, 3)
        with counting(app) as statements:
            data = await op(gql, "WorkflowByKey", {"key": "w001"}, token=tenant.token)
        assert data["workflow"]["createdBy"]["email"]
        reads = [s for s in statements if "set_config" not in s and not s.startswith(CALLER)]
        assert len(reads) == 1, statements
