"""createUser and updateCompanyContacts: admins only, validation, tenant isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.shared.actor import Actor
from domain.shared.db import owner_transaction
from domain.shared.errors import NotFound
from domain.tenants import service as tenants_service
from domain.users.emails import is_email
from domain.users.models import Role
from tests.factories import make_tenant, make_user
from tests.factories_customers import contract, upsert_customer

pytestmark = pytest.mark.asyncio

CONTACTS = "{ companyContacts { vpCustomerSuccess ceo other } }"


class TestCreateUser:
    async def test_an_admin_creates_a_user_with_a_manager(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        manager = await make_user(tenant, email="boss@acme.test")
        data = await gql(contract("CreateUser"), {"input": {
            "email": "pat@acme.test", "name": "Pat", "role": "EDITOR", "managerId": str(manager),
        }}, token=tenant.token)
        payload = data["createUser"]
        assert payload["errors"] == []
        user = payload["user"]
        assert uuid.UUID(user["id"])
        assert {k: v for k, v in user.items() if k != "id"} == {
            "email": "pat@acme.test", "name": "Pat", "role": "EDITOR",
            "manager": {"id": str(manager), "email": "boss@acme.test"}}

    @pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
    async def test_only_admins_create_users(self, gql, settings, role) -> None:
        tenant = await make_tenant(settings)
        caller = await make_user(tenant, role=role)
        data = await gql(contract("CreateUser"), {"input": {
            "email": "x@acme.test", "name": "X", "role": "ADMIN"}},
            token=tenant.token_for(caller, role))
        assert data["createUser"] == {"user": None, "errors": [
            {"code": "FORBIDDEN", "message": "this needs the admin role", "path": None}]}

    async def test_emails_are_unique_per_tenant_case_insensitively(self, gql, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        variables = {"input": {"email": "Same@Acme.test", "name": "S", "role": "VIEWER"}}
        assert (await gql(contract("CreateUser"), variables, token=a.token))[
            "createUser"]["errors"] == []
        again = {"input": {**variables["input"], "email": "same@acme.TEST"}}
        errors = (await gql(contract("CreateUser"), again, token=a.token))["createUser"]["errors"]
        assert [(e["code"], e["path"]) for e in errors] == [("EMAIL_TAKEN", "input.email")]
        # Another tenant may use the address: keys are per tenant.
        assert (await gql(contract("CreateUser"), variables, token=b.token))[
            "createUser"]["errors"] == []

    async def test_a_manager_from_another_tenant_is_not_found(self, gql, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        foreign = await make_user(b)
        for manager in (str(foreign), str(uuid.uuid4()), "nope"):
            data = await gql(contract("CreateUser"), {"input": {
                "email": f"{uuid.uuid4().hex[:6]}@a.test", "name": "N", "role": "VIEWER",
                "managerId": manager}}, token=a.token)
            assert [(e["code"], e["path"]) for e in data["createUser"]["errors"]] == [
                ("NOT_FOUND", "input.managerId")]

    @pytest.mark.parametrize(("field", "value", "code"), [
        ("email", "not an email", "INVALID_EMAIL"), ("email", "a,b@x.io", "INVALID_EMAIL"),
        ("email", "a@x.io,b@y.io", "INVALID_EMAIL"), ("name", "  ", "REQUIRED")])
    async def test_bad_input_is_reported(self, gql, settings, field, value, code) -> None:
        tenant = await make_tenant(settings)
        variables = {"input": {"email": "ok@a.test", "name": "Ok", "role": "VIEWER", field: value}}
        data = await gql(contract("CreateUser"), variables, token=tenant.token)
        assert [(e["code"], e["path"]) for e in data["createUser"]["errors"]] == [
            (code, f"input.{field}")]


class TestCompanyContacts:
    async def test_an_admin_sets_and_partially_updates_contacts(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        update = contract("UpdateCompanyContacts")
        data = await gql(update, {"input": {"vpCustomerSuccess": "vp@acme.test",
                                            "ceo": "ceo@acme.test",
                                            "other": {"cfo": "cfo@acme.test"}}},
                         token=tenant.token)
        assert data["updateCompanyContacts"]["errors"] == []
        await gql(update, {"input": {"ceo": "new-ceo@acme.test"}}, token=tenant.token)
        assert (await gql(CONTACTS, token=tenant.token))["companyContacts"] == {
            "vpCustomerSuccess": "vp@acme.test", "ceo": "new-ceo@acme.test",
            "other": {"cfo": "cfo@acme.test"}}
        await gql(update, {"input": {"vpCustomerSuccess": None, "other": {}}}, token=tenant.token)
        assert (await gql(CONTACTS, token=tenant.token))["companyContacts"] == {
            "vpCustomerSuccess": None, "ceo": "new-ceo@acme.test", "other": {}}

    async def test_only_admins_update_contacts(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        editor = await make_user(tenant, role=Role.EDITOR)
        data = await gql(contract("UpdateCompanyContacts"), {"input": {"ceo": "c@a.test"}},
                         token=tenant.token_for(editor, Role.EDITOR))
        assert [e["code"] for e in data["updateCompanyContacts"]["errors"]] == ["FORBIDDEN"]
        assert (await gql(CONTACTS, token=tenant.token))["companyContacts"]["ceo"] is None

    async def test_bad_contacts_are_reported_together(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        data = await gql(contract("UpdateCompanyContacts"), {"input": {
            "vpCustomerSuccess": "nope", "other": {"ceo": "x@a.test", "cro": "bad"}}},
            token=tenant.token)
        assert {(e["code"], e["path"]) for e in data["updateCompanyContacts"]["errors"]} == {
            ("INVALID_EMAIL", "input.vpCustomerSuccess"), ("INVALID_KEY", "input.other.ceo"),
            ("INVALID_EMAIL", "input.other.cro")}

    async def test_contacts_are_per_tenant(self, gql, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        await gql(contract("UpdateCompanyContacts"), {"input": {"ceo": "ceo@a.test"}},
                  token=a.token)
        assert (await gql(CONTACTS, token=b.token))["companyContacts"]["ceo"] is None


SETTINGS = """mutation($input: TenantSettingsInput!) { updateTenantSettings(input: $input) {
  tenant { id timeZone } errors { code path } } }"""


class TestTenantSettings:
    async def test_the_time_zone_moves_renewal_day_counts(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        # Pick the zone whose date differs from UTC's right now (either side of the line).
        now = datetime.now(UTC)
        zone_name = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"
        shift = 1 if zone_name == "Pacific/Kiritimati" else -1
        renewal = (now.date() + timedelta(days=5)).isoformat()
        customer = await upsert_customer(gql, tenant, renewalDate=renewal)
        assert customer["daysUntilRenewal"] == 5
        data = await gql(SETTINGS, {"input": {"timeZone": zone_name}}, token=tenant.token)
        assert data["updateTenantSettings"] == {
            "tenant": {"id": str(tenant.id), "timeZone": zone_name}, "errors": []}
        again = await gql("query($id: ID!) { customer(id: $id) { daysUntilRenewal } }",
                          {"id": customer["id"]}, token=tenant.token)
        assert again["customer"]["daysUntilRenewal"] == 5 - shift

    async def test_unknown_zones_and_non_admins_are_refused(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        editor = await make_user(tenant, role=Role.EDITOR)
        bad = await gql(SETTINGS, {"input": {"timeZone": "Mars/Olympus_Mons"}},
                        token=tenant.token)
        assert bad["updateTenantSettings"]["errors"] == [
            {"code": "INVALID_TIME_ZONE", "path": "input.timeZone"}]
        denied = await gql(SETTINGS, {"input": {"timeZone": "Europe/Berlin"}},
                           token=tenant.token_for(editor, Role.EDITOR))
        assert denied["updateTenantSettings"]["errors"][0]["code"] == "FORBIDDEN"
        viewer = await gql("{ viewer { tenant { timeZone } } }", token=tenant.token)
        assert viewer["viewer"]["tenant"]["timeZone"] == "UTC"

    async def test_another_tenants_settings_are_not_found(self, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        async with owner_transaction(settings.database_url, tenant_id=a.id) as session:
            for tenant_id in (b.id, uuid.uuid4()):
                with pytest.raises(NotFound):
                    await tenants_service.update_settings(
                        session, Actor(tenant_id=tenant_id, user_id=None, role=Role.ADMIN),
                        time_zone="Europe/Berlin")


class TestOneEmailCheck:
    @pytest.mark.parametrize(("text", "valid"), [
        ("a@x.io", True), ("first.last+tag@sub.x.io", True),
        ("a,b@x.io", False), ("a@x.io,b@y.io", False), ("a@x.io\n", False),
        ("a@x.io\r\nBcc: b@y.io", False), ("a b@x.io", False), ("a@b@x.io", False),
        ("a@x", False), ("@x.io", False), ("", False)])
    async def test_what_counts_as_an_address(self, text: str, valid: bool) -> None:
        assert is_email(text) is valid

    async def test_users_customers_and_contacts_share_it(self) -> None:
        import inspect

        from domain.customers import service as customers
        from domain.tenants import service as tenants
        from domain.users import service as users

        for module in (users, customers, tenants):
            source = inspect.getsource(module)
            assert "is_email(" in source
            assert "@\\s" not in source  # no email pattern of its own
