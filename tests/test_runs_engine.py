"""Runs through GraphQL: the steps the engine finishes inside the caller's transaction, the
saved actions, approvals, pause/resume/cancel, and the jobs the worker runs (called here
directly with the app-role pool, as the worker does)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from domain.runs import work
from domain.shared import clock
from domain.shared.actor import Role
from tests.factories import make_user
from tests.factories_runs import Team, act, make_customer, make_team, run, start
from tests.factories_workflows import config, make_workflow, seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


def _types(detail: dict[str, Any]) -> list[str]:
    return [e["type"] for e in detail["events"]]


async def _pending_timers(app_db, team: Team) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    async with app_db.transaction(team.tenant.id) as tx:
        rows = await tx.fetch("SELECT id FROM run_timers WHERE status = 'pending'")
    return [row["id"] for row in rows]


class TestRouting:
    async def test_a_condition_on_the_context_picks_the_route(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        low = await make_customer(gql, team, days=10, arr=90000, plan=True)
        high = await make_customer(gql, team, days=10, arr=300000, plan=True)
        low_run = (await start(gql, team, "critical", low["id"]))["run"]
        high_run = (await start(gql, team, "critical", high["id"]))["run"]
        assert low_run["currentStepId"] == "emergency-resolution"
        assert high_run["currentStepId"] == "executive-escalation"
        detail = await run(gql, team, low_run["id"])
        assert detail["steps"][0] == {
            "stepId": "critical-status-assessment", "status": "completed", "attempts": 1,
            "output": "emergency-resolution", "error": None,
            "startedAt": detail["steps"][0]["startedAt"],
            "finishedAt": detail["steps"][0]["finishedAt"]}
        assert [e["seq"] for e in detail["events"]] == list(range(1, len(detail["events"]) + 1))
        assert detail["workflow"]["key"] == "critical"
        assert detail["workflowVersion"] == 1

    async def test_a_fixed_branch_fires_its_action_and_moves_on(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        chosen = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                           branchId="activate-war-room")
        assert chosen["errors"] == []
        assert chosen["run"]["currentStepId"] == "emergency-resolution"
        detail = await run(gql, team, run_id)
        fired = [n for n in detail["notifications"] if n["notificationId"]
                 == "war-room-activation"]
        assert len(fired) == 1
        assert fired[0]["recipients"] == [team.manager_email, fired[0]["recipients"][1]]
        # The other actionTriggered notification waits for its own action.
        assert all(n["notificationId"] != "war-room-channel" for n in detail["notifications"])
        executive = next(s for s in detail["steps"] if s["stepId"] == "executive-escalation")
        assert executive["output"].startswith("War room activated")

    async def test_a_branch_without_next_ends_the_run(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=90000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        done = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                         branchId="renewal-secured")
        assert done["run"]["status"] == "completed"
        detail = await run(gql, team, run_id)
        assert detail["finishedAt"] is not None
        assert _types(detail)[-1] == "run_completed"


class TestStarting:
    async def test_one_active_run_per_customer_and_workflow(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10)
        assert (await start(gql, team, "critical", customer["id"]))["errors"] == []
        again = await start(gql, team, "critical", customer["id"])
        assert again["run"] is None
        assert again["errors"][0]["code"] == "RUN_ALREADY_ACTIVE"

    async def test_another_tenants_customer_is_not_found(self, gql, settings) -> None:
        a, b = await make_team(gql, settings), await make_team(gql, settings)
        theirs = await make_customer(gql, b, days=10)
        for customer_id in (theirs["id"], str(uuid.uuid4()), "not-an-id"):
            refused = await start(gql, a, "critical", customer_id)
            assert refused["errors"] == [{"code": "NOT_FOUND", "message": "no such customer",
                                          "path": "input.customerId"}]

    async def test_viewers_read_but_cannot_start(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        viewer = await make_user(team.tenant, role=Role.VIEWER)
        customer = await make_customer(gql, team, days=10)
        refused = await start(gql, team, "critical", customer["id"],
                              token=team.tenant.token_for(viewer, Role.VIEWER))
        assert refused["errors"][0]["code"] == "FORBIDDEN"
        started = await start(gql, team, "critical", customer["id"])
        seen = await gql("query($id: ID!) { run(id: $id) { id status } }",
                         {"id": started["run"]["id"]},
                         token=team.tenant.token_for(viewer, Role.VIEWER))
        assert seen["run"]["status"] == "waiting"

    async def test_typed_variables_are_checked_before_a_run_starts(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        typed = config("typed", variables=[
            {"name": "discount_cap", "type": "number", "default": "10"},
            {"name": "region", "type": "select", "options": ["emea", "amer"], "required": True},
            {"name": "deadline", "type": "date"},
        ])
        await make_workflow(gql, team.tenant, key="typed", config_=typed)
        customer = await make_customer(gql, team, days=10)
        bad = await start(gql, team, "typed", customer["id"], variables={
            "discount_cap": "lots", "deadline": "soon", "extra": 1})
        assert {(e["code"], e["path"]) for e in bad["errors"]} == {
            ("INVALID_VARIABLE", "input.variables.discount_cap"),
            ("INVALID_VARIABLE", "input.variables.deadline"),
            ("REQUIRED", "input.variables.region"),
            ("UNKNOWN_VARIABLE", "input.variables.extra")}
        runs = await gql("{ runs { totalCount } }", token=team.tenant.token)
        assert runs["runs"]["totalCount"] == 0  # nothing half-written
        good = await start(gql, team, "typed", customer["id"],
                           variables={"region": "emea", "deadline": "2027-01-31"})
        assert good["errors"] == []
        detail = await run(gql, team, good["run"]["id"])
        assert detail["variables"] == {"discount_cap": 10, "region": "emea",
                                       "deadline": "2027-01-31"}


class TestApproval:
    async def _at_approval(self, gql, settings) -> tuple[Team, str]:  # type: ignore[no-untyped-def]
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=3, arr=275000)
        started = await start(gql, team, "emergency", customer["id"])
        assert started["run"]["currentStepId"] == "team-escalation"
        assert started["run"]["status"] == "waiting"
        return team, started["run"]["id"]

    async def test_only_the_rendered_approver_or_an_admin_decides(self, gql, settings) -> None:
        team, run_id = await self._at_approval(gql, settings)
        refused = await act(gql, team, "Approve", "approveStep", runId=run_id, approved=True)
        assert refused["errors"][0]["code"] == "NOT_APPROVER"
        approved = await act(gql, team, "Approve", "approveStep", token=team.manager_token,
                             runId=run_id, approved=True, comment="Go")
        assert approved["errors"] == []
        assert approved["run"]["currentStepId"] == "final-push"
        detail = await run(gql, team, run_id)
        step = next(s for s in detail["steps"] if s["stepId"] == "team-escalation")
        assert step["output"] == {"approved": True, "by": team.manager_email, "comment": "Go"}

    async def test_a_rejection_without_a_reject_route_fails_the_run(self, gql, settings) -> None:
        team, run_id = await self._at_approval(gql, settings)
        rejected = await act(gql, team, "Approve", "approveStep", token=team.tenant.token,
                             runId=run_id, approved=False, comment="Not now")
        assert rejected["run"]["status"] == "failed"
        detail = await run(gql, team, run_id)
        assert "Not now" in next(s for s in detail["steps"]
                                 if s["stepId"] == "team-escalation")["error"]

    async def test_choose_on_an_approval_is_a_wrong_state(self, gql, settings) -> None:
        team, run_id = await self._at_approval(gql, settings)
        wrong = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                          branchId="signed")
        assert wrong["errors"][0]["code"] == "WRONG_STATE"


class TestSavedActions:
    async def test_snooze_waits_on_a_durable_timer_then_resumes(
            self, gql, settings, app_db, clock_file) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        snoozed = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                            branchId="snooze")
        assert snoozed["run"]["status"] == "waiting"
        [timer] = await _pending_timers(app_db, team)
        assert await work.fire_timer(app_db, team.tenant.id, timer) == "not_due"
        clock.advance(timedelta(hours=23))
        assert await work.fire_timer(app_db, team.tenant.id, timer) == "not_due"
        clock.advance(timedelta(hours=1, seconds=1))
        assert await work.fire_timer(app_db, team.tenant.id, timer) == "fired"
        detail = await run(gql, team, run_id)
        assert "timer_fired" in _types(detail)

    async def test_a_timer_fires_only_once(self, gql, settings, app_db, clock_file) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id, branchId="snooze")
        [timer] = await _pending_timers(app_db, team)
        clock.advance(timedelta(days=1, minutes=1))
        assert await work.fire_timer(app_db, team.tenant.id, timer) == "fired"
        assert await work.fire_timer(app_db, team.tenant.id, timer) == "stale"
        detail = await run(gql, team, run_id)
        assert detail["status"] == "waiting"
        assert detail["currentStepId"] == "executive-escalation"  # re-routed: still high ARR
        assert _types(detail).count("timer_fired") == 1
        visits = next(s for s in detail["steps"] if s["stepId"] == "critical-status-assessment")
        assert visits["attempts"] == 2

    async def test_escalation_starts_a_linked_run(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=-8, arr=90000)
        run_id = (await start(gql, team, "overdue", customer["id"]))["run"]["id"]
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                  branchId="start-follow-up")
        escalated = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                              branchId="escalate")
        assert escalated["errors"] == []
        assert escalated["run"]["currentStepId"] == "daily-follow-up"
        detail = await run(gql, team, run_id)
        event = next(e for e in detail["events"] if e["type"] == "escalated")
        child = await gql("query($id: ID!) { run(id: $id) { workflowKey trigger "
                          "parentRun { id } } }", {"id": event["payload"]["runId"]},
                          token=team.tenant.token)
        assert child["run"] == {"workflowKey": "emergency", "trigger": "escalation",
                                "parentRun": {"id": run_id}}


class TestLifecycle:
    async def test_pause_resume_cancel_and_wrong_states(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        paused = await act(gql, team, "PauseRun", "pauseRun", runId=run_id)
        assert paused["run"]["status"] == "paused"
        blocked = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                            branchId="activate-war-room")
        assert blocked["errors"] == [{"code": "WRONG_STATE", "path": "runId",
                                      "message": "the run is paused, not waiting for a choice"}]
        resumed = await act(gql, team, "ResumeRun", "resumeRun", runId=run_id)
        assert resumed["run"]["status"] == "waiting"
        cancelled = await act(gql, team, "CancelRun", "cancelRun", runId=run_id)
        assert cancelled["run"]["status"] == "cancelled"
        for operation, field, extra in (("ChooseBranch", "chooseBranch",
                                         {"branchId": "activate-war-room"}),
                                        ("CancelRun", "cancelRun", {}),
                                        ("ResumeRun", "resumeRun", {}),
                                        ("RetryStep", "retryStep", {"stepId": "x"})):
            wrong = await act(gql, team, operation, field, runId=run_id, **extra)
            assert wrong["errors"][0]["code"] == "WRONG_STATE", operation
        detail = await run(gql, team, run_id)
        assert _types(detail)[-3:] == ["run_paused", "run_resumed", "run_cancelled"][-3:]

    async def test_another_tenants_run_is_not_found_and_untouched(self, gql, settings) -> None:
        a, b = await make_team(gql, settings), await make_team(gql, settings)
        customer = await make_customer(gql, b, days=10, arr=300000)
        run_id = (await start(gql, b, "critical", customer["id"]))["run"]["id"]
        assert (await gql("query($id: ID!) { run(id: $id) { id } }", {"id": run_id},
                          token=a.tenant.token))["run"] is None
        for operation, field, extra in (("ChooseBranch", "chooseBranch",
                                         {"branchId": "activate-war-room"}),
                                        ("PauseRun", "pauseRun", {}),
                                        ("CancelRun", "cancelRun", {})):
            refused = await act(gql, a, operation, field, runId=run_id, **extra)
            assert refused["errors"][0]["code"] == "NOT_FOUND"
        assert (await run(gql, b, run_id))["status"] == "waiting"


class TestIOStepsAreQueued:
    async def test_an_llm_step_is_started_and_becomes_a_job_committed_with_the_step(
            self, gql, settings, database_url) -> None:
        import asyncpg

        from tests.conftest import _plain

        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=90000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        moved = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                          branchId="needs-alternatives")
        assert moved["run"] == {"id": run_id, "status": "running",
                                "currentStepId": "alternative-options"}
        owner = await asyncpg.connect(_plain(database_url))
        try:
            jobs = await owner.fetch(
                "SELECT id, task_name, args FROM jobs.procrastinate_jobs "
                "WHERE args->>'run_id' = $1", run_id)
            # procrastinate's per-job event rows are off (migration 0011): nothing reads them
            events = await owner.fetchval(
                "SELECT count(*) FROM jobs.procrastinate_events WHERE job_id = $1",
                jobs[0]["id"])
        finally:
            await owner.close()
        assert [(j["task_name"], json.loads(j["args"])["step_id"]) for j in jobs] == [
            ("execute_step", "alternative-options")]
        assert events == 0
        # The transaction that entered the step started it (the worker only calls the model
        # and finishes): rendered, its call reserved in the ledger, the job told so.
        args = json.loads(jobs[0]["args"])
        assert args["started"] is True
        detail = await run(gql, team, run_id)
        step = next(s for s in detail["steps"] if s["stepId"] == "alternative-options")
        assert step["status"] == "running"
        assert [e["type"] for e in detail["events"] if e["stepId"] == "alternative-options"] \
            == ["step_started", "step_queued", "step_running"]
        owner = await asyncpg.connect(_plain(database_url))
        try:
            reserved = await owner.fetch(
                "SELECT id, status, step_id FROM llm_usage WHERE run_id = $1", uuid.UUID(run_id))
        finally:
            await owner.close()
        assert [(str(r["id"]), r["status"], r["step_id"]) for r in reserved] == [
            (args["reservation"], "reserved", "alternative-options")]


async def _as_owner(database_url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    from tests.conftest import _plain

    owner = await asyncpg.connect(_plain(database_url))
    try:
        return list(await owner.fetch(sql, *args))
    finally:
        await owner.close()


async def _at_the_started_llm_step(gql, settings, database_url  # type: ignore[no-untyped-def]
                                   ) -> tuple[Team, str, dict[str, Any]]:
    """A critical run moved to its llm step: the team, the run and its job's arguments."""
    team = await make_team(gql, settings)
    customer = await make_customer(gql, team, days=10, arr=90000)
    run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
    await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
              branchId="needs-alternatives")
    rows = await _as_owner(database_url, "SELECT args FROM jobs.procrastinate_jobs "
                           "WHERE task_name = 'execute_step' AND args->>'run_id' = $1", run_id)
    assert len(rows) == 1
    return team, run_id, json.loads(rows[0]["args"])


