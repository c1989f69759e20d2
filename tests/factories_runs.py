"""Run test helpers: a tenant with contacts, a manager and a CSM, customers, and operations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from domain.shared.actor import Role
from tests.factories import GraphQLClient, TenantHandle, make_tenant, make_user
from tests.factories import contract_operation as contract
from tests.factories_customers import set_contacts, upsert_customer


@dataclass(frozen=True)
class Team:
    tenant: TenantHandle
    manager_id: uuid.UUID
    manager_email: str
    csm_id: uuid.UUID
    csm_email: str

    @property
    def csm_token(self) -> str:
        return self.tenant.token_for(self.csm_id, Role.EDITOR)

    @property
    def manager_token(self) -> str:
        return self.tenant.token_for(self.manager_id, Role.EDITOR)


async def make_team(gql: GraphQLClient, settings: Any, *, time_zone: str = "UTC") -> Team:
    tenant = await make_tenant(settings, time_zone=time_zone)
    suffix = uuid.uuid4().hex[:6]
    manager_email, csm_email = f"manager-{suffix}@example.test", f"csm-{suffix}@example.test"
    manager = await make_user(tenant, email=manager_email, name="Morgan Manager")
    csm = await make_user(tenant, email=csm_email, name="Casey CSM", manager_id=manager)
    await set_contacts(gql, tenant, vpCustomerSuccess=f"vp-{suffix}@example.test",
                       ceo=f"ceo-{suffix}@example.test")
    return Team(tenant, manager, manager_email, csm, csm_email)


async def make_customer(gql: GraphQLClient, team: Team, *, days: int, arr: float = 100000,
                        plan: bool = True, health: int = 60, today: date | None = None
                        ) -> dict[str, Any]:
    renewal = (today or date.today()) + timedelta(days=days)
    return await upsert_customer(
        gql, team.tenant, renewalDate=renewal.isoformat(), arr=arr, hasAccountPlan=plan,
        healthScore=health, csmId=str(team.csm_id),
        accountTeam={"ae": "ae@example.test", "sa": "sa@example.test"})


async def start(gql: GraphQLClient, team: Team, key: str, customer_id: str, *,
                variables: dict[str, Any] | None = None, token: str | None = None
                ) -> dict[str, Any]:
    data = await gql(contract("StartRun"), {"input": {
        "workflowKey": key, "customerId": customer_id, "variables": variables}},
        token=token or team.csm_token)
    payload: dict[str, Any] = data["startRun"]
    return payload


async def run(gql: GraphQLClient, team: Team, run_id: str) -> dict[str, Any]:
    data = await gql(contract("Run"), {"id": run_id}, token=team.tenant.token)
    found: dict[str, Any] = data["run"]
    return found


async def act(gql: GraphQLClient, team: Team, operation: str, field: str,
              token: str | None = None, **variables: Any) -> dict[str, Any]:
    data = await gql(contract(operation), variables, token=token or team.csm_token)
    payload: dict[str, Any] = data[field]
    return payload
