"""Workflows over GraphQL: create/read/update, core shadowing, read-only core, isolation."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from domain.users.models import Role
from tests.factories import make_tenant, make_user
from tests.factories_workflows import config, make_workflow, op, seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def two(settings):  # type: ignore[no-untyped-def]
    await seed_core(settings)
    return await make_tenant(settings, name="Alpha"), await make_tenant(settings, name="Bravo")


class TestCreateAndRead:
    async def test_create_makes_version_one_and_reads_back_by_key(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="renewal-play", description="For renewals")
        assert made["version"] == "1.0.0"
        assert made["latestVersion"] == {"number": 1}
        assert made["isCore"] is False
        assert made["isTemplate"] is False
        data = await op(gql, "WorkflowByKey", {"key": "renewal-play"}, token=a.token)
        found = data["workflow"]
        assert found["id"] == made["id"]
        assert found["description"] == "For renewals"
        assert found["config"]["id"] == "renewal-play"
        assert found["config"]["steps"] == config()["steps"]
        assert found["createdBy"]["id"] == str(a.admin_id)

    async def test_the_config_id_follows_the_key(self, gql, two) -> None:
        a, _ = two
        await make_workflow(gql, a, key="bound", config_=config("something-else"))
        data = await op(gql, "WorkflowByKey", {"key": "bound"}, token=a.token)
        assert data["workflow"]["config"]["id"] == "bound"

    async def test_viewers_cannot_create(self, gql, two) -> None:
        a, _ = two
        viewer = a.token_for(await make_user(a, role=Role.VIEWER), Role.VIEWER)
        data = await op(gql, "CreateWorkflow", {"input": {
            "key": "nope", "name": "Nope", "config": config("nope")}}, token=viewer)
        assert data["createWorkflow"]["workflow"] is None
        assert data["createWorkflow"]["errors"][0]["code"] == "FORBIDDEN"
        assert (await op(gql, "WorkflowByKey", {"key": "nope"}, token=a.token))["workflow"] is None

    async def test_a_duplicate_key_is_refused(self, gql, two) -> None:
        a, _ = two
        await make_workflow(gql, a, key="twice")
        data = await op(gql, "CreateWorkflow", {"input": {
            "key": "twice", "name": "Again", "config": config("twice")}}, token=a.token)
        assert data["createWorkflow"]["errors"] == [
            {"code": "ALREADY_EXISTS", "message": "this tenant already has a workflow 'twice'",
             "path": "input.key"}]

    async def test_an_invalid_config_writes_nothing_and_reports_every_problem(
            self, gql, two) -> None:
        a, _ = two
        broken = config("broken")
        broken["steps"][2]["id"] = "executive-escalation"
        broken["steps"][0]["routing"]["defaultRoute"] = "nowhere"
        broken["steps"][1]["ui"] = {"artifacts": []}
        data = await op(gql, "CreateWorkflow", {"input": {
            "key": "broken", "name": "Broken", "config": broken}}, token=a.token)
        payload = data["createWorkflow"]
        assert payload["workflow"] is None
        found = {(e["code"], e["path"]) for e in payload["errors"]}
        assert {("DUPLICATE_STEP_ID", "$.steps[2].id"),
                ("UNKNOWN_STEP", "$.steps[0].routing.defaultRoute"),
                ("UI_ARTIFACT", "$.steps[1].ui")} <= found
        assert (await op(gql, "WorkflowByKey", {"key": "broken"}, token=a.token))["workflow"] \
            is None

    async def test_a_bad_key_is_refused(self, gql, two) -> None:
        a, _ = two
        data = await op(gql, "CreateWorkflow", {"input": {
            "key": "Has Spaces", "name": "X", "config": config()}}, token=a.token)
        assert data["createWorkflow"]["errors"][0]["code"] == "INVALID_KEY"


class TestCoreShadowing:
    async def test_both_tenants_read_the_core_workflow(self, gql, two) -> None:
        for tenant in two:
            found = (await op(gql, "WorkflowByKey", {"key": "critical"},
                              token=tenant.token))["workflow"]
            assert found["isCore"] is True
            assert found["createdBy"] is None
            assert len(found["config"]["steps"]) == 4

    async def test_a_tenants_own_workflow_shadows_core_for_that_tenant_only(
            self, gql, two) -> None:
        a, b = two
        own = await make_workflow(gql, a, key="critical", name="Our critical")
        a_sees = (await op(gql, "WorkflowByKey", {"key": "critical"}, token=a.token))["workflow"]
        b_sees = (await op(gql, "WorkflowByKey", {"key": "critical"}, token=b.token))["workflow"]
        assert a_sees["id"] == own["id"]
        assert a_sees["isCore"] is False
        assert b_sees["isCore"] is True
        assert b_sees["name"] == "Critical Renewal"
        a_list = await op(gql, "WorkflowList", {"first": 50, "filter": {"search": "critical"}},
                          token=a.token)
        b_list = await op(gql, "WorkflowList", {"first": 50, "filter": {"search": "critical"}},
                          token=b.token)
        assert [e["node"]["isCore"] for e in a_list["workflows"]["edges"]
                if e["node"]["key"] == "critical"] == [False]
        assert [e["node"]["isCore"] for e in b_list["workflows"]["edges"]
                if e["node"]["key"] == "critical"] == [True]
        # Deleting the tenant's own brings the core one back for that tenant.
        await op(gql, "DeleteWorkflow", {"id": own["id"]}, token=a.token)
        again = (await op(gql, "WorkflowByKey", {"key": "critical"}, token=a.token))["workflow"]
        assert again["isCore"] is True


class TestCoreIsReadOnly:
    async def _core_id(self, gql, tenant) -> str:  # type: ignore[no-untyped-def]
        found = await op(gql, "WorkflowByKey", {"key": "emergency"}, token=tenant.token)
        return str(found["workflow"]["id"])

    async def test_every_change_to_a_core_workflow_is_refused_with_a_clear_code(
            self, gql, two) -> None:
        a, _ = two
        core_id = await self._core_id(gql, a)
        attempts = {
            "updateWorkflow": await op(gql, "UpdateWorkflow", {"input": {
                "id": core_id, "name": "Mine now"}}, token=a.token),
            "deleteWorkflow": await op(gql, "DeleteWorkflow", {"id": core_id}, token=a.token),
            "rollbackWorkflow": await op(gql, "RollbackWorkflow", {"id": core_id,
                                                                   "toVersion": 1},
                                         token=a.token),
            "tagWorkflowVersion": await op(gql, "TagVersion", {"id": core_id, "number": 1,
                                                               "tag": "production"},
                                           token=a.token),
            "upsertChatBranch": await op(gql, "UpsertChatBranch", {"input": {
                "workflowId": core_id, "fromStepId": "final-push", "id": "x", "label": "X",
                "type": "llm"}}, token=a.token),
        }
        for field, data in attempts.items():
            assert [e["code"] for e in data[field]["errors"]] == ["CORE_READ_ONLY"], field
        found = await op(gql, "WorkflowByKey", {"key": "emergency"}, token=a.token)
        assert found["workflow"]["name"] == "Emergency Renewal"

    async def test_the_database_refuses_too(self, gql, two, app_connection_factory) -> None:
        a, _ = two
        core_id = uuid.UUID(await self._core_id(gql, a))
        conn = await app_connection_factory()
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(a.id))
            assert await conn.execute("UPDATE workflows SET name = 'x' WHERE id = $1",
                                      core_id) == "UPDATE 0"
            assert await conn.execute("DELETE FROM workflows WHERE id = $1",
                                      core_id) == "DELETE 0"


class TestTenantIsolation:
    async def test_another_tenants_workflow_looks_missing(self, gql, two) -> None:
        a, b = two
        theirs = await make_workflow(gql, a, key="private-play")
        missing = str(uuid.uuid4())
        assert (await op(gql, "WorkflowByKey", {"key": "private-play"},
                         token=b.token))["workflow"] is None
        assert (await op(gql, "WorkflowHistory", {"id": theirs["id"]},
                         token=b.token))["workflow"] is None
        assert (await op(gql, "CompareVersions", {"id": theirs["id"], "from": 1, "to": 1},
                         token=b.token))["workflowDiff"] is None
        for target in (theirs["id"], missing):
            upd = await op(gql, "UpdateWorkflow", {"input": {"id": target, "name": "pwned"}},
                           token=b.token)
            dele = await op(gql, "DeleteWorkflow", {"id": target}, token=b.token)
            clone = await op(gql, "CloneWorkflow", {"input": {"sourceId": target,
                                                              "key": "stolen"}}, token=b.token)
            assert upd["updateWorkflow"]["errors"] == [
                {"code": "NOT_FOUND", "message": "no such workflow", "path": "input.id"}]
            assert dele["deleteWorkflow"]["errors"] == [
                {"code": "NOT_FOUND", "message": "no such workflow", "path": "id"}]
            assert clone["cloneWorkflow"]["errors"] == [
                {"code": "NOT_FOUND", "message": "no such workflow", "path": "input.sourceId"}]
        still = await op(gql, "WorkflowByKey", {"key": "private-play"}, token=a.token)
        assert still["workflow"]["name"] == "Workflow private-play"

    async def test_the_same_key_in_two_tenants(self, gql, two) -> None:
        a, b = two
        first = await make_workflow(gql, a, key="shared-name")
        second = await make_workflow(gql, b, key="shared-name")
        assert first["id"] != second["id"]


class TestUpdate:
    async def test_name_description_and_tags_alone_make_no_version(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="quiet")
        data = await op(gql, "UpdateWorkflow", {"input": {
            "id": made["id"], "name": "Renamed", "description": "d", "tags": ["x"]}},
            token=a.token)
        payload = data["updateWorkflow"]
        assert payload["errors"] == []
        assert payload["workflow"]["name"] == "Renamed"
        assert payload["workflow"]["latestVersion"]["number"] == 1

    async def test_a_config_change_makes_a_version_with_its_description(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="loud")
        changed = config("loud")
        changed["steps"][2]["name"] = "Better plan"
        data = await op(gql, "UpdateWorkflow", {"input": {
            "id": made["id"], "config": changed, "changeDescription": "Renamed the plan"}},
            token=a.token)
        latest = data["updateWorkflow"]["workflow"]["latestVersion"]
        assert latest == {"number": 2, "changeDescription": "Renamed the plan"}

    async def test_the_same_config_again_makes_no_version(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="same")
        data = await op(gql, "UpdateWorkflow", {"input": {"id": made["id"],
                                                          "config": config("same")}},
                        token=a.token)
        assert data["updateWorkflow"]["workflow"]["latestVersion"]["number"] == 1

    async def test_an_invalid_update_changes_nothing(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="guarded")
        broken = config("guarded")
        broken["steps"][1]["chatBranches"][1]["savedAction"] = "no-such-action"
        data = await op(gql, "UpdateWorkflow", {"input": {
            "id": made["id"], "name": "Should not stick", "config": broken}}, token=a.token)
        assert data["updateWorkflow"]["errors"] == [{
            "code": "UNKNOWN_SAVED_ACTION",
            "message": "no saved action 'no-such-action' exists for this tenant",
            "path": "$.steps[1].chatBranches[1].savedAction"}]
        found = await op(gql, "WorkflowByKey", {"key": "guarded"}, token=a.token)
        assert found["workflow"]["name"] == "Workflow guarded"


class TestDeleteAndRestore:
    async def test_soft_delete_hides_and_restore_brings_back(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="phoenix")
        gone = await op(gql, "DeleteWorkflow", {"id": made["id"]}, token=a.token)
        assert gone["deleteWorkflow"]["workflow"]["deletedAt"] is not None
        assert (await op(gql, "WorkflowByKey", {"key": "phoenix"}, token=a.token))["workflow"] \
            is None
        listed = await op(gql, "WorkflowList", {"filter": {"search": "phoenix"}}, token=a.token)
        assert listed["workflows"]["totalCount"] == 0
        with_deleted = await op(gql, "WorkflowList", {"filter": {
            "search": "phoenix", "includeDeleted": True}}, token=a.token)
        assert with_deleted["workflows"]["totalCount"] == 1
        back = await op(gql, "RestoreWorkflow", {"id": made["id"]}, token=a.token)
        assert back["restoreWorkflow"]["workflow"]["deletedAt"] is None
        assert (await op(gql, "WorkflowByKey", {"key": "phoenix"},
                         token=a.token))["workflow"]["id"] == made["id"]

    async def test_a_deleted_workflow_keeps_its_key(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="retired")
        await op(gql, "DeleteWorkflow", {"id": made["id"]}, token=a.token)
        again = await op(gql, "CreateWorkflow", {"input": {
            "key": "retired", "name": "Again", "config": config("retired")}}, token=a.token)
        assert again["createWorkflow"]["errors"] == [{
            "code": "ALREADY_EXISTS",
            "message": "this tenant already has a workflow 'retired' (deleted: restore it or "
                       "pick another key)",
            "path": "input.key"}]

    async def test_a_deleted_workflow_cannot_be_edited(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="frozen")
        await op(gql, "DeleteWorkflow", {"id": made["id"]}, token=a.token)
        data = await op(gql, "UpdateWorkflow", {"input": {"id": made["id"], "name": "x"}},
                        token=a.token)
        assert data["updateWorkflow"]["errors"][0]["code"] == "WORKFLOW_DELETED"


def _broken(kind: str) -> tuple[dict, str, str]:  # type: ignore[type-arg]
    """A config with one kind of problem, the code expected, and where."""
    made = config("broken-kind")
    if kind == "dangling route":
        made["steps"][0]["routing"]["routes"][0]["next"] = "ghost"
        return made, "UNKNOWN_STEP", "$.steps[0].routing.routes[0].next"
    if kind == "duplicate step id":
        made["steps"][1]["id"] = "status-assessment"
        return made, "DUPLICATE_STEP_ID", "$.steps[1].id"
    if kind == "unreachable step":
        made["steps"].append({"id": "island", "name": "Island", "type": "task"})
        return made, "UNREACHABLE_STEP", "$.steps[3]"
    if kind == "cycle":
        made["steps"][2]["routing"] = {"defaultRoute": "executive-escalation"}
        return made, "CYCLE", "$.steps[1]"
    if kind == "broken template":
        made["steps"][2]["execution"]["llmPrompt"] = "Plan for {{customer.name"
        return made, "TEMPLATE_SYNTAX", "$.steps[2].execution.llmPrompt"
    if kind == "truncated template":
        made["steps"][1]["notifications"][0]["message"] = "{{#if csm.manager}}escalate"
        return made, "TEMPLATE_TRUNCATED", "$.steps[1].notifications[0].message"
    if kind == "ui artifacts":
        made["steps"][1]["ui"] = {"artifacts": [{"type": "chart"}]}
        return made, "UI_ARTIFACT", "$.steps[1].ui"
    if kind == "missing steps":
        del made["steps"]
        return made, "REQUIRED", "$.steps"
    made["steps"][1]["chatBranches"][1]["savedAction"] = "summon-dragons"
    return made, "UNKNOWN_SAVED_ACTION", "$.steps[1].chatBranches[1].savedAction"


KINDS = ["dangling route", "duplicate step id", "unreachable step", "cycle", "broken template",
         "truncated template", "ui artifacts", "missing steps", "unknown saved action"]


class TestInvalidConfigsOverTheApi:
    @pytest.mark.parametrize("kind", KINDS)
    async def test_validate_and_create_report_it_and_write_nothing(self, gql, two,
                                                                    kind: str) -> None:
        a, b = two
        broken, code, path = _broken(kind)
        for tenant in (a, b):
            result = (await op(gql, "ValidateConfig", {"config": broken},
                               token=tenant.token))["validateWorkflowConfig"]
            assert result["valid"] is False
            assert (code, path) in {(e["code"], e["path"]) for e in result["errors"]}
        created = (await op(gql, "CreateWorkflow", {"input": {
            "key": "broken-kind", "name": "Broken", "config": broken}},
            token=a.token))["createWorkflow"]
        assert created["workflow"] is None
        assert (code, path) in {(e["code"], e["path"]) for e in created["errors"]}
        assert (await op(gql, "WorkflowByKey", {"key": "broken-kind"},
                         token=a.token))["workflow"] is None


class TestRowLevelSecurityAsTheAppRole:
    async def _as(self, conn, tenant_id) -> None:  # type: ignore[no-untyped-def]
        await conn.execute("BEGIN")
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))

    async def test_inserting_core_or_foreign_rows_and_moving_rows_is_refused(
            self, gql, two, app_connection_factory) -> None:
        import asyncpg

        a, b = two
        mine = await make_workflow(gql, b, key="movable")
        conn = await app_connection_factory()
        attacks = [
            ("INSERT INTO workflows (tenant_id, key, name, config, is_core) "
             "VALUES (NULL, 'fake-core', 'x', '{}', true)", ()),
            ("INSERT INTO workflows (tenant_id, key, name, config) "
             "VALUES ($1, 'planted', 'x', '{}')", (a.id,)),
            ("UPDATE workflows SET tenant_id = $1 WHERE id = $2", (a.id, uuid.UUID(mine["id"]))),
            ("INSERT INTO saved_actions (tenant_id, action_id, name, type, handler, is_core) "
             "VALUES (NULL, 'fake', 'x', 'skip', 'code:skip', true)", ()),
        ]
        for statement, args in attacks:
            await self._as(conn, b.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, *args)
            await conn.execute("ROLLBACK")

    async def test_without_a_tenant_only_core_rows_are_visible(
            self, gql, two, app_connection_factory) -> None:
        a, _ = two
        await make_workflow(gql, a, key="hidden-without-tenant")
        conn = await app_connection_factory()
        async with conn.transaction():
            tenants = {r["tenant_id"] for r in await conn.fetch("SELECT tenant_id FROM workflows")}
            versions = {r["tenant_id"] for r in
                        await conn.fetch("SELECT tenant_id FROM workflow_versions")}
        assert tenants == {None}
        assert versions == {None}

    async def test_uploaded_handlers_are_refused_by_the_database_too(
            self, two, app_connection_factory) -> None:
        import asyncpg

        a, _ = two
        conn = await app_connection_factory()
        await self._as(conn, a.id)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO saved_actions (tenant_id, action_id, name, type, handler) "
                "VALUES ($1, 'js', 'x', 'script', 'file:handlers/custom.js')", a.id)
        await conn.execute("ROLLBACK")


class TestInputLimits:
    async def test_overlong_texts_are_refused(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="limits")
        long_description = await op(gql, "UpdateWorkflow", {"input": {
            "id": made["id"], "description": "d" * 2001}}, token=a.token)
        assert long_description["updateWorkflow"]["errors"][0]["code"] == "TOO_LONG"
        long_why = await op(gql, "UpdateWorkflow", {"input": {
            "id": made["id"], "config": config("limits"), "changeDescription": "w" * 501}},
            token=a.token)
        assert long_why["updateWorkflow"]["errors"][0]["path"] == "input.changeDescription"
        long_name = await op(gql, "CreateWorkflow", {"input": {
            "key": "long-name", "name": "n" * 201, "config": config("long-name")}},
            token=a.token)
        assert long_name["createWorkflow"]["errors"][0]["code"] == "TOO_LONG"
