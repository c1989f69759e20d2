"""Saved actions: core for everyone, tenant ones private, handlers only registered code."""

from __future__ import annotations

import pytest
import pytest_asyncio

from domain.saved_actions import handlers
from domain.users.models import Role
from tests.factories import make_tenant, make_user
from tests.factories_workflows import config, op, seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def two(settings):  # type: ignore[no-untyped-def]
    await seed_core(settings)
    return await make_tenant(settings), await make_tenant(settings)


async def create(gql, tenant, **fields):  # type: ignore[no-untyped-def]
    data = await op(gql, "CreateSavedAction", {"input": fields}, token=tenant.token)
    return data["createSavedAction"]


class TestCoreActions:
    async def test_every_tenant_sees_the_core_set(self, gql, two) -> None:
        for tenant in two:
            actions = (await op(gql, "SavedActions", token=tenant.token))["savedActions"]
            core = {a["actionId"]: a for a in actions if a["isCore"]}
            assert {"snooze-1-day", "snooze-7-days", "skip-step", "escalate-to-manager"} <= set(
                core)
            assert core["snooze-7-days"]["handler"] == "code:snooze"
            assert core["snooze-7-days"]["config"] == {"days": 7}


class TestTenantActions:
    async def test_a_tenant_action_is_private_and_usable_by_its_workflows(self, gql, two) -> None:
        a, b = two
        made = await create(gql, a, actionId="ping-crm", name="Ping the CRM", type="script",
                            config={"url": "https://crm.example.test/hook"})
        assert made["errors"] == []
        assert made["savedAction"]["handler"] == "code:webhook"
        assert made["savedAction"]["isCore"] is False
        b_ids = {x["actionId"] for x in (await op(gql, "SavedActions",
                                                  token=b.token))["savedActions"]}
        assert "ping-crm" not in b_ids
        uses_it = config("crm-play")
        uses_it["steps"][1]["chatBranches"][1]["savedAction"] = "ping-crm"
        for tenant, valid in ((a, True), (b, False)):
            result = (await op(gql, "ValidateConfig", {"config": uses_it},
                               token=tenant.token))["validateWorkflowConfig"]
            assert result["valid"] is valid
        b_errors = (await op(gql, "ValidateConfig", {"config": uses_it},
                             token=b.token))["validateWorkflowConfig"]["errors"]
        assert b_errors[0]["code"] == "UNKNOWN_SAVED_ACTION"

    async def test_uploaded_code_is_refused(self, gql, two) -> None:
        a, _ = two
        made = await create(gql, a, actionId="evil", name="Evil", type="script",
                            handler="file:handlers/custom.js",
                            config={"url": "https://x.test"})
        assert made["savedAction"] is None
        assert made["errors"][0]["code"] == "UNKNOWN_HANDLER"
        assert made["errors"][0]["path"] == "input.handler"

    async def test_handler_must_match_the_type_and_config_is_checked(self, gql, two) -> None:
        a, _ = two
        mismatch = await create(gql, a, actionId="odd", name="Odd", type="skip",
                                handler="code:snooze")
        assert mismatch["errors"][0]["code"] == "HANDLER_TYPE_MISMATCH"
        bad = await create(gql, a, actionId="long-nap", name="Nap", type="snooze",
                           config={"days": 1000})
        assert bad["errors"] == [{"code": "INVALID_VALUE",
                                  "message": "days must be a whole number from 1 to 365",
                                  "path": "input.config.days"}]
        plain_http = await create(gql, a, actionId="hook", name="Hook", type="script",
                                  config={"url": "http://insecure.test"})
        assert plain_http["errors"][0]["code"] == "INVALID_URL"
        unknown_type = await create(gql, a, actionId="x", name="X", type="launch")
        assert unknown_type["errors"][0]["code"] == "INVALID_ACTION_TYPE"

    async def test_core_ids_and_own_ids_cannot_be_reused(self, gql, two) -> None:
        a, b = two
        core = await create(gql, a, actionId="snooze-7-days", name="Mine", type="snooze",
                            config={"days": 3})
        assert core["errors"][0]["code"] == "ALREADY_EXISTS"
        first = await create(gql, a, actionId="nap-3", name="Nap", type="snooze",
                             config={"days": 3})
        assert first["errors"] == []
        again = await create(gql, a, actionId="nap-3", name="Nap", type="snooze",
                             config={"days": 3})
        assert again["errors"][0]["code"] == "ALREADY_EXISTS"
        elsewhere = await create(gql, b, actionId="nap-3", name="Nap", type="snooze",
                                 config={"days": 3})
        assert elsewhere["errors"] == []

    async def test_viewers_cannot_create(self, gql, two) -> None:
        a, _ = two
        viewer = a.token_for(await make_user(a, role=Role.VIEWER), Role.VIEWER)
        data = await op(gql, "CreateSavedAction", {"input": {
            "actionId": "v", "name": "V", "type": "skip"}}, token=viewer)
        assert data["createSavedAction"]["errors"][0]["code"] == "FORBIDDEN"


