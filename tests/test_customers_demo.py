"""The demo tenant's customers: one per core workflow, refreshed on every seed."""

from __future__ import annotations

from typing import Any

import pytest

from domain.seeding import service as seeding
from domain.shared.db import owner_transaction
from domain.tenants import repository as tenants_repository
from domain.users import repository as users_repository
from tests.factories import make_tenant
from tests.factories_customers import contract, set_contacts

pytestmark = pytest.mark.asyncio

PREVIEW = """query($key: String!, $customerId: ID!) {
  previewNotifications(workflowKey: $key, customerId: $customerId) {
    title message recipients errors { code } } }"""


async def test_demo_customers_renew_in_10_3_and_minus_8_days_and_preview(gql, settings) -> None:
    await seeding.seed_core(settings.database_url)
    first = await seeding.seed_demo(settings)
    again = await seeding.seed_demo(settings)  # idempotent: same tenant, same customers
    assert again["customers"] == first["customers"]
    token = again["token"]
    data = await gql(contract("Customers"), {"search": ""}, token=token)
    days = {e["node"]["name"]: e["node"]["daysUntilRenewal"] for e in data["customers"]["edges"]}
    assert days == {"Northwind Traders": 10, "Globex Corporation": 3, "Initech": -8}
    for key, name in (("critical", "Northwind Traders"), ("emergency", "Globex Corporation"),
                      ("overdue", "Initech")):
        preview = await gql(PREVIEW, {"key": key, "customerId": again["customers"][name]},
                            token=token)
        notes = preview["previewNotifications"]
        assert notes
        assert all(name in (n["title"] or "") or name in (n["message"] or "") for n in notes)
        assert all(n["recipients"] and n["errors"] == [] for n in notes)


class TestTheDemoTenantIsFoundById:
    async def test_a_real_tenant_called_demo_co_is_never_written_into(self, gql,
                                                                    settings) -> None:
        real = await make_tenant(settings, name=seeding.DEMO_TENANT)
        await set_contacts(gql, real, ceo="ceo@real.test")
        first = await seeding.seed_demo(settings)
        again = await seeding.seed_demo(settings)
        assert first["tenant_id"] == again["tenant_id"] == str(seeding.DEMO_TENANT_ID)
        assert first["user_id"] == again["user_id"]
        data = await gql(contract("Customers"), {"search": ""}, token=real.token)
        assert data["customers"]["totalCount"] == 0
        demo = await gql(contract("Customers"), {"search": ""}, token=again["token"])
        assert demo["customers"]["totalCount"] == 3
        async with owner_transaction(settings.database_url, tenant_id=real.id) as session:
            assert await users_repository.by_email(session, seeding.DEMO_ADMIN) is None
            contacts = await tenants_repository.get_contacts(session, real.id)
            assert contacts is not None
            assert contacts.ceo == "ceo@real.test"

    async def test_one_owner_transaction_per_seed(self, settings, monkeypatch) -> None:
        opened: list[object] = []
        real = seeding.owner_transaction

        def counted(*args: Any, **kwargs: Any) -> Any:
            opened.append(kwargs.get("tenant_id"))
            return real(*args, **kwargs)

        monkeypatch.setattr(seeding, "owner_transaction", counted)
        await seeding.seed_demo(settings)
        assert opened == [None]
