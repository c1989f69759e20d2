"""Customers: upsert by external id, validation, roles, listing, time zones, isolation."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.context.dates import today_in, zone
from domain.users.models import Role
from tests.factories import make_tenant, make_user
from tests.factories_customers import UPSERT_FULL, contract, upsert_customer

pytestmark = pytest.mark.asyncio


class TestUpsertCustomer:
    async def test_creates_with_the_contract_document(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        csm = await make_user(tenant, email="csm@acme.test")
        renewal = (today_in(zone("UTC")) + timedelta(days=12)).isoformat()
        data = await gql(contract("UpsertCustomer"), {"input": {
            "externalId": "crm-1", "name": "Acme Corp", "arr": 120000.5, "renewalDate": renewal,
            "hasAccountPlan": True, "healthScore": 64, "csmId": str(csm),
            "accountTeam": {"ae": "ae@acme.test"},
        }}, token=tenant.token)
        payload = data["upsertCustomer"]
        assert payload["errors"] == []
        customer = payload["customer"]
        assert uuid.UUID(customer["id"])
        assert {k: v for k, v in customer.items() if k != "id"} == {
            "externalId": "crm-1", "name": "Acme Corp", "arr": 120000.5,
            "renewalDate": renewal, "hasAccountPlan": True, "healthScore": 64,
            "daysUntilRenewal": 12, "csm": {"id": str(csm), "email": "csm@acme.test"},
        }

    async def test_second_upsert_updates_only_the_fields_sent(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        first = await upsert_customer(gql, tenant, externalId="crm-7", name="Old", arr=1000,
                                      healthScore=40, accountTeam={"sa": "sa@x.test"})
        second = await upsert_customer(gql, tenant, externalId="crm-7", name="New", arr=None)
        assert second["id"] == first["id"]
        assert second["name"] == "New"
        assert second["arr"] is None  # an explicit null clears
        assert second["healthScore"] == 40  # left out: kept
        assert second["accountTeam"] == {"sa": "sa@x.test"}

    async def test_every_invalid_field_is_reported_at_once(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        data = await gql(UPSERT_FULL, {"input": {
            "externalId": "bad", "name": " ", "arr": -5, "healthScore": 101,
            "accountTeam": {"ae": "not-an-email", "allEmails": "x@y.test", "bad key": "a@b.test"},
        }}, token=tenant.token)
        payload = data["upsertCustomer"]
        assert payload["customer"] is None
        assert {(e["code"], e["path"]) for e in payload["errors"]} == {
            ("REQUIRED", "input.name"), ("OUT_OF_RANGE", "input.arr"),
            ("OUT_OF_RANGE", "input.healthScore"), ("INVALID_EMAIL", "input.accountTeam.ae"),
            ("INVALID_KEY", "input.accountTeam.allEmails"),
            ("INVALID_KEY", "input.accountTeam.bad key"),
        }
        listed = await gql(contract("Customers"), {}, token=tenant.token)
        assert listed["customers"]["totalCount"] == 0  # nothing written

    @pytest.mark.parametrize("team", [["ae@x.test"], "ae@x.test", {"ae": 5}])
    async def test_account_team_must_be_an_object_of_emails(self, gql, settings, team) -> None:
        tenant = await make_tenant(settings)
        data = await gql(UPSERT_FULL, {"input": {"externalId": "t", "name": "T",
                                                 "accountTeam": team}}, token=tenant.token)
        assert data["upsertCustomer"]["errors"][0]["code"] in ("INVALID_VALUE", "INVALID_EMAIL")

    async def test_viewers_cannot_write_editors_can(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        viewer = await make_user(tenant, role=Role.VIEWER)
        editor = await make_user(tenant, role=Role.EDITOR)
        denied = await gql(UPSERT_FULL, {"input": {"externalId": "v", "name": "V"}},
                           token=tenant.token_for(viewer, Role.VIEWER))
        assert denied["upsertCustomer"]["errors"][0]["code"] == "FORBIDDEN"
        made = await upsert_customer(gql, tenant, token=tenant.token_for(editor, Role.EDITOR))
        assert made["name"].startswith("Customer ")

    async def test_a_csm_of_another_tenant_is_not_found(self, gql, settings) -> None:
        tenant, other = await make_tenant(settings), await make_tenant(settings)
        foreign = await make_user(other)
        for csm_id in (str(foreign), str(uuid.uuid4()), "not-a-uuid"):
            data = await gql(UPSERT_FULL, {"input": {"externalId": "c", "name": "C",
                                                     "csmId": csm_id}}, token=tenant.token)
            assert data["upsertCustomer"]["errors"] == [
                {"code": "NOT_FOUND", "message": data["upsertCustomer"]["errors"][0]["message"],
                 "path": "input.csmId"}]

    async def test_the_same_external_id_in_two_tenants_is_two_customers(self, gql,
                                                                        settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        first = await upsert_customer(gql, a, externalId="shared-1", name="A's")
        second = await upsert_customer(gql, b, externalId="shared-1", name="B's")
        assert first["id"] != second["id"]
        again = await upsert_customer(gql, a, externalId="shared-1", name="A's again")
        assert again["id"] == first["id"]
        listed = await gql(contract("Customers"), {}, token=b.token)
        assert [e["node"]["name"] for e in listed["customers"]["edges"]] == ["B's"]


class TestDaysUntilRenewal:
    async def test_counts_calendar_days_in_the_tenant_time_zone(self, gql, settings) -> None:
        # UTC+14 and UTC-11 are 25 hours apart: their calendar dates always differ.
        east = await make_tenant(settings, time_zone="Pacific/Kiritimati")
        west = await make_tenant(settings, time_zone="Pacific/Pago_Pago")
        renewal = today_in(zone("UTC")) + timedelta(days=5)
        days = {}
        for tenant, name in ((east, "Pacific/Kiritimati"), (west, "Pacific/Pago_Pago")):
            made = await upsert_customer(gql, tenant, renewalDate=renewal.isoformat())
            assert made["daysUntilRenewal"] == (renewal - today_in(zone(name))).days
            days[name] = made["daysUntilRenewal"]
        assert days["Pacific/Pago_Pago"] > days["Pacific/Kiritimati"]

    async def test_is_null_without_a_renewal_date_and_negative_after_it(self, gql,
                                                                        settings) -> None:
        tenant = await make_tenant(settings)
        assert (await upsert_customer(gql, tenant))["daysUntilRenewal"] is None
        past = today_in(zone("UTC")) - timedelta(days=8)
        made = await upsert_customer(gql, tenant, renewalDate=past.isoformat())
        assert made["daysUntilRenewal"] == -8


class TestCustomerList:
    async def test_pages_by_name_with_cursors_and_total(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        for name in ("Delta", "alpha", "Charlie", "Bravo", "Echo"):
            await upsert_customer(gql, tenant, name=name)
        query = contract("Customers")
        whole = (await gql(query, {}, token=tenant.token))["customers"]
        first = (await gql(query, {"first": 2}, token=tenant.token))["customers"]
        assert first["totalCount"] == 5
        assert first["pageInfo"]["hasNextPage"] is True
        names = [e["node"]["name"] for e in first["edges"]]
        after = first["pageInfo"]["endCursor"]
        while after:
            page = (await gql(query, {"first": 2, "after": after}, token=tenant.token))["customers"]
            names += [e["node"]["name"] for e in page["edges"]]
            after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
        # The order is the database collation's; paging must reproduce it without gaps.
        assert names == [e["node"]["name"] for e in whole["edges"]]
        assert sorted(names) == sorted(["Delta", "alpha", "Charlie", "Bravo", "Echo"])

    async def test_search_matches_name_or_external_id_literally(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        await upsert_customer(gql, tenant, name="100% Widgets", externalId="w-1")
        await upsert_customer(gql, tenant, name="Gadgets", externalId="sf-100")
        await upsert_customer(gql, tenant, name="Other", externalId="x")
        query = contract("Customers")

        async def names(search: str) -> list[str]:
            data = await gql(query, {"search": search}, token=tenant.token)
            return sorted(e["node"]["name"] for e in data["customers"]["edges"])

        assert await names("100") == ["100% Widgets", "Gadgets"]
        assert await names("0%") == ["100% Widgets"]
        assert await names("_") == []

    async def test_a_bad_cursor_or_page_size_is_a_coded_error(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        for variables, code in (({"after": "garbage"}, "INVALID_CURSOR"),
                                ({"first": 1000}, "INVALID_PAGE_SIZE")):
            response = await gql.raw(contract("Customers"), variables, token=tenant.token)
            errors = response.json()["errors"]
            assert errors[0]["extensions"]["code"] == code

    async def test_lists_each_customers_csm(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        csm = await make_user(tenant, email="one@csm.test")
        for _ in range(3):
            await upsert_customer(gql, tenant, csmId=str(csm))
        data = await gql(contract("Customers"), {}, token=tenant.token)
        assert {e["node"]["csm"]["email"] for e in data["customers"]["edges"]} == {"one@csm.test"}


class TestCustomerIsolation:
    async def test_another_tenants_customer_is_invisible(self, gql, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        theirs = await upsert_customer(gql, b, name="Secret Co")
        query = "query($id: ID!) { customer(id: $id) { id name } }"
        assert (await gql(query, {"id": theirs["id"]}, token=a.token))["customer"] is None
        assert (await gql(query, {"id": str(uuid.uuid4())}, token=a.token))["customer"] is None
        assert (await gql(query, {"id": theirs["id"]}, token=b.token))["customer"]["name"] == \
            "Secret Co"
        listed = await gql(contract("Customers"), {"search": "Secret"}, token=a.token)
        assert listed["customers"]["totalCount"] == 0

    async def test_upserting_cannot_touch_another_tenants_row(self, gql, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        theirs = await upsert_customer(gql, b, externalId="dup", name="B original")
        await upsert_customer(gql, a, externalId="dup", name="A attempt")
        query = "query($id: ID!) { customer(id: $id) { name } }"
        assert (await gql(query, {"id": theirs["id"]}, token=b.token))["customer"]["name"] == \
            "B original"