class TestHandlersResolveToCode:
    async def test_each_type_plans_an_effect(self) -> None:
        assert handlers.plan("code:snooze", {"days": 7}) == handlers.Snooze(days=7)
        assert handlers.plan("code:skip", {}) == handlers.Skip()
        assert handlers.plan("code:escalate", {"workflowKey": "emergency"}) == \
            handlers.Escalate(workflow_key="emergency")
        assert handlers.plan("code:webhook", {"url": "https://x.test"}) == \
            handlers.CallWebhook(url="https://x.test")


UPDATE_ACTION = """
mutation UpdateSavedAction($input: UpdateSavedActionInput!) {
  updateSavedAction(input: $input) {
    savedAction { actionId name type handler config }
    errors { code message path }
  }
}
"""
DELETE_ACTION = """
mutation DeleteSavedAction($actionId: String!) {
  deleteSavedAction(actionId: $actionId) {
    savedAction { actionId }
    errors { code message path }
  }
}
"""


class TestManagingOwnActions:
    async def test_update_checks_the_config_against_the_handler(self, gql, two) -> None:
        a, b = two
        await create(gql, a, actionId="nap", name="Nap", type="snooze", config={"days": 2})
        renamed = await gql(UPDATE_ACTION, {"input": {"actionId": "nap", "name": "Long nap",
                                                      "config": {"days": 30}}}, token=a.token)
        assert renamed["updateSavedAction"] == {"savedAction": {
            "actionId": "nap", "name": "Long nap", "type": "snooze", "handler": "code:snooze",
            "config": {"days": 30}}, "errors": []}
        bad = await gql(UPDATE_ACTION, {"input": {"actionId": "nap", "config": {"days": 0}}},
                        token=a.token)
        assert bad["updateSavedAction"]["errors"][0]["path"] == "input.config.days"
        other = await gql(UPDATE_ACTION, {"input": {"actionId": "nap", "name": "Mine"}},
                          token=b.token)
        assert other["updateSavedAction"]["errors"][0]["code"] == "NOT_FOUND"
        core = await gql(UPDATE_ACTION, {"input": {"actionId": "skip-step", "name": "x"}},
                         token=a.token)
        assert core["updateSavedAction"]["errors"][0]["code"] == "CORE_READ_ONLY"

    async def test_delete_is_refused_while_a_workflow_calls_the_action(self, gql, two) -> None:
        from tests.factories_workflows import make_workflow

        a, _ = two
        await create(gql, a, actionId="ping", name="Ping", type="script",
                     config={"url": "https://hooks.example.test/ping"})
        uses = config("pinger")
        uses["steps"][1]["chatBranches"][1]["savedAction"] = "ping"
        made = await make_workflow(gql, a, key="pinger", config_=uses)
        await op(gql, "DeleteWorkflow", {"id": made["id"]}, token=a.token)
        refused = await gql(DELETE_ACTION, {"actionId": "ping"}, token=a.token)
        assert refused["deleteSavedAction"]["errors"] == [{
            "code": "IN_USE", "message": "still called by workflows: pinger",
            "path": "actionId"}]
        back = config("pinger")
        await op(gql, "RestoreWorkflow", {"id": made["id"]}, token=a.token)
        await op(gql, "UpdateWorkflow", {"input": {"id": made["id"], "config": back}},
                 token=a.token)
        done = await gql(DELETE_ACTION, {"actionId": "ping"}, token=a.token)
        assert done["deleteSavedAction"] == {"savedAction": {"actionId": "ping"}, "errors": []}
        left = {x["actionId"] for x in (await op(gql, "SavedActions",
                                                 token=a.token))["savedActions"]}
        assert "ping" not in left

    async def test_core_actions_cannot_be_deleted(self, gql, two) -> None:
        a, _ = two
        data = await gql(DELETE_ACTION, {"actionId": "snooze-7-days"}, token=a.token)
        assert data["deleteSavedAction"]["errors"][0]["code"] == "CORE_READ_ONLY"


class TestEscalations:
    async def test_an_escalation_names_a_workflow_the_tenant_can_start(self, gql, two) -> None:
        a, _ = two
        ok = await create(gql, a, actionId="to-emergency", name="Emergency", type="escalation",
                          config={"workflowKey": "emergency"})
        assert ok["errors"] == []
        dangling = await create(gql, a, actionId="to-nowhere", name="Nowhere",
                                type="escalation", config={"workflowKey": "nowhere"})
        assert dangling["errors"] == [{"code": "UNKNOWN_WORKFLOW",
                                       "message": "no workflow 'nowhere' to escalate to",
                                       "path": "input.config.workflowKey"}]
