"""Versions: history, structural diff, rollback, tags, and the trigger as the only writer."""

from __future__ import annotations

import copy
import uuid

import asyncpg
import pytest
import pytest_asyncio

from domain.users.models import Role
from tests.factories import make_tenant, make_user
from tests.factories_workflows import config, make_workflow, op, seed_core

pytestmark = pytest.mark.asyncio


async def update_config(gql, tenant, workflow_id, new_config, why):  # type: ignore[no-untyped-def]
    data = await op(gql, "UpdateWorkflow", {"input": {
        "id": workflow_id, "config": new_config, "changeDescription": why}}, token=tenant.token)
    assert data["updateWorkflow"]["errors"] == [], data
    return data["updateWorkflow"]["workflow"]


@pytest_asyncio.fixture
async def history(settings, gql):  # type: ignore[no-untyped-def]
    """A workflow with three versions: v2 renames a step, v3 adds one and drops a branch."""
    await seed_core(settings)
    tenant = await make_tenant(settings)
    made = await make_workflow(gql, tenant, key="evolving")
    v2 = config("evolving")
    v2["steps"][2]["name"] = "Resolution Plan (revised)"
    await update_config(gql, tenant, made["id"], v2, "Rename the plan")
    v3 = copy.deepcopy(v2)
    v3["steps"][1]["chatBranches"] = v3["steps"][1]["chatBranches"][:2]
    v3["steps"].append({"id": "follow-up", "name": "Follow up", "type": "task"})
    v3["steps"][2]["routing"] = {"defaultRoute": "follow-up"}
    await update_config(gql, tenant, made["id"], v3, "Add a follow-up")
    return tenant, made["id"], v2, v3


class TestHistory:
    async def test_versions_newest_first_with_who_and_why(self, gql, history) -> None:
        tenant, wid, _, _ = history
        data = await op(gql, "WorkflowHistory", {"id": wid, "first": 2}, token=tenant.token)
        versions = data["workflow"]["versions"]
        assert versions["totalCount"] == 3
        assert versions["pageInfo"]["hasNextPage"] is True
        nodes = [e["node"] for e in versions["edges"]]
        assert [n["number"] for n in nodes] == [3, 2]
        assert nodes[0]["changeDescription"] == "Add a follow-up"
        assert nodes[0]["changedBy"]["id"] == str(tenant.admin_id)
        rest = await op(gql, "WorkflowHistory", {"id": wid, "first": 2,
                                                 "after": versions["pageInfo"]["endCursor"]},
                        token=tenant.token)
        assert [e["node"]["number"] for e in rest["workflow"]["versions"]["edges"]] == [1]
        assert rest["workflow"]["versions"]["pageInfo"]["hasNextPage"] is False
        assert rest["workflow"]["versionByNumber"]["config"]["steps"][2]["name"] == \
            "Resolution Plan"


class TestDiff:
    async def test_steps_added_removed_changed_and_field_changes(self, gql, history) -> None:
        tenant, wid, _, _ = history
        data = await op(gql, "CompareVersions", {"id": wid, "from": 1, "to": 3},
                        token=tenant.token)
        diff = data["workflowDiff"]
        assert diff["fromVersion"] == 1
        assert diff["toVersion"] == 3
        assert diff["stepsAdded"] == ["follow-up"]
        assert diff["stepsRemoved"] == []
        assert set(diff["stepsChanged"]) == {"executive-escalation", "resolution-plan"}
        changes = {(c["kind"], c["path"]): c for c in diff["changes"]}
        renamed = changes[("CHANGED", "$.steps[?(@.id=='resolution-plan')].name")]
        assert (renamed["before"], renamed["after"]) == ("Resolution Plan",
                                                         "Resolution Plan (revised)")
        removed = changes[("REMOVED", "$.steps[?(@.id=='executive-escalation')]"
                                      ".chatBranches[?(@.id=='ask')]")]
        assert removed["before"]["type"] == "llm"
        assert removed["after"] is None
        assert changes[("ADDED", "$.steps[?(@.id=='follow-up')]")]["after"]["name"] == \
            "Follow up"
        assert ("ADDED", "$.steps[?(@.id=='resolution-plan')].routing") in changes

    async def test_the_reverse_diff_removes_the_step(self, gql, history) -> None:
        tenant, wid, _, _ = history
        diff = (await op(gql, "CompareVersions", {"id": wid, "from": 3, "to": 1},
                         token=tenant.token))["workflowDiff"]
        assert diff["stepsRemoved"] == ["follow-up"]
        assert diff["stepsAdded"] == []

    async def test_a_missing_version_gives_null(self, gql, history) -> None:
        tenant, wid, _, _ = history
        assert (await op(gql, "CompareVersions", {"id": wid, "from": 1, "to": 9},
                         token=tenant.token))["workflowDiff"] is None