async def _ledger(database_url: str, run_id: str) -> list[str]:
    rows = await _as_owner(database_url, "SELECT status FROM llm_usage WHERE run_id = $1",
                           uuid.UUID(run_id))
    return [row["status"] for row in rows]


async def _execute(app_db, team: Team, args: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    reservation = args.get("reservation")
    return await work.execute_step(
        app_db, team.tenant.id, uuid.UUID(args["run_id"]), args["step_id"], args["attempt"],
        started=bool(args.get("started")),
        reservation=uuid.UUID(reservation) if reservation else None)


class TestStartedIOSteps:
    async def test_a_run_cancelled_before_the_worker_calls_nothing_and_frees_its_reservation(
            self, gql, settings, database_url, app_db, fake_llm) -> None:
        team, run_id, args = await _at_the_started_llm_step(gql, settings, database_url)
        assert (await act(gql, team, "CancelRun", "cancelRun", runId=run_id))["errors"] == []
        assert await _execute(app_db, team, args) == "stale"
        assert await fake_llm.calls() == []
        assert await _ledger(database_url, run_id) == ["released"]
        assert (await run(gql, team, run_id))["status"] == "cancelled"

    async def test_a_pause_after_the_start_lets_the_step_finish_and_stops_at_the_boundary(
            self, gql, settings, database_url, app_db, fake_llm) -> None:
        team, run_id, args = await _at_the_started_llm_step(gql, settings, database_url)
        assert (await act(gql, team, "PauseRun", "pauseRun", runId=run_id))["errors"] == []
        assert await _execute(app_db, team, args) == "done"
        assert len(await fake_llm.calls()) == 1
        assert await _ledger(database_url, run_id) == ["settled"]
        paused = await run(gql, team, run_id)
        assert paused["status"] == "paused"
        step = next(s for s in paused["steps"] if s["stepId"] == "alternative-options")
        assert step["status"] == "completed"
        assert step["output"]
        resumed = await act(gql, team, "ResumeRun", "resumeRun", runId=run_id)
        assert resumed["errors"] == []
        # (the step is the flow's last: the resume continues where the pause stopped it)
        assert resumed["run"]["status"] == "completed"
        assert _types(await run(gql, team, run_id))[-2:] == ["run_resumed", "run_completed"]
        # The job ran once: running it again (a retry) changes nothing and calls nothing.
        assert await _execute(app_db, team, args) == "stale"
        assert len(await fake_llm.calls()) == 1


def _outputs_config(key: str) -> dict[str, Any]:
    return config(key, steps=[
        {"id": "draft", "name": "Draft", "type": "llm",
         "execution": {"llmPrompt": "Draft a note to {{customer.name}}"},
         "routing": {"defaultRoute": "review"}},
        {"id": "review", "name": "Review", "type": "task",
         "chatBranches": [{"id": "send", "label": "Send it", "type": "fixed",
                           "userPrompts": ["Send it"], "response": "Sending.",
                           "next": "polish"}]},
        {"id": "polish", "name": "Polish", "type": "llm",
         "execution": {"llmPrompt": "Polish this: {{steps.draft.output}}"}},
    ])


class TestStepOutputs:
    async def test_a_later_transaction_renders_an_earlier_steps_output_from_its_record(
            self, gql, settings, database_url, app_db, fake_llm) -> None:
        team = await make_team(gql, settings)
        await make_workflow(gql, team.tenant, key="outputs", config_=_outputs_config("outputs"))
        customer = await make_customer(gql, team, days=30)
        await fake_llm.script({"match": "Draft a note", "text": "Dear customer, thanks."},
                              {"match": "Polish this", "text": "Polished."})
        run_id = (await start(gql, team, "outputs", customer["id"]))["run"]["id"]

        async def job(step_id: str) -> dict[str, Any]:
            rows = await _as_owner(
                database_url, "SELECT args FROM jobs.procrastinate_jobs WHERE task_name = "
                "'execute_step' AND args->>'run_id' = $1 AND args->>'step_id' = $2",
                run_id, step_id)
            return dict(json.loads(rows[0]["args"]))

        assert await _execute(app_db, team, await job("draft")) == "done"
        # The ChooseBranch is a transaction of its own: it renders the prompt of the step it
        # enters from the draft's record, as the run's row keeps no copy of step outputs.
        chosen = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                           branchId="send")
        assert chosen["errors"] == []
        assert await _execute(app_db, team, await job("polish")) == "done"
        prompts = [json.dumps(call) for call in await fake_llm.calls()]
        assert "Polish this: Dear customer, thanks." in prompts[-1]
        assert (await run(gql, team, run_id))["status"] == "completed"
        [context] = await _as_owner(database_url, "SELECT context FROM runs WHERE id = $1",
                                    uuid.UUID(run_id))
        assert "steps" not in json.loads(context["context"])

    async def test_a_run_that_kept_outputs_in_its_context_drops_them_at_its_next_save(
            self, gql, settings, database_url) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=90000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        # (as runs written before the outputs moved to the step records left it)
        await _as_owner(
            database_url, "UPDATE runs SET context = context || jsonb_build_object('steps', "
            "jsonb_build_object('critical-status-assessment', jsonb_build_object("
            "'output', 'stale copy', 'status', 'completed'))) WHERE id = $1",
            uuid.UUID(run_id))
        moved = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                          branchId="renewal-secured")
        assert moved["errors"] == []
        [context] = await _as_owner(database_url, "SELECT context FROM runs WHERE id = $1",
                                    uuid.UUID(run_id))
        assert "steps" not in json.loads(context["context"])
