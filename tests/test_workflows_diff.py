"""The structural diff on its own: ids match list items, order and type changes show."""

from __future__ import annotations

import copy

from domain.workflows.diff import diff_configs
from tests.factories_workflows import config


def changes(before: dict, after: dict) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(c.kind, c.path) for c in diff_configs(before, after).changes}


class TestStructuralDiff:
    def test_identical_configs_have_no_changes(self) -> None:
        result = diff_configs(config(), config())
        assert (result.steps_added, result.steps_removed, result.steps_changed,
                result.changes) == ([], [], [], [])

    def test_reordering_steps_is_one_order_change_not_every_step(self) -> None:
        before = config()
        after = copy.deepcopy(before)
        after["steps"] = [after["steps"][0], after["steps"][2], after["steps"][1]]
        result = diff_configs(before, after)
        assert result.steps_changed == []
        assert [(c.kind, c.path) for c in result.changes] == [("CHANGED", "$.steps[*].id")]
        assert result.changes[0].after == ["status-assessment", "resolution-plan",
                                           "executive-escalation"]

    def test_lists_without_ids_compare_by_position(self) -> None:
        before = config()
        after = copy.deepcopy(before)
        after["trigger"]["manualTriggers"] = ["csm", "vp"]
        after["steps"][1]["chatBranches"][0]["userPrompts"].append("Go ahead")
        found = changes(before, after)
        assert ("CHANGED", "$.trigger.manualTriggers[1]") in found
        assert ("ADDED", "$.steps[?(@.id=='executive-escalation')].chatBranches"
                         "[?(@.id=='go')].userPrompts[3]") in found

    def test_a_type_change_is_reported_with_both_values(self) -> None:
        before = config()
        after = copy.deepcopy(before)
        after["context"] = "just text"
        (change,) = diff_configs(before, after).changes
        assert change.kind == "CHANGED"
        assert change.path == "$.context"
        assert change.before == before["context"]
        assert change.after == "just text"

    def test_keys_that_are_not_identifiers_are_quoted(self) -> None:
        before = config()
        after = copy.deepcopy(before)
        after["context"]["odd key"] = 1
        assert changes(before, after) == {("ADDED", "$.context['odd key']")}