class TestRollback:
    async def test_rollback_makes_a_new_version_equal_to_the_target(self, gql, history) -> None:
        tenant, wid, _, _ = history
        data = await op(gql, "RollbackWorkflow", {"id": wid, "toVersion": 1}, token=tenant.token)
        payload = data["rollbackWorkflow"]
        assert payload["errors"] == []
        assert payload["workflow"]["latestVersion"]["number"] == 4
        assert payload["workflow"]["config"] == config("evolving")
        hist = await op(gql, "WorkflowHistory", {"id": wid, "first": 1}, token=tenant.token)
        assert hist["workflow"]["versions"]["edges"][0]["node"]["changeDescription"] == \
            "Rolled back to version 1"
        diff = (await op(gql, "CompareVersions", {"id": wid, "from": 1, "to": 4},
                         token=tenant.token))["workflowDiff"]
        assert diff["changes"] == []

    async def test_rollback_to_a_missing_version(self, gql, history) -> None:
        tenant, wid, _, _ = history
        data = await op(gql, "RollbackWorkflow", {"id": wid, "toVersion": 42}, token=tenant.token)
        assert data["rollbackWorkflow"]["errors"][0] == {
            "code": "NOT_FOUND", "message": "version 42 does not exist", "path": "toVersion"}

    async def test_viewers_cannot_roll_back(self, gql, history) -> None:
        tenant, wid, _, _ = history
        viewer = tenant.token_for(await make_user(tenant, role=Role.VIEWER), Role.VIEWER)
        data = await op(gql, "RollbackWorkflow", {"id": wid, "toVersion": 1}, token=viewer)
        assert data["rollbackWorkflow"]["errors"][0]["code"] == "FORBIDDEN"


class TestTags:
    async def test_a_tag_names_one_version_and_moves(self, gql, history) -> None:
        tenant, wid, _, _ = history
        first = await op(gql, "TagVersion", {"id": wid, "number": 2, "tag": "production"},
                         token=tenant.token)
        assert first["tagWorkflowVersion"] == {"version": {"number": 2, "tags": ["production"]},
                                               "errors": []}
        await op(gql, "TagVersion", {"id": wid, "number": 2, "tag": "v1.2.0"},
                 token=tenant.token)
        moved = await op(gql, "TagVersion", {"id": wid, "number": 3, "tag": "production"},
                         token=tenant.token)
        assert moved["tagWorkflowVersion"]["version"]["tags"] == ["production"]
        hist = await op(gql, "WorkflowHistory", {"id": wid}, token=tenant.token)
        tags = {e["node"]["number"]: e["node"]["tags"]
                for e in hist["workflow"]["versions"]["edges"]}
        assert tags == {3: ["production"], 2: ["v1.2.0"], 1: []}

    async def test_bad_tag_and_missing_version(self, gql, history) -> None:
        tenant, wid, _, _ = history
        bad = await op(gql, "TagVersion", {"id": wid, "number": 1, "tag": "has space"},
                       token=tenant.token)
        assert bad["tagWorkflowVersion"]["errors"][0]["code"] == "INVALID_TAG"
        missing = await op(gql, "TagVersion", {"id": wid, "number": 7, "tag": "x"},
                           token=tenant.token)
        assert missing["tagWorkflowVersion"]["errors"][0]["code"] == "NOT_FOUND"

    async def test_another_tenant_cannot_tag(self, gql, history, settings) -> None:
        _, wid, _, _ = history
        other = await make_tenant(settings)
        data = await op(gql, "TagVersion", {"id": wid, "number": 1, "tag": "pwned"},
                        token=other.token)
        assert data["tagWorkflowVersion"]["errors"][0]["code"] == "NOT_FOUND"


