"""Render bombs and how values print, over GraphQL: renderTemplate, previewNotifications and
the run engine's notifications and prompts (a real worker process).

A template short enough for every cap on its text can still multiply its work: six nested
`{{#each @root}}` iterate the context's roots to the sixth power. Renders are metered inside
pybars (domain/templating/limits.py) and refused with a code, never a partial output."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import pytest_asyncio

from domain.templating import engine, limits
from tests.factories_runs import make_customer, make_team, run, start
from tests.factories_workflows import config, make_workflow, op, seed_core
from tests.workerlib import run_in_status

pytestmark = pytest.mark.asyncio

BOMB = "{{#each @root}}" * 6 + "x" + "{{/each}}" * 6
# Needs no context at all: validation's trial render (an empty context) iterates it 26^5 times.
LITERAL_BOMB = '{{#each "abcdefghijklmnopqrstuvwxyz"}}' * 5 + "x" + "{{/each}}" * 5
# Few steps, much text: 8^3 copies of the whole context as JSON.
WIDE = "{{#each @root}}" * 3 + "{{@root}}" + "{{/each}}" * 3

RENDER = """
query($template: String!, $customerId: ID!, $html: Boolean) {
  renderTemplate(template: $template, customerId: $customerId, html: $html) {
    output errors { code message path }
  }
}
"""
PREVIEW = """
query($key: String!, $customerId: ID!) {
  previewNotifications(workflowKey: $key, customerId: $customerId) {
    notificationId message errors { code message path }
  }
}
"""


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _render(gql, team, customer_id: str, template: str,  # type: ignore[no-untyped-def]
                  html: bool = False) -> dict[str, Any]:
    data = await gql(RENDER, {"template": template, "customerId": customer_id, "html": html},
                     token=team.tenant.token)
    found: dict[str, Any] = data["renderTemplate"]
    return found


def _with_notifications(key: str, *notifications: dict[str, Any],
                        prompt: str = "Plan for {{customer.name}}") -> dict[str, Any]:
    """A workflow whose entry is a notification step, then an llm step with `prompt`."""
    made = config(key)
    made["steps"] = [
        {"id": "alert", "name": "Alert", "type": "notification",
         "notifications": list(notifications), "routing": {"defaultRoute": "plan"}},
        {"id": "plan", "name": "Plan", "type": "llm", "execution": {"llmPrompt": prompt}},
    ]
    return made


def _note(identifier: str, message: str) -> dict[str, Any]:
    return {"id": identifier, "type": "in_app", "title": "Heads up", "message": message,
            "recipients": ["{{csm.email}}"]}


class TestRenderTemplateBounds:
    async def test_the_each_bomb_is_refused_with_a_code_and_no_output(self, gql,
                                                                      settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        result = await _render(gql, team, customer["id"], BOMB)
        assert result["output"] is None
        [error] = result["errors"]
        assert (error["code"], error["path"]) == ("RENDER_LIMIT", "template")
        assert "too much work" in error["message"]

    async def test_output_over_the_cap_is_refused_not_cut(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        result = await _render(gql, team, customer["id"], WIDE)
        assert result["output"] is None
        assert [(e["code"], e["path"]) for e in result["errors"]] == [
            ("RENDER_TOO_LARGE", "template")]
        assert str(limits.MAX_OUTPUT) in result["errors"][0]["message"]

    async def test_a_legitimate_loop_still_renders(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        result = await _render(gql, team, customer["id"],
                               "{{#each @root}}{{@key}};{{/each}}")
        assert result["errors"] == []
        assert result["output"].split(";")[:3] == ["customer", "csm", "workflow"]

    async def test_bombs_in_parallel_are_all_refused_and_other_queries_answer(
            self, gql, settings) -> None:
        attacker, other = await make_team(gql, settings), await make_team(gql, settings)
        customer = await make_customer(gql, attacker, days=10)
        results = await asyncio.gather(
            *(_render(gql, attacker, customer["id"], BOMB) for _ in range(6)),
            gql("{ viewer { id } }", token=other.tenant.token))
        *bombs, viewer = results
        assert all(b["errors"][0]["code"] == "RENDER_LIMIT" for b in bombs)
        assert viewer["viewer"]["id"]


class TestValuesPrintAsJson:
    async def test_objects_booleans_and_nulls_are_json_not_python(self, gql,
                                                                  settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, plan=False)
        result = await _render(gql, team, customer["id"],
                               "{{customer}}|{{customer.hasAccountPlan}}|{{@root}}")
        assert result["errors"] == []
        whole, flag, root = result["output"].split("|", 2)
        printed = json.loads(whole)
        assert printed["name"] == customer["name"]
        assert printed["hasAccountPlan"] is False
        assert flag == "false"
        everything = json.loads(root)
        assert everything["customer"] == printed
        assert set(everything) >= {"customer", "csm", "workflow", "company", "accountTeam"}
        for python in ("None", "False", "True", "{'"):
            assert python not in result["output"]

    async def test_this_inside_each_is_json_and_a_missing_value_is_empty(self, gql,
                                                                         settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        result = await _render(gql, team, customer["id"],
                               "{{#with accountTeam}}{{this}}{{/with}}|{{customer.nope}}|"
                               "{{#each csm}}{{#if (eq @key \"managerId\")}}{{this}}"
                               "{{/if}}{{/each}}")
        assert result["errors"] == []
        team_json, missing, _ = result["output"].split("|")
        assert isinstance(json.loads(team_json), dict)
        assert missing == ""

    async def test_json_is_escaped_for_html(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        result = await _render(gql, team, customer["id"], "{{customer}}", html=True)
        assert result["errors"] == []
        assert result["output"].startswith("{&quot;")


class TestPreviewBounds:
    async def test_a_bomb_notification_is_an_error_at_its_path_the_others_render(
            self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        await make_workflow(gql, team.tenant, key="bomb-preview", config_=_with_notifications(
            "bomb-preview", _note("bomb", BOMB), _note("fine", "Call {{customer.name}}")))
        data = await gql(PREVIEW, {"key": "bomb-preview", "customerId": customer["id"]},
                         token=team.tenant.token)
        bomb, fine = data["previewNotifications"]
        assert bomb["message"] is None
        assert [(e["code"], e["path"]) for e in bomb["errors"]] == [
            ("RENDER_LIMIT", "$.steps[0].notifications[0].message")]
        assert fine == {"notificationId": "fine", "message": f"Call {customer['name']}",
                        "errors": []}


class TestRunEngineBounds:
    async def test_a_bomb_notification_fails_alone_and_the_run_goes_on(self, gql,
                                                                       settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        await make_workflow(gql, team.tenant, key="bomb-run", config_=_with_notifications(
            "bomb-run", _note("bomb", BOMB), _note("fine", "Call {{customer.name}}")))
        started = await start(gql, team, "bomb-run", customer["id"])
        assert started["errors"] == []
        detail = await run(gql, team, started["run"]["id"])
        statuses = {n["notificationId"]: n["status"] for n in detail["notifications"]}
        assert statuses["bomb"] == "failed"
        assert statuses["fine"] != "failed"
        errors = await gql("query($id: ID!) { run(id: $id) { notifications { notificationId "
                           "message lastError } } }", {"id": started["run"]["id"]},
                           token=team.tenant.token)
        bomb = next(n for n in errors["run"]["notifications"] if n["notificationId"] == "bomb")
        assert bomb["message"] == ""  # nothing half-rendered is stored
        assert "too much work" in bomb["lastError"]
        assert detail["steps"][0]["status"] == "completed"

    async def test_a_bomb_prompt_fails_its_step_with_the_code_in_the_worker(
            self, gql, settings, worker) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        await make_workflow(gql, team.tenant, key="bomb-prompt", config_=_with_notifications(
            "bomb-prompt", _note("fine", "Call {{customer.name}}"), prompt=BOMB))
        started = await start(gql, team, "bomb-prompt", customer["id"])
        assert started["errors"] == []
        detail = await run_in_status(gql, team, started["run"]["id"], "failed")
        plan = next(s for s in detail["steps"] if s["stepId"] == "plan")
        assert plan["status"] == "failed"
        assert "too much work" in plan["error"]
        failed = [e for e in detail["events"] if e["type"] == "run_failed"]
        assert failed
        assert failed[0]["payload"].get("code") == "RENDER_LIMIT"


class TestValidationBounds:
    async def test_a_bomb_without_context_is_refused_by_validation(self, gql,
                                                                   settings) -> None:
        team = await make_team(gql, settings)
        data = await op(gql, "ValidateConfig", {"config": _with_notifications(
            "literal-bomb", _note("bomb", LITERAL_BOMB))}, token=team.tenant.token)
        checked = data["validateWorkflowConfig"]
        assert checked["valid"] is False
        assert [(e["code"], e["path"]) for e in checked["errors"]] == [
            ("RENDER_LIMIT", "$.steps[0].notifications[0].message")]


class TestDeadline:
    async def test_a_render_past_its_deadline_is_refused(self) -> None:
        """The wall clock is a safety net beside the step budget (a controllable clock)."""
        now = [0.0]

        def clock() -> float:
            now[0] += 0.01  # every look at the clock: 10 ms later
            return now[0]

        context = {"items": list(range(2_000))}
        with limits.metered(limits.Budget(clock=clock, seconds=0.05)), \
                pytest.raises(engine.TemplateError) as refused:
            engine.render("{{#each items}}{{this}},{{/each}}", context)
        assert refused.value.code == "RENDER_LIMIT"
        assert "longer than" in refused.value.message
        # The same render with time to spare: 2,000 iterations are well within the budget.
        assert engine.render("{{#each items}}{{this}},{{/each}}", context).count(",") == 2_000
