"""The customer context: each field around a renewal, in the tenant's time zone, isolated."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.context.dates import days_until, hours_until, renewal_figures, zone
from domain.shared import clock as shared_clock
from tests.factories import counting, make_tenant, make_user
from tests.factories_customers import contract, set_contacts, upsert_customer

AS_OF = "query($id: ID!, $at: DateTime) { workflowContext(customerId: $id, asOf: $at) }"


async def context_at(gql, tenant, customer_id: str, at: str) -> dict:  # type: ignore[no-untyped-def]
    data = await gql(AS_OF, {"id": customer_id, "at": at}, token=tenant.token)
    return data["workflowContext"]  # type: ignore[no-any-return]


@pytest.mark.asyncio
class TestWorkflowFiguresAroundARenewal:
    @pytest.mark.parametrize(("at", "days", "hours", "overdue"), [
        ("2026-12-10T12:00:00Z", 10, 228, 0),    # before: 9.5 days to the start of the day
        ("2026-12-19T23:30:00Z", 1, 0, 0),       # the last half hour before the day
        ("2026-12-20T06:00:00Z", 0, -6, 0),      # on the renewal day
        ("2026-12-28T00:00:00Z", -8, -192, 8),   # after: overdue
    ])
    async def test_in_utc(self, gql, settings, at, days, hours, overdue) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant, renewalDate="2026-12-20", arr=250000)
        workflow = (await context_at(gql, tenant, customer["id"], at))["workflow"]
        assert workflow == {"daysUntilRenewal": days, "hoursUntilRenewal": hours,
                            "daysOverdue": overdue, "renewalARR": 250000}

    @pytest.mark.parametrize(("time_zone", "renewal", "at", "days", "hours"), [
        # 21:00 on Feb 28 in Los Angeles; US daylight time starts Mar 8, so the renewal
        # day starts at 07:00Z: 9 days and 2 hours away.
        ("America/Los_Angeles", "2026-03-10", "2026-03-01T05:00:00Z", 10, 218),
        ("UTC", "2026-03-10", "2026-03-01T05:00:00Z", 9, 211),
        # 01:00 on Dec 20 in Tokyo: already the renewal day there, not yet in UTC.
        ("Asia/Tokyo", "2026-12-20", "2026-12-19T16:00:00Z", 0, -1),
        ("UTC", "2026-12-20", "2026-12-19T16:00:00Z", 1, 8),
    ])
    async def test_in_the_tenants_time_zone(self, gql, settings, time_zone, renewal, at, days,
                                            hours) -> None:
        tenant = await make_tenant(settings, time_zone=time_zone)
        customer = await upsert_customer(gql, tenant, renewalDate=renewal)
        workflow = (await context_at(gql, tenant, customer["id"], at))["workflow"]
        assert (workflow["daysUntilRenewal"], workflow["hoursUntilRenewal"]) == (days, hours)
        assert workflow["daysOverdue"] == max(0, -days)

    async def test_without_a_renewal_date_the_figures_are_null(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        customer = await upsert_customer(gql, tenant, arr=1234.5)
        workflow = (await context_at(gql, tenant, customer["id"], "2026-12-01T00:00:00Z"))[
            "workflow"]
        assert workflow == {"daysUntilRenewal": None, "hoursUntilRenewal": None,
                            "daysOverdue": None, "renewalARR": 1234.5}


@pytest.mark.asyncio
class TestContextShape:
    async def test_every_root_as_the_context_api_describes(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        manager = await make_user(tenant, email="boss@acme.test", name="Morgan Boss")
        csm = await make_user(tenant, email="csm@acme.test", name="Casey CSM", manager_id=manager)
        await set_contacts(gql, tenant, vpCustomerSuccess="vp@acme.test", ceo="ceo@acme.test",
                           other={"cfo": "cfo@acme.test"})
        customer = await upsert_customer(
            gql, tenant, externalId="crm-42", name="Acme Corp", arr=100000,
            renewalDate="2026-12-31", hasAccountPlan=True, healthScore=35, csmId=str(csm),
            accountTeam={"ae": "ae@acme.test", "sa": "SA@acme.test", "se": "ae@ACME.test"})
        data = await gql(contract("CustomerContext"), {"customerId": customer["id"]},
                         token=tenant.token)
        context = data["workflowContext"]
        assert set(context) == {"customer", "csm", "workflow", "company", "accountTeam"}
        assert context["customer"] == {
            "id": customer["id"], "externalId": "crm-42", "name": "Acme Corp", "arr": 100000,
            "renewalDate": "2026-12-31", "hasAccountPlan": True, "healthScore": 35}
        assert context["csm"] == {"id": str(csm), "email": "csm@acme.test", "name": "Casey CSM",
                                  "manager": "boss@acme.test", "managerName": "Morgan Boss"}
        assert context["company"] == {"vpCustomerSuccess": "vp@acme.test",
                                      "ceo": "ceo@acme.test", "cfo": "cfo@acme.test"}
        assert context["accountTeam"] == {
            "ae": "ae@acme.test", "sa": "SA@acme.test", "se": "ae@ACME.test",
            "allEmails": "ae@acme.test,SA@acme.test,csm@acme.test"}
        assert set(context["workflow"]) == {"daysUntilRenewal", "hoursUntilRenewal",
                                            "daysOverdue", "renewalARR"}

    async def test_missing_csm_manager_and_contacts_are_null(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        lone = await make_user(tenant, email="lone@acme.test")
        without = await upsert_customer(gql, tenant)
        managerless = await upsert_customer(gql, tenant, csmId=str(lone))
        first = await context_at(gql, tenant, without["id"], "2026-01-01T00:00:00Z")
        assert first["csm"] == {"id": None, "email": None, "name": None, "manager": None,
                                "managerName": None}
        assert first["company"] == {"vpCustomerSuccess": None, "ceo": None}
        assert first["accountTeam"] == {"allEmails": ""}
        second = await context_at(gql, tenant, managerless["id"], "2026-01-01T00:00:00Z")
        assert second["csm"]["manager"] is None
        assert second["accountTeam"] == {"allEmails": "lone@acme.test"}


@pytest.mark.asyncio
class TestContextIsolation:
    async def test_another_tenants_customer_looks_missing(self, gql, settings) -> None:
        a, b = await make_tenant(settings), await make_tenant(settings)
        theirs = await upsert_customer(gql, b, name="Hidden")
        query = contract("CustomerContext")
        for customer_id in (theirs["id"], str(uuid.uuid4()), "not-a-uuid"):
            response = await gql.raw(query, {"customerId": customer_id}, token=a.token)
            assert response.json() == {"data": {"workflowContext": None}}
        own = await gql(query, {"customerId": theirs["id"]}, token=b.token)
        assert own["workflowContext"]["customer"]["name"] == "Hidden"


class TestDateArithmetic:
    def test_hours_are_counted_across_a_dst_change(self) -> None:
        berlin = ZoneInfo("Europe/Berlin")
        # Clocks go forward on Mar 29 2026: the renewal day starts at 22:00Z on Mar 29.
        now = datetime(2026, 3, 28, 12, 0, tzinfo=berlin)
        assert hours_until(date(2026, 3, 30), berlin, now) == 35
        assert days_until(date(2026, 3, 30), berlin, now) == 2

    def test_naive_now_is_utc_and_unknown_zones_fall_back_to_utc(self) -> None:
        naive = datetime(2026, 5, 1, 23, 0)
        assert renewal_figures(date(2026, 5, 2), zone("Not/AZone"), naive) == {
            "daysUntilRenewal": 1, "hoursUntilRenewal": 1, "daysOverdue": 0}
        assert zone(None) is UTC

    def test_one_clock_reading_per_set_of_figures(self, monkeypatch) -> None:
        # The clock ticks past midnight between two readings: both figures must come from
        # the same instant (one day and zero hours left, not one day and -1 hour).
        readings = iter([datetime(2026, 5, 1, 23, 59, 59, 999999, tzinfo=UTC),
                         datetime(2026, 5, 2, 0, 0, 0, 1, tzinfo=UTC)])

        class Ticking(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
                return next(readings)

        monkeypatch.setattr(shared_clock, "datetime", Ticking)
        assert renewal_figures(date(2026, 5, 2), UTC) == {
            "daysUntilRenewal": 1, "hoursUntilRenewal": 0, "daysOverdue": 0}


@pytest.mark.asyncio
class TestRoundTrips:
    async def test_a_context_is_one_query_after_the_operations_own(self, gql, settings,
                                                                   app) -> None:
        tenant = await make_tenant(settings, time_zone="Europe/Berlin")
        manager = await make_user(tenant, email="boss@acme.test")
        csm = await make_user(tenant, email="csm@acme.test", manager_id=manager)
        await set_contacts(gql, tenant, ceo="ceo@acme.test")
        customer = await upsert_customer(gql, tenant, renewalDate="2026-12-20", csmId=str(csm))
        baseline = await _reads(app, gql, "{ viewer { id } }", {}, tenant)
        context = await _reads(app, gql, AS_OF, {"id": customer["id"],
                                                  "at": "2026-12-10T12:00:00Z"}, tenant)
        render = await _reads(app, gql, contract("RenderTemplate"), {
            "template": "{{csm.manager}} {{company.ceo}}", "customerId": customer["id"]},
            tenant)
        # viewer costs only the operation's own caller check; the context (customer, tenant,
        # contacts, CSM, manager) and the render each add one joined statement (were five).
        assert len(context) == len(baseline) + 1, (baseline, context)
        assert len(render) == len(baseline) + 1, (baseline, render)
        assert "company_contacts" in context[-1]


async def _reads(app, gql, query: str, variables: dict, tenant) -> list[str]:  # type: ignore[no-untyped-def]
    with counting(app) as statements:
        await gql(query, variables, token=tenant.token)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]
