"""Branches at run time: fixed choices and saved actions (snooze, skip, escalate, script)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from domain.jobs.models import CALL_WEBHOOK, Job
from domain.runs import engine, repository
from domain.runs.engine import Work, complete_step, default_next
from domain.runs.errors import InvalidBranch
from domain.runs.models import RunStatus, RunStep, StepStatus
from domain.runs.steps import fire_notifications
from domain.saved_actions import handlers
from domain.saved_actions import repository as saved_actions


async def choose_fixed(work: Work, step: Mapping[str, Any], record: RunStep,
                       branch: Mapping[str, Any]) -> None:
    """Record the choice, show its response, fire what it triggers, go to its next."""
    action = branch.get("triggersAction")
    if isinstance(action, str) and action:
        await fire_notifications(work, record.step_id, step, action=action)
    response = branch.get("response") or branch.get("label")
    complete_step(work, record, response, branchId=branch.get("id"), response=response,
                  triggeredAction=action)
    target = branch.get("next") if isinstance(branch.get("next"), str) else default_next(step)
    await engine.go_to(work, target)


async def resume_at(work: Work, record: RunStep, return_to: str | None) -> None:
    """Back to the flow after an action: staying on the current step keeps it waiting
    (nothing is sent again); another step is entered."""
    if return_to is None or return_to == record.step_id:
        record.status = StepStatus.WAITING.value
        work.dirty.add(record.step_id)
        work.run.status = RunStatus.WAITING.value
        work.emit("step_waiting", record.step_id, waitingFor="choice")
        return
    await engine.go_to(work, return_to)


async def run_saved_action(work: Work, step: Mapping[str, Any], record: RunStep,
                           branch: Mapping[str, Any]) -> None:
    action_id = str(branch.get("savedAction"))
    action = await saved_actions.by_action_id(work.session, action_id)
    if action is None:
        raise InvalidBranch(f"the saved action {action_id!r} no longer exists", path="branchId")
    effect = handlers.plan(action.handler, dict(action.config or {}))
    return_to = branch.get("returnToStep") if isinstance(branch.get("returnToStep"), str) \
        else record.step_id
    common = {"branchId": branch.get("id"), "actionId": action_id, "returnToStep": return_to}
    if isinstance(effect, handlers.Snooze):
        until = work.now + timedelta(days=effect.days)
        engine.schedule_resume(work, fire_at=until, return_to=return_to, reason="snooze")
        record.status = StepStatus.WAITING.value
        record.input = {**(record.input or {}), "snoozedUntil": until.isoformat()}
        work.dirty.add(record.step_id)
        work.run.status = RunStatus.WAITING.value
        work.emit("run_snoozed", record.step_id, until=until.isoformat(), days=effect.days,
                  **common)
    elif isinstance(effect, handlers.Skip):
        record.status = StepStatus.SKIPPED.value
        record.finished_at = work.now
        work.dirty.add(record.step_id)
        work.emit("step_skipped", record.step_id, **common)
        await engine.go_to(work, default_next(step))
    elif isinstance(effect, handlers.Escalate):
        await escalate(work, effect.workflow_key, common)
        await resume_at(work, record, return_to)
    elif isinstance(effect, handlers.CallWebhook):
        record.status = StepStatus.RUNNING.value
        record.input = {**(record.input or {}), "pendingAction": action_id}
        work.dirty.add(record.step_id)
        work.run.status = RunStatus.RUNNING.value
        work.defer(Job(CALL_WEBHOOK, work.run.tenant_id, {
            "run_id": str(work.run.id), "step_id": record.step_id, "attempt": record.attempts,
            "action_id": action_id, "branch_id": branch.get("id"), "return_to": return_to,
            "url": effect.url, "timeout": effect.timeout_seconds},
            queueing_lock=f"webhook:{work.run.id}:{record.step_id}:{record.attempts}"))
        work.emit("action_started", record.step_id, kind="script", **common)


async def escalate(work: Work, workflow_key: str, common: dict[str, Any]) -> None:
    """Start the named workflow's run for the same customer, linked to this one (or link to
    the run of it that is already active)."""
    from domain.runs import service  # the service starts runs; it builds on this module

    existing = await repository.active_for(work.session, work.run.customer_id, workflow_key)
    if existing is not None:
        work.emit("escalation_linked", work.run.current_step_id, runId=str(existing),
                  workflowKey=workflow_key, **common)
        return
    child = await service.start_run(
        work.session, work.actor, workflow_key=workflow_key,
        customer_id=work.run.customer_id, variables={}, trigger="escalation",
        parent_run_id=work.run.id)
    work.emit("escalated", work.run.current_step_id, runId=str(child.id),
              workflowKey=workflow_key, **common)
