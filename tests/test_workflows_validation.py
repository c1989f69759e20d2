"""The config validator and JSON Schema, without the API (every rule of workflow-config.md)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from domain.shared.settings import PROJECT_ROOT
from domain.workflows.config_schema import CONFIG_SCHEMA
from domain.workflows.validation import validate

DOC = (PROJECT_ROOT / "tests" / "contract" / "workflow-config.md").read_text()
EXAMPLE: dict[str, Any] = json.loads(re.search(r"```json\n(.*?)```", DOC, re.S).group(1))  # type: ignore[union-attr]
KNOWN = {"snooze-7-days", "snooze-1-day"}


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def codes(config: Any, known: set[str] | None = KNOWN) -> set[tuple[str, str | None]]:
    return {(p.code, p.path) for p in validate(config, known_actions=known)}


class TestTheDocumentedExample:
    def test_the_schema_accepts_it(self) -> None:
        assert list(Draft202012Validator(CONFIG_SCHEMA).iter_errors(EXAMPLE)) == []

    def test_the_validator_accepts_it(self) -> None:
        assert validate(EXAMPLE, known_actions=KNOWN) == []

    def test_the_schema_itself_is_valid_draft_2020_12(self) -> None:
        Draft202012Validator.check_schema(CONFIG_SCHEMA)


class TestStructure:
    @pytest.mark.parametrize("field", ["id", "name", "description", "version", "trigger",
                                       "context", "steps"])
    def test_each_required_field_is_reported_at_its_path(self, field: str) -> None:
        config = example()
        del config[field]
        assert ("REQUIRED", f"$.{field}") in codes(config)

    def test_version_must_be_semver(self) -> None:
        config = example()
        config["version"] = "1.0"
        assert ("INVALID_FORMAT", "$.version") in codes(config)

    def test_unknown_step_type(self) -> None:
        config = example()
        config["steps"][2]["type"] = "dance"
        assert ("INVALID_VALUE", "$.steps[2].type") in codes(config)

    def test_query_steps_need_a_prompt_and_approvals_an_approver(self) -> None:
        config = example()
        config["steps"][2] = {"id": "resolution-plan", "name": "Q", "type": "query"}
        config["steps"][1]["type"] = "approval"
        found = codes(config)
        assert ("REQUIRED", "$.steps[2].execution") in found
        assert ("REQUIRED", "$.steps[1].approver") in found

    def test_notifications_need_type_title_and_recipients(self) -> None:
        config = example()
        config["steps"][1]["notifications"][0] = {"id": "n", "message": "hi"}
        found = codes(config)
        for field in ("type", "title", "recipients"):
            assert ("REQUIRED", f"$.steps[1].notifications[0].{field}") in found

    def test_not_an_object(self) -> None:
        assert codes([1, 2]) == {("INVALID_TYPE", "$")}


class TestGraph:
    def test_dangling_route(self) -> None:
        config = example()
        config["steps"][0]["routing"]["defaultRoute"] = "nowhere"
        assert ("UNKNOWN_STEP", "$.steps[0].routing.defaultRoute") in codes(config)

    def test_dangling_branch_and_return_targets(self) -> None:
        config = example()
        config["steps"][1]["chatBranches"][0]["next"] = "nowhere"
        config["steps"][1]["chatBranches"][1]["returnToStep"] = "elsewhere"
        found = codes(config)
        assert ("UNKNOWN_STEP", "$.steps[1].chatBranches[0].next") in found
        assert ("UNKNOWN_STEP", "$.steps[1].chatBranches[1].returnToStep") in found

    def test_duplicate_step_id(self) -> None:
        config = example()
        config["steps"][2]["id"] = "executive-escalation"
        assert ("DUPLICATE_STEP_ID", "$.steps[2].id") in codes(config)

    def test_unreachable_step(self) -> None:
        config = example()
        config["steps"].append({"id": "orphan", "name": "Orphan", "type": "task"})
        assert codes(config) == {("UNREACHABLE_STEP", "$.steps[3]")}

    def test_a_cycle_is_an_error(self) -> None:
        config = example()
        config["steps"][2]["routing"] = {"defaultRoute": "status-assessment"}
        found = [p for p in validate(config, known_actions=KNOWN) if p.code == "CYCLE"]
        assert len(found) == 1
        assert "status-assessment" in found[0].message

    def test_a_cycle_through_a_step_that_allows_revisits_is_fine(self) -> None:
        config = example()
        config["steps"][2]["routing"] = {"defaultRoute": "status-assessment"}
        config["steps"][0]["allowRevisit"] = True
        assert validate(config, known_actions=KNOWN) == []

    def test_return_to_step_makes_no_cycle(self) -> None:
        config = example()
        config["steps"][2]["chatBranches"] = [
            {"id": "back", "label": "Back", "type": "llm", "returnToStep": "status-assessment"}]
        assert validate(config, known_actions=KNOWN) == []

    def test_missing_steps_and_empty_steps(self) -> None:
        config = example()
        config["steps"] = []
        assert ("EMPTY", "$.steps") in codes(config)


class TestContent:
    def test_broken_template(self) -> None:
        config = example()
        config["steps"][1]["notifications"][0]["title"] = "War room {{customer.name"
        found = {c for c, p in codes(config) if p == "$.steps[1].notifications[0].title"}
        assert found & {"TEMPLATE_SYNTAX", "TEMPLATE_TRUNCATED"}

    def test_truncated_template_is_caught(self) -> None:
        config = example()
        config["steps"][2]["execution"]["llmPrompt"] = "{{#if customer.name}}Plan for it"
        assert ("TEMPLATE_TRUNCATED", "$.steps[2].execution.llmPrompt") in codes(config)

    def test_unknown_context_root(self) -> None:
        config = example()
        config["steps"][1]["notifications"][0]["message"] = "{{secrets.apiKey}}"
        assert ("TEMPLATE_UNKNOWN_ROOT", "$.steps[1].notifications[0].message") in codes(config)

    @pytest.mark.parametrize("key", ["ui", "artifacts", "cardTitle", "cardDescription", "styles"])
    def test_ui_artifacts_are_refused_anywhere(self, key: str) -> None:
        config = example()
        config["steps"][1][key] = {"x": 1}
        assert ("UI_ARTIFACT", f"$.steps[1].{key}") in codes(config)

    def test_unknown_saved_action(self) -> None:
        config = example()
        config["steps"][1]["chatBranches"][1]["savedAction"] = "launch-rockets"
        assert codes(config) == {("UNKNOWN_SAVED_ACTION",
                                  "$.steps[1].chatBranches[1].savedAction")}

    def test_every_problem_comes_back_at_once(self) -> None:
        config = example()
        config["steps"][2]["id"] = "executive-escalation"
        config["steps"][0]["routing"]["defaultRoute"] = "nowhere"
        config["ui"] = {}
        config["steps"][2]["execution"]["llmPrompt"] = "{{#each steps}}"
        found = {c for c, _ in codes(config)}
        assert {"DUPLICATE_STEP_ID", "UNKNOWN_STEP", "UI_ARTIFACT",
                "TEMPLATE_TRUNCATED"} <= found


class TestLimits:
    def test_an_oversized_config_is_refused_before_anything_else(self) -> None:
        config = example()
        config["steps"][2]["description"] = "x" * 300_000
        assert codes(config) == {("CONFIG_TOO_LARGE", "$")}
