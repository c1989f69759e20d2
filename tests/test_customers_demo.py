"""The demo tenant's customers: one per core workflow, refreshed on every seed."""

from __future__ import annotations

import pytest

from domain.seeding import service as seeding
from tests.factories_customers import contract

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