class TestTheTriggerIsTheOnlyWriter:
    async def test_a_raw_config_update_still_makes_a_version(
            self, gql, history, app_connection_factory) -> None:
        tenant, wid, _, _v3 = history
        conn = await app_connection_factory()
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant.id))
            await conn.execute(
                "UPDATE workflows SET config = jsonb_set(config, '{description}', '\"raw\"') "
                "WHERE id = $1", uuid.UUID(wid))
            await conn.execute("UPDATE workflows SET name = 'raw rename' WHERE id = $1",
                               uuid.UUID(wid))
        hist = await op(gql, "WorkflowHistory", {"id": wid, "first": 1}, token=tenant.token)
        node = hist["workflow"]["versions"]["edges"][0]["node"]
        assert hist["workflow"]["versions"]["totalCount"] == 4
        assert node["number"] == 4
        assert node["changedBy"] is None

    async def test_versions_cannot_be_forged_or_rewritten(
            self, history, app_connection_factory) -> None:
        tenant, wid, _, _ = history
        conn = await app_connection_factory()
        await conn.execute("BEGIN")
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant.id))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO workflow_versions (workflow_id, tenant_id, number, config) "
                "VALUES ($1, $2, 99, '{}')", uuid.UUID(wid), tenant.id)
        await conn.execute("ROLLBACK")
        await conn.execute("BEGIN")
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant.id))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE workflow_versions SET config = '{}' WHERE workflow_id = $1",
                               uuid.UUID(wid))
        await conn.execute("ROLLBACK")

    async def test_another_tenants_versions_are_invisible(
            self, history, settings, app_connection_factory) -> None:
        _, wid, _, _ = history
        other = await make_tenant(settings)
        conn = await app_connection_factory()
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(other.id))
            rows = await conn.fetch("SELECT 1 FROM workflow_versions WHERE workflow_id = $1",
                                    uuid.UUID(wid))
            assert rows == []


class TestHistoriesInOneQuery:
    async def test_pages_of_several_workflows_agree_with_single_reads(
            self, gql, history, settings) -> None:
        tenant, wid, _, _ = history
        other = await make_workflow(gql, tenant, key="other-history")
        query = """query($after: String) { workflows(first: 50, filter: {isCore: false}) {
          edges { node { id versions(first: 1, after: $after) {
            totalCount pageInfo { hasNextPage endCursor } edges { node { number } } } } } } }"""
        data = await gql(query, {}, token=tenant.token)
        pages = {e["node"]["id"]: e["node"]["versions"] for e in data["workflows"]["edges"]}
        assert pages[wid]["totalCount"] == 3
        assert pages[wid]["edges"] == [{"node": {"number": 3}}]
        assert pages[wid]["pageInfo"]["hasNextPage"] is True
        assert pages[other["id"]]["edges"] == [{"node": {"number": 1}}]
        cursor = pages[wid]["pageInfo"]["endCursor"]
        later = await gql(query, {"after": cursor}, token=tenant.token)
        pages = {e["node"]["id"]: e["node"]["versions"] for e in later["workflows"]["edges"]}
        assert pages[wid]["edges"] == [{"node": {"number": 2}}]
        # The cursor is a position (below version 3), so the other workflow's page starts
        # there too; its count ignores the cursor.
        assert pages[other["id"]]["edges"] == [{"node": {"number": 1}}]
        assert pages[other["id"]]["totalCount"] == 1

    async def test_past_the_last_version_the_page_is_empty_but_counted(self, gql, history) -> None:
        tenant, wid, _, _ = history
        first = await op(gql, "WorkflowHistory", {"id": wid, "first": 3}, token=tenant.token)
        end = first["workflow"]["versions"]["pageInfo"]["endCursor"]
        past = await op(gql, "WorkflowHistory", {"id": wid, "first": 3, "after": end},
                        token=tenant.token)
        assert past["workflow"]["versions"]["edges"] == []
        assert past["workflow"]["versions"]["totalCount"] == 3


class TestConcurrentEdits:
    async def test_simultaneous_config_changes_each_get_their_own_number(
            self, gql, settings) -> None:
        import asyncio

        await seed_core(settings)
        tenant = await make_tenant(settings)
        made = await make_workflow(gql, tenant, key="contended")

        async def edit(i: int) -> None:
            changed = config("contended")
            changed["steps"][2]["name"] = f"Plan {i}"
            await update_config(gql, tenant, made["id"], changed, f"edit {i}")

        await asyncio.gather(*(edit(i) for i in range(6)))
        hist = await op(gql, "WorkflowHistory", {"id": made["id"], "first": 10},
                        token=tenant.token)
        numbers = [e["node"]["number"] for e in hist["workflow"]["versions"]["edges"]]
        assert numbers == [7, 6, 5, 4, 3, 2, 1]
