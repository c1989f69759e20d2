"""Factories for customers, users and contacts (through GraphQL), and contract documents."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import GraphQLClient, TenantHandle
from tests.factories import contract_operation as contract

UPSERT_FULL = """
mutation($input: CustomerInput!) {
  upsertCustomer(input: $input) {
    customer { id externalId name arr renewalDate hasAccountPlan healthScore daysUntilRenewal
               accountTeam csm { id email } }
    errors { code message path }
  }
}
"""


async def upsert_customer(gql: GraphQLClient, tenant: TenantHandle, *, token: str | None = None,
                          **fields: Any) -> dict[str, Any]:
    """Upsert a customer (defaults: a fresh external id and name); fails on payload errors."""
    suffix = uuid.uuid4().hex[:8]
    data = {"externalId": f"ext-{suffix}", "name": f"Customer {suffix}", **fields}
    result = await gql(UPSERT_FULL, {"input": data}, token=token or tenant.token)
    payload = result["upsertCustomer"]
    assert payload["errors"] == [], payload["errors"]
    customer: dict[str, Any] = payload["customer"]
    return customer


async def set_contacts(gql: GraphQLClient, tenant: TenantHandle, **fields: Any) -> None:
    result = await gql(contract("UpdateCompanyContacts"), {"input": fields}, token=tenant.token)
    assert result["updateCompanyContacts"]["errors"] == []


async def make_workflow(tenant: TenantHandle, *, key: str, config: dict[str, Any]) -> None:
    """A tenant workflow written through the workflows domain (as its admin)."""
    from domain.shared.actor import Actor, Role
    from domain.shared.db import owner_transaction
    from domain.workflows import service as workflows

    me = Actor(user_id=tenant.admin_id, tenant_id=tenant.id, role=Role.ADMIN)
    async with owner_transaction(tenant.settings.database_url, tenant_id=tenant.id) as session:
        await workflows.create_workflow(session, me, key=key, name=config.get("name", key),
                                        description=config.get("description"), config=config)


