"""Clone (template, core, own), export/import as a JSON document, schema and validation queries."""

from __future__ import annotations

import pytest
import pytest_asyncio
from jsonschema import Draft202012Validator

from tests.factories import make_tenant
from tests.factories_workflows import EXAMPLE, config, make_workflow, op, seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def two(settings):  # type: ignore[no-untyped-def]
    await seed_core(settings)
    return await make_tenant(settings), await make_tenant(settings)


async def core_id(gql, tenant, key: str) -> str:  # type: ignore[no-untyped-def]
    return str((await op(gql, "WorkflowByKey", {"key": key}, token=tenant.token))["workflow"]["id"])


class TestClone:
    async def test_clone_a_core_workflow_into_a_tenant_workflow(self, gql, two) -> None:
        a, b = two
        data = await op(gql, "CloneWorkflow", {"input": {
            "sourceId": await core_id(gql, a, "overdue"), "key": "our-overdue"}}, token=a.token)
        payload = data["cloneWorkflow"]
        assert payload["errors"] == []
        clone = payload["workflow"]
        assert clone["key"] == "our-overdue"
        assert clone["isCore"] is False
        assert clone["name"] == "Overdue Renewal"
        assert clone["isTemplate"] is False
        assert clone["config"]["id"] == "our-overdue"
        assert len(clone["config"]["steps"]) == 3
        assert (await op(gql, "WorkflowByKey", {"key": "our-overdue"}, token=b.token))[
            "workflow"] is None

    async def test_clone_a_template_and_an_own_workflow_with_a_new_name(self, gql, two) -> None:
        a, _ = two
        template = await make_workflow(gql, a, key="tpl", is_template=True)
        own = await make_workflow(gql, a, key="mine")
        for source, key in ((template, "from-tpl"), (own, "from-mine")):
            data = await op(gql, "CloneWorkflow", {"input": {
                "sourceId": source["id"], "key": key, "name": "Copy"}}, token=a.token)
            assert data["cloneWorkflow"]["workflow"]["name"] == "Copy"
        listed = await op(gql, "WorkflowList", {"filter": {"isTemplate": True, "isCore": False}},
                          token=a.token)
        assert [e["node"]["key"] for e in listed["workflows"]["edges"]] == ["tpl"]

    async def test_usage_count_counts_the_tenants_clones(self, gql, two) -> None:
        a, b = two
        source = await core_id(gql, a, "critical")
        for key in ("c1", "c2"):
            await op(gql, "CloneWorkflow", {"input": {"sourceId": source, "key": key}},
                     token=a.token)
        query = "query($id: ID!) { workflow(id: $id) { usageCount } }"
        assert (await gql(query, {"id": source}, token=a.token))["workflow"]["usageCount"] == 2
        assert (await gql(query, {"id": source}, token=b.token))["workflow"]["usageCount"] == 0

    async def test_clone_into_a_taken_key(self, gql, two) -> None:
        a, _ = two
        await make_workflow(gql, a, key="taken")
        data = await op(gql, "CloneWorkflow", {"input": {
            "sourceId": await core_id(gql, a, "critical"), "key": "taken"}}, token=a.token)
        assert data["cloneWorkflow"]["errors"][0]["code"] == "ALREADY_EXISTS"


class TestExportImport:
    async def test_export_then_import_into_another_tenant(self, gql, two) -> None:
        a, b = two
        made = await make_workflow(gql, a, key="portable", tags=["x"], description="Moves")
        exported = (await op(gql, "ExportWorkflow", {"id": made["id"]}, token=a.token))[
            "workflow"]["exportDocument"]
        assert exported["format"] == "stepwise.workflow"
        assert exported["key"] == "portable"
        assert "id" not in exported
        assert "tenantId" not in exported
        data = await op(gql, "ImportWorkflow", {"document": exported}, token=b.token)
        payload = data["importWorkflow"]
        assert payload["errors"] == []
        assert payload["workflow"]["key"] == "portable"
        assert payload["workflow"]["latestVersion"] == {"number": 1}
        again = (await op(gql, "ExportWorkflow", {"id": payload["workflow"]["id"]},
                          token=b.token))["workflow"]["exportDocument"]
        assert again == exported

    async def test_import_under_another_key_and_into_a_taken_one(self, gql, two) -> None:
        a, _ = two
        made = await make_workflow(gql, a, key="orig")
        exported = (await op(gql, "ExportWorkflow", {"id": made["id"]}, token=a.token))[
            "workflow"]["exportDocument"]
        taken = await op(gql, "ImportWorkflow", {"document": exported}, token=a.token)
        assert taken["importWorkflow"]["errors"][0]["code"] == "ALREADY_EXISTS"
        renamed = await op(gql, "ImportWorkflow", {"document": exported, "key": "orig-copy"},
                           token=a.token)
        assert renamed["importWorkflow"]["workflow"]["key"] == "orig-copy"

    async def test_an_invalid_document_writes_nothing(self, gql, two) -> None:
        a, _ = two
        broken = config("imported")
        broken["steps"][2]["execution"]["llmPrompt"] = "{{#if customer.name}}half"
        data = await op(gql, "ImportWorkflow", {"document": {
            "format": "stepwise.workflow", "formatVersion": 1, "key": "imported",
            "name": "Imported", "config": broken}}, token=a.token)
        assert data["importWorkflow"]["errors"] == [{
            "code": "TEMPLATE_TRUNCATED",
            "message": "template is cut short (an unclosed block, comment or '{{'): "
                       "its end would never render",
            "path": "$.steps[2].execution.llmPrompt"}]
        assert (await op(gql, "WorkflowByKey", {"key": "imported"}, token=a.token))[
            "workflow"] is None
        junk = await op(gql, "ImportWorkflow", {"document": {"format": "other"}}, token=a.token)
        codes = {(e["code"], e["path"]) for e in junk["importWorkflow"]["errors"]}
        assert codes == {("UNKNOWN_FORMAT", "document.format"),
                         ("REQUIRED", "document.config")}


class TestSchemaAndValidationQueries:
    async def test_the_served_schema_accepts_the_documented_example(self, gql, two) -> None:
        a, _ = two
        served = (await op(gql, "ConfigSchema", token=a.token))["workflowConfigSchema"]
        Draft202012Validator.check_schema(served)
        assert list(Draft202012Validator(served).iter_errors(EXAMPLE)) == []
        assert "steps" in served["required"]

    async def test_validate_returns_every_problem(self, gql, two) -> None:
        a, _ = two
        ok = await op(gql, "ValidateConfig", {"config": EXAMPLE}, token=a.token)
        assert ok["validateWorkflowConfig"] == {"valid": True, "errors": []}
        broken = config()
        del broken["steps"]
        broken["cardTitle"] = "x"
        data = await op(gql, "ValidateConfig", {"config": broken}, token=a.token)
        result = data["validateWorkflowConfig"]
        assert result["valid"] is False
        assert {(e["code"], e["path"]) for e in result["errors"]} == {
            ("REQUIRED", "$.steps"), ("UI_ARTIFACT", "$.cardTitle")}
