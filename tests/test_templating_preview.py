"""previewNotifications: the seeded core workflows for customers at 10, 3 and -8 days."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from domain.context.dates import today_in, zone
from domain.seeding import service as seeding
from domain.seeding.service import SEEDS_DIR
from tests.factories import TenantHandle, counting, make_tenant, make_user
from tests.factories_customers import (
    contract,
    make_workflow,
    set_contacts,
    upsert_customer,
)

pytestmark = pytest.mark.asyncio


async def _account(gql, settings) -> tuple[TenantHandle, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A tenant with core workflows seeded, a CSM under a manager, and company contacts."""
    await seeding.seed_core(settings.database_url)  # idempotent
    tenant = await make_tenant(settings)
    manager = await make_user(tenant, email="boss@acme.test", name="Morgan")
    csm = await make_user(tenant, email="csm@acme.test", name="Casey", manager_id=manager)
    await set_contacts(gql, tenant, vpCustomerSuccess="vp@acme.test", ceo="ceo@acme.test")
    return tenant, {"csm": str(csm)}


async def _customer(gql, tenant, ids, *, days: int, **fields: Any) -> str:  # type: ignore[no-untyped-def]
    renewal = today_in(zone("UTC")) + timedelta(days=days)
    made = await upsert_customer(
        gql, tenant, renewalDate=renewal.isoformat(), csmId=ids["csm"],
        accountTeam={"ae": "ae@acme.test", "sa": "sa@acme.test"}, **fields)
    return str(made["id"])


