"""No N+1: the customer list costs the same statements for 3 customers or 30."""

from __future__ import annotations

import pytest

from tests.factories import TenantHandle, counting, make_tenant, make_user
from tests.factories_customers import upsert_customer

pytestmark = pytest.mark.asyncio

HEAVY = """
query {
  customers(first: 50) {
    totalCount
    edges { node { id name daysUntilRenewal csm { id email manager { email } } } }
  }
}
"""


async def tenant_with(gql, settings, count: int) -> TenantHandle:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(settings)
    manager = await make_user(tenant)
    csms = [await make_user(tenant, manager_id=manager) for _ in range(3)]
    for index in range(count):
        await upsert_customer(gql, tenant, renewalDate="2026-12-31", csmId=str(csms[index % 3]))
    return tenant


async def test_the_list_costs_the_same_for_3_or_30_customers(gql, settings, app) -> None:
    counts = {}
    for label, size in (("small", 3), ("large", 30)):
        tenant = await tenant_with(gql, settings, size)
        with counting(app) as statements:
            data = await gql(HEAVY, token=tenant.token)
        assert data["customers"]["totalCount"] == size
        counts[label] = len(statements)
    assert counts["small"] == counts["large"], counts
    # tenant setting, caller's role, page, count, tenant (time zone), CSMs, their managers
    assert counts["large"] <= 7, counts
