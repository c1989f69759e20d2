"""The worker as its own process, end to end: each core workflow from StartRun to its end
through GraphQL, the worker running the I/O (the fake Messages API through the real SDK,
a local SMTP server, a local webhook receiver), the clock moved instead of waiting days;
then faults: a worker SIGKILLed mid-step, a receiver that fails before it succeeds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import pytest_asyncio

from domain.shared import clock
from domain.shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import serving
from tests.factories_runs import Team, act, make_customer, make_team, run, start
from tests.factories_workflows import config, make_workflow, seed_core
from tests.workerlib import SMTPServer, WebhookReceiver, eventually, run_in_status

pytestmark = pytest.mark.asyncio

CHANNELS = """
mutation($input: NotificationChannelInput!) {
  createNotificationChannel(input: $input) {
    channel { id type name hasSecret } errors { code message path }
  }
}"""


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


@pytest_asyncio.fixture
async def smtp() -> AsyncIterator[SMTPServer]:
    async with SMTPServer().running() as server:
        yield server


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    found = WebhookReceiver()
    async with serving(found.app()) as address:
        found.address = address
        yield found


async def _channels(gql: Any, team: Team, smtp: SMTPServer, receiver: WebhookReceiver
                    ) -> dict[str, str]:
    made = {}
    for kind, settings_, secret in (
            ("email", {"host": smtp.host, "port": smtp.port, "from": "playbooks@example.test"},
             None),
            ("slack", {"url": receiver.url("/slack")}, None),
            ("webhook", {"url": receiver.url("/hook")}, "hook-secret")):
        data = await gql(CHANNELS, {"input": {"type": kind, "name": f"{kind} channel",
                                              "config": settings_, "secret": secret}},
                         token=team.tenant.token)
        payload = data["createNotificationChannel"]
        assert payload["errors"] == [], payload
        made[kind] = payload["channel"]["id"]
    return made


async def _calls_about(fake_llm: Any, customer: dict[str, Any]) -> list[dict[str, Any]]:
    return [call for call in await fake_llm.calls() if customer["name"] in json.dumps(call)]


def _by_subject(smtp: SMTPServer, fragment: str) -> list[Any]:
    return [mail for mail in smtp.mails if fragment in mail.subject]


class TestCoreWorkflows:
    async def test_critical_fires_the_war_room_and_the_llm_step_completes_it(
            self, gql, app, settings, smtp, receiver, worker, fake_llm) -> None:
        compiled_before = app.state.fast.compiled_served
        team = await make_team(gql, settings)
        await _channels(gql, team, smtp, receiver)
        customer = await make_customer(gql, team, days=10, arr=300000)
        await fake_llm.script({"text": "Offer a 12-month term with a 5% cap.",
                               "match": customer["name"]})
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        chosen = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                           branchId="activate-war-room")
        assert chosen["errors"] == []
        moved = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                          branchId="needs-alternatives")
        assert moved["run"]["currentStepId"] == "alternative-options"
        detail = await run_in_status(gql, team, run_id)
        step = next(s for s in detail["steps"] if s["stepId"] == "alternative-options")
        assert step["output"] == "Offer a 12-month term with a 5% cap."
        assert len(await _calls_about(fake_llm, customer)) == 1
        mail = await eventually(lambda: _async(_by_subject(smtp, "War room activated")),
                                what="the war-room email")
        assert len(mail) == 1
        assert team.manager_email in mail[0].recipients
        notification = next(n for n in detail["notifications"]
                            if n["notificationId"] == "war-room-activation")
        assert mail[0].key == notification["id"]
        sent = await eventually(lambda: _sent(gql, team, run_id, "war-room-activation"),
                                what="the notification to be marked sent")
        assert sent["status"] == "sent"
        # The repeated run reads were compiled, notifications and all, and none failed.
        assert app.state.fast.compiled_served > compiled_before
        assert app.state.fast.compiled_failed == 0

    async def test_emergency_waits_for_its_approval_and_reaches_every_channel(
            self, gql, settings, smtp, receiver, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        await _channels(gql, team, smtp, receiver)
        customer = await make_customer(gql, team, days=3, arr=275000)
        await fake_llm.script({"text": "Outcome: renewed at flat price.",
                               "match": customer["name"]})
        run_id = (await start(gql, team, "emergency", customer["id"]))["run"]["id"]
        await eventually(lambda: _async(_by_subject(smtp, "Acknowledge")),
                         what="the acknowledgment email")
        inbox = await gql("{ inbox(unreadOnly: true) { id notificationId title readAt } }",
                          token=team.manager_token)
        approval = await eventually(lambda: _inbox(gql, team, "approval-request"),
                                    what="the approval request in the manager's inbox")
        read = await gql("mutation($id: ID!) { markNotificationRead(id: $id) { "
                         "notification { readAt } errors { code } } }", {"id": approval["id"]},
                         token=team.manager_token)
        assert read["markNotificationRead"]["notification"]["readAt"] is not None
        stranger = await gql("mutation($id: ID!) { markNotificationRead(id: $id) { "
                             "errors { code } } }", {"id": approval["id"]},
                             token=team.csm_token)
        assert stranger["markNotificationRead"]["errors"] == [{"code": "NOT_FOUND"}]
        assert inbox["inbox"] == [] or all(n["readAt"] is None for n in inbox["inbox"])
        approved = await act(gql, team, "Approve", "approveStep", token=team.manager_token,
                             runId=run_id, approved=True, comment="Go")
        assert approved["run"]["currentStepId"] == "final-push"
        signed = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                           branchId="signed")
        assert signed["errors"] == []
        detail = await run_in_status(gql, team, run_id)
        assert next(s for s in detail["steps"] if s["stepId"] == "outcome-resolution"
                    )["output"] == "Outcome: renewed at flat price."
        slack = await eventually(lambda: _async(receiver.at("/slack")),
                                 what="the Slack message")
        assert len(slack) == 1
        assert "High-value renewal at risk" in json.loads(slack[0].body)["text"]
        await eventually(lambda: _async(_by_subject(smtp, "Final push")),
                         what="the final-push email")
        for fragment in ("Acknowledge", "Final push"):
            assert len(_by_subject(smtp, fragment)) == 1

    async def test_overdue_escalates_on_schedule_and_stops_once_renewed(
            self, gql, settings, smtp, receiver, worker, clock_file) -> None:
        team = await make_team(gql, settings)
        await _channels(gql, team, smtp, receiver)
        customer = await make_customer(gql, team, days=-1, arr=90000)
        run_id = (await start(gql, team, "overdue", customer["id"]))["run"]["id"]
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                  branchId="start-follow-up")
        detail = await run(gql, team, run_id)
        scheduled = {n["notificationId"]: n for n in detail["notifications"]
                     if n["status"] == "scheduled"}
        assert set(scheduled) == {"day-7-manager", "day-8-vp", "day-15-war-room",
                                  "day-22-ceo", "day-30-ceo-final"}
        assert smtp.mails == []
        # To renewal + 7 days, an hour into the day (UTC): a step from now would also pass
        # day 8 when the test runs late in the day.
        renewal = date.fromisoformat(customer["renewalDate"])
        clock.advance(datetime.combine(renewal + timedelta(days=7), time(1), UTC) - clock.now())
        await eventually(lambda: _async(_by_subject(smtp, "7 days overdue")),
                         what="the day-7 escalation")
        assert _by_subject(smtp, "8 days overdue") == []
        clock.advance(timedelta(days=1))
        await eventually(lambda: _async(_by_subject(smtp, "8 days overdue")),
                         what="the day-8 escalation")
        renewed = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                            branchId="renewed")
        assert renewed["run"]["status"] == "completed"
        await eventually(lambda: _async(_by_subject(smtp, "renewal confirmed")),
                         what="the confirmation")
        clock.advance(timedelta(days=30))

        async def all_dropped() -> dict[str, Any] | None:
            found = {n["notificationId"]: n["status"] for n in
                     (await run(gql, team, run_id))["notifications"]}
            later = {found[k] for k in ("day-15-war-room", "day-22-ceo", "day-30-ceo-final")}
            return found if later == {"dropped"} else None

        final = await eventually(all_dropped, what="later escalations to be dropped")
        assert final["day-7-manager"] == final["day-8-vp"] == "sent"
        assert receiver.at("/slack") == []
        assert [m.subject for m in smtp.mails if "overdue" in m.subject] == [
            f"{customer['name']}: renewal 7 days overdue",
            f"Escalation: {customer['name']} renewal 8 days overdue"]


class TestFaults:
    async def test_a_worker_killed_mid_step_is_replaced_and_nothing_repeats(
            self, gql, settings, smtp, receiver, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        await _channels(gql, team, smtp, receiver)
        customer = await make_customer(gql, team, days=10, arr=300000)
        await fake_llm.script({"text": "slow answer", "delay": 30, "match": customer["name"]},
                              {"text": "Plan B: multi-year at list.",
                               "match": customer["name"]})
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                  branchId="activate-war-room")
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                  branchId="needs-alternatives")
        await eventually(lambda: _calls_about(fake_llm, customer), what="the LLM call to start")
        await eventually(lambda: _async(_by_subject(smtp, "War room activated")),
                         what="the war-room email")
        worker.kill()
        worker.start()
        detail = await run_in_status(gql, team, run_id)
        step = next(s for s in detail["steps"] if s["stepId"] == "alternative-options")
        assert step["output"] == "Plan B: multi-year at list."
        assert step["attempts"] == 1
        assert len(await _calls_about(fake_llm, customer)) == 2  # the first never answered
        assert len(_by_subject(smtp, "War room activated")) == 1
        seqs = [e["seq"] for e in detail["events"]]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [e["type"] for e in detail["events"]].count("step_completed") >= 3

    async def test_a_webhook_that_fails_twice_is_delivered_once(
            self, gql, settings, smtp, receiver, worker) -> None:
        team = await make_team(gql, settings)
        await _channels(gql, team, smtp, receiver)
        receiver.fail("/hook", 2)
        await make_workflow(gql, team.tenant, key="hooked", config_=config("hooked", steps=[
            {"id": "announce", "name": "Announce", "type": "notification",
             "notifications": [{"id": "tell", "type": "webhook", "title": "Hello {{customer.name}}",
                                "message": "Renewal in {{workflow.daysUntilRenewal}} days",
                                "recipients": ["{{csm.email}}"]}]}]))
        customer = await make_customer(gql, team, days=20)
        run_id = (await start(gql, team, "hooked", customer["id"]))["run"]["id"]
        sent = await eventually(lambda: _sent(gql, team, run_id, "tell"), deadline=30,
                                what="the webhook notification to be sent")
        assert sent["attempts"] == 3
        attempts = receiver.at("/hook", ok_only=False)
        assert [r.status for r in attempts] == [500, 500, 200]
        assert len({r.headers["idempotency-key"] for r in attempts}) == 1
        for request in attempts:
            assert verify("hook-secret", request.headers[TIMESTAMP_HEADER.lower()],
                          request.body, request.headers[SIGNATURE_HEADER.lower()])
        assert json.loads(attempts[-1].body)["title"] == f"Hello {customer['name']}"
        # The worker's log tells each failure that will be retried, and nothing per job that
        # went well (no start or success lines, no HTTP request lines).
        logged = worker.output()
        retried = [line for line in logged.splitlines()
                   if "deliver_notification" in line and "Error, to retry" in line]
        assert len(retried) == 2, logged
        assert "RetryLater: HTTP 500" in logged  # the traceback of a retried failure
        assert "Starting job" not in logged
        assert "status: Success" not in logged
        assert "HTTP Request" not in logged
        assert "Starting worker" in logged


    async def test_log_jobs_logs_each_job_started_and_succeeded(
            self, gql, settings, smtp, receiver, worker) -> None:
        worker.stop()
        worker.options = ["--log-jobs"]
        worker.start()
        team = await make_team(gql, settings)
        await _channels(gql, team, smtp, receiver)
        await make_workflow(gql, team.tenant, key="told", config_=config("told", steps=[
            {"id": "announce", "name": "Announce", "type": "notification",
             "notifications": [{"id": "tell", "type": "webhook", "title": "Hi {{customer.name}}",
                                "message": "Hello", "recipients": ["{{csm.email}}"]}]}]))
        customer = await make_customer(gql, team, days=20)
        run_id = (await start(gql, team, "told", customer["id"]))["run"]["id"]
        await eventually(lambda: _sent(gql, team, run_id, "tell"), deadline=30,
                         what="the webhook notification to be sent")
        logged = await eventually(
            lambda: _async(worker.output() if "status: Success" in worker.output() else None),
            what="the job's success line")
        assert "Starting job" in logged
        assert "deliver_notification" in logged


async def _async(value: Any) -> Any:
    return value


async def _sent(gql: Any, team: Team, run_id: str, notification_id: str
                ) -> dict[str, Any] | None:
    data = await gql("query($id: ID!) { run(id: $id) { notifications { notificationId status "
                     "attempts } } }", {"id": run_id}, token=team.tenant.token)
    for item in data["run"]["notifications"]:
        if item["notificationId"] == notification_id and item["status"] == "sent":
            found: dict[str, Any] = item
            return found
    return None


async def _inbox(gql: Any, team: Team, notification_id: str) -> dict[str, Any] | None:
    data = await gql("{ inbox { id notificationId readAt } }", token=team.manager_token)
    return next((n for n in data["inbox"] if n["notificationId"] == notification_id), None)
