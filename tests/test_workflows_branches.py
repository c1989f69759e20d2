"""Chat branches: read per step, edited through the config (an edit makes a version)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.factories import make_tenant
from tests.factories_workflows import make_workflow, op, seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def tenant(settings):  # type: ignore[no-untyped-def]
    await seed_core(settings)
    return await make_tenant(settings)


class TestStepBranches:
    async def test_branches_of_a_core_step(self, gql, tenant) -> None:
        data = await op(gql, "StepBranches", {"key": "critical",
                                              "stepId": "executive-escalation"},
                        token=tenant.token)
        branches = {b["id"]: b for b in data["chatBranches"]}
        assert branches["activate-war-room"]["type"] == "fixed"
        assert branches["activate-war-room"]["next"] == "emergency-resolution"
        assert branches["activate-war-room"]["userPrompts"][0] == "Activate the war room"
        assert branches["snooze"]["savedAction"] == "snooze-1-day"
        assert branches["ask"]["allowOffScript"] is True

    async def test_an_unknown_step_or_workflow_is_null(self, gql, tenant) -> None:
        for key, step in (("critical", "nope"), ("nope", "nope")):
            data = await op(gql, "StepBranches", {"key": key, "stepId": step},
                            token=tenant.token)
            assert data["chatBranches"] is None


class TestUpsertChatBranch:
    async def test_adding_and_replacing_a_branch_each_make_a_version(self, gql, tenant) -> None:
        made = await make_workflow(gql, tenant, key="chatty")
        branch = {"workflowId": made["id"], "fromStepId": "resolution-plan", "id": "skip",
                  "label": "Skip", "type": "saved_action", "savedAction": "skip-step",
                  "returnToStep": "resolution-plan"}
        added = await op(gql, "UpsertChatBranch", {"input": branch}, token=tenant.token)
        assert added["upsertChatBranch"] == {"workflow": {"id": made["id"],
                                                          "latestVersion": {"number": 2}},
                                             "errors": []}
        replaced = await op(gql, "UpsertChatBranch", {"input": {**branch, "label": "Skip it"}},
                            token=tenant.token)
        assert replaced["upsertChatBranch"]["workflow"]["latestVersion"]["number"] == 3
        data = await op(gql, "StepBranches", {"key": "chatty", "stepId": "resolution-plan"},
                        token=tenant.token)
        assert [(b["id"], b["label"]) for b in data["chatBranches"]] == [("skip", "Skip it")]
        hist = await op(gql, "WorkflowHistory", {"id": made["id"], "first": 1},
                        token=tenant.token)
        assert hist["workflow"]["versions"]["edges"][0]["node"]["changeDescription"] == \
            "Updated chat branch 'skip' on step 'resolution-plan'"

    async def test_an_invalid_branch_is_refused_and_nothing_changes(self, gql, tenant) -> None:
        made = await make_workflow(gql, tenant, key="strict")
        dangling = await op(gql, "UpsertChatBranch", {"input": {
            "workflowId": made["id"], "fromStepId": "resolution-plan", "id": "go",
            "label": "Go", "type": "fixed", "userPrompts": ["Go"], "next": "nowhere"}},
            token=tenant.token)
        assert dangling["upsertChatBranch"]["errors"] == [{
            "code": "UNKNOWN_STEP", "message": "no step has the id 'nowhere'",
            "path": "$.steps[2].chatBranches[0].next"}]
        unknown_action = await op(gql, "UpsertChatBranch", {"input": {
            "workflowId": made["id"], "fromStepId": "resolution-plan", "id": "x",
            "label": "X", "type": "saved_action", "savedAction": "teleport"}},
            token=tenant.token)
        assert unknown_action["upsertChatBranch"]["errors"][0]["code"] == "UNKNOWN_SAVED_ACTION"
        no_step = await op(gql, "UpsertChatBranch", {"input": {
            "workflowId": made["id"], "fromStepId": "ghost", "id": "x", "label": "X",
            "type": "llm"}}, token=tenant.token)
        assert no_step["upsertChatBranch"]["errors"][0] == {
            "code": "NOT_FOUND", "message": "no step 'ghost' in this workflow",
            "path": "input.fromStepId"}
        loop = await op(gql, "UpsertChatBranch", {"input": {
            "workflowId": made["id"], "fromStepId": "resolution-plan", "id": "again",
            "label": "Again", "type": "fixed", "userPrompts": ["Again"],
            "next": "status-assessment"}}, token=tenant.token)
        assert loop["upsertChatBranch"]["errors"][0]["code"] == "CYCLE"
        hist = await op(gql, "WorkflowHistory", {"id": made["id"]}, token=tenant.token)
        assert hist["workflow"]["versions"]["totalCount"] == 1


DELETE_BRANCH = """
mutation DeleteChatBranch($workflowId: ID!, $fromStepId: String!, $branchId: String!) {
  deleteChatBranch(workflowId: $workflowId, fromStepId: $fromStepId, branchId: $branchId) {
    workflow { id latestVersion { number changeDescription } }
    errors { code message path }
  }
}
"""


class TestDeleteChatBranch:
    async def test_removing_a_branch_makes_a_version(self, gql, tenant) -> None:
        made = await make_workflow(gql, tenant, key="pruned")
        data = await gql(DELETE_BRANCH, {"workflowId": made["id"],
                                         "fromStepId": "executive-escalation",
                                         "branchId": "ask"}, token=tenant.token)
        payload = data["deleteChatBranch"]
        assert payload["errors"] == []
        assert payload["workflow"]["latestVersion"] == {
            "number": 2,
            "changeDescription": "Removed chat branch 'ask' from step 'executive-escalation'"}
        left = await op(gql, "StepBranches", {"key": "pruned", "stepId": "executive-escalation"},
                        token=tenant.token)
        assert [b["id"] for b in left["chatBranches"]] == ["go", "snooze"]

    async def test_a_removal_that_strands_a_step_is_refused(self, gql, tenant) -> None:
        made = await make_workflow(gql, tenant, key="load-bearing")
        data = await gql(DELETE_BRANCH, {"workflowId": made["id"],
                                         "fromStepId": "executive-escalation",
                                         "branchId": "nope"}, token=tenant.token)
        assert data["deleteChatBranch"]["errors"] == [{
            "code": "NOT_FOUND", "message": "step 'executive-escalation' has no branch 'nope'",
            "path": "branchId"}]
        changed = await op(gql, "WorkflowByKey", {"key": "load-bearing"}, token=tenant.token)
        config = changed["workflow"]["config"]
        # Now the plan is reached only through the escalation step's "go" branch.
        config["steps"][0]["routing"] = {"defaultRoute": "executive-escalation"}
        await op(gql, "UpdateWorkflow", {"input": {"id": made["id"], "config": config}},
                 token=tenant.token)
        stranded = await gql(DELETE_BRANCH, {"workflowId": made["id"],
                                             "fromStepId": "executive-escalation",
                                             "branchId": "go"}, token=tenant.token)
        assert stranded["deleteChatBranch"]["errors"] == [{
            "code": "UNREACHABLE_STEP",
            "message": "step 'resolution-plan' cannot be reached from the first step",
            "path": "$.steps[2]"}]