async def _preview(gql, tenant, key: str, customer_id: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    data = await gql(contract("PreviewNotifications"), {"key": key, "customerId": customer_id},
                     token=tenant.token)
    return {n["notificationId"]: n for n in data["previewNotifications"]}


class TestCoreWorkflowPreviews:
    async def test_critical_at_ten_days(self, gql, settings) -> None:
        tenant, ids = await _account(gql, settings)
        customer = await _customer(gql, tenant, ids, days=10, name="Smith & Co", arr=300000)
        notes = await _preview(gql, tenant, "critical", customer)
        assert list(notes) == ["war-room-activation", "war-room-channel"]
        email, slack = notes["war-room-activation"], notes["war-room-channel"]
        assert email == {
            "stepId": "executive-escalation", "notificationId": "war-room-activation",
            "type": "email", "title": "War room activated: Smith & Co",  # a subject: raw
            "message": "Smith &amp; Co renews in 10 days (300000 ARR) without a commitment. "
                       "Casey has opened a war room; please join today.",
            "recipients": ["boss@acme.test", "vp@acme.test"], "conditionMet": True}
        # Slack text: values get Slack's escaping (& < > are its control characters).
        assert slack["message"] == ("Coordination channel for the Smith &amp; Co renewal (10 days "
                                    "left). Account team: ae@acme.test,sa@acme.test,"
                                    "csm@acme.test.")
        assert slack["recipients"] == ["csm@acme.test", "boss@acme.test", "ae@acme.test",
                                       "sa@acme.test"]

    async def test_emergency_at_three_days_evaluates_conditions(self, gql, settings) -> None:
        tenant, ids = await _account(gql, settings)
        big = await _customer(gql, tenant, ids, days=3, arr=300000, hasAccountPlan=True)
        small = await _customer(gql, tenant, ids, days=3, arr=50000, hasAccountPlan=True)
        conditions = {}
        for label, customer in (("big", big), ("small", small)):
            notes = await _preview(gql, tenant, "emergency", customer)
            assert len(notes) == 5
            assert notes["manager-acknowledgment"]["title"].endswith("renews in 3 days")
            conditions[label] = {k: n["conditionMet"] for k, n in notes.items()}
        assert conditions["big"]["high-value-alert"] is True
        assert conditions["big"]["strategic-account-notice"] is True
        assert conditions["small"]["high-value-alert"] is False
        assert conditions["small"]["strategic-account-notice"] is False
        assert conditions["small"]["manager-acknowledgment"] is True  # no condition

    async def test_overdue_at_minus_eight_days(self, gql, settings) -> None:
        tenant, ids = await _account(gql, settings)
        customer = await _customer(gql, tenant, ids, days=-8, name="Late Ltd", arr=120000)
        notes = await _preview(gql, tenant, "overdue", customer)
        assert len(notes) == 8
        assert notes["overdue-alert"]["message"] == "The renewal of Late Ltd is 8 days overdue."
        assert notes["day-8-vp"]["recipients"] == ["vp@acme.test"]
        assert notes["day-22-ceo"]["recipients"] == ["ceo@acme.test", "vp@acme.test"]
        assert notes["renewal-confirmed-team"]["recipients"] == [
            "ae@acme.test", "sa@acme.test", "csm@acme.test"]
        assert all(n["conditionMet"] for n in notes.values())

    async def test_schedules_and_errors_are_reported_alongside(self, gql, settings) -> None:
        tenant, ids = await _account(gql, settings)
        customer = await _customer(gql, tenant, ids, days=-8)
        query = """query($key: String!, $id: ID!) { previewNotifications(workflowKey: $key,
                   customerId: $id) { notificationId schedule errors { code } } }"""
        data = await gql(query, {"key": "overdue", "id": customer}, token=tenant.token)
        by_id = {n["notificationId"]: n for n in data["previewNotifications"]}
        assert by_id["day-15-war-room"]["schedule"] == {"daysOverdue": 15}
        assert all(n["errors"] == [] for n in by_id.values())


    async def test_a_scheduled_notification_says_when_it_fires(self, gql, settings) -> None:
        await seeding.seed_core(settings.database_url)
        tenant = await make_tenant(settings, time_zone="America/New_York")
        made = await upsert_customer(gql, tenant, renewalDate="2026-03-01")
        query = """query($key: String!, $id: ID!) { previewNotifications(workflowKey: $key,
                   customerId: $id) { notificationId schedule firesAt } }"""
        data = await gql(query, {"key": "overdue", "id": made["id"]}, token=tenant.token)
        by_id = {n["notificationId"]: n for n in data["previewNotifications"]}
        # 15 days after 1 March, at midnight in New York (EDT from 8 March: UTC-4)
        assert by_id["day-15-war-room"]["firesAt"] == "2026-03-16T04:00:00+00:00"
        unscheduled = [n for n in by_id.values() if n["schedule"] is None]
        assert unscheduled
        assert all(n["firesAt"] is None for n in unscheduled)


class TestPreviewResolution:
    async def test_a_tenant_workflow_shadows_the_core_one(self, gql, settings) -> None:
        tenant, ids = await _account(gql, settings)
        other, other_ids = await _account(gql, settings)
        config = json.loads((SEEDS_DIR / "workflows" / "critical.json").read_text())
        own = copy.deepcopy(config)
        own["steps"][1]["notifications"][0]["title"] = "OUR war room: {{customer.name}}"
        await make_workflow(tenant, key="critical", config=own)
        mine = await _customer(gql, tenant, ids, days=10, name="Mine")
        theirs = await _customer(gql, other, other_ids, days=10, name="Theirs")
        assert (await _preview(gql, tenant, "critical", mine))["war-room-activation"][
            "title"] == "OUR war room: Mine"
        assert (await _preview(gql, other, "critical", theirs))["war-room-activation"][
            "title"] == "War room activated: Theirs"

    async def test_hidden_customers_and_unknown_keys_are_not_found(self, gql, settings) -> None:
        tenant, _ = await _account(gql, settings)
        other, other_ids = await _account(gql, settings)
        theirs = await _customer(gql, other, other_ids, days=3)
        errors = []
        for key, customer in (("critical", theirs), ("critical", str(uuid.uuid4())),
                              ("no-such-workflow", theirs)):
            response = await gql.raw(contract("PreviewNotifications"),
                                     {"key": key, "customerId": customer}, token=tenant.token)
            body = response.json()
            assert body["data"] is None
            errors.append((body["errors"][0]["message"], body["errors"][0]["extensions"]))
        assert errors[0] == errors[1] == errors[2] == ("no such customer",
                                          {"code": "NOT_FOUND", "path": "customerId"})
        mine = await _customer(gql, tenant, {"csm": None}, days=3)
        response = await gql.raw(contract("PreviewNotifications"),
                                 {"key": "no-such-workflow", "customerId": mine},
                                 token=tenant.token)
        assert response.json()["errors"][0]["extensions"] == {"code": "NOT_FOUND",
                                                              "path": "workflowKey"}


class TestPreviewHasNoSideEffects:
    async def test_a_preview_only_reads(self, gql, settings, app) -> None:
        tenant, ids = await _account(gql, settings)
        customer = await _customer(gql, tenant, ids, days=-8)
        with counting(app) as statements:
            notes = await _preview(gql, tenant, "overdue", customer)
        assert len(notes) == 8
        verbs = {s.lstrip().split(None, 1)[0].upper() for s in statements}
        assert "SELECT" in verbs
        assert verbs <= {"SELECT", "BEGIN", "COMMIT", "ROLLBACK"}, verbs
