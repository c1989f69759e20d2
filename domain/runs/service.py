"""Run rules: start, work (branches, approvals), pause, resume, cancel, retry, and reads.

Viewers read runs; editors and admins start and work them. A wrong state (choosing on a
cancelled run, resuming one that is not paused) is a WRONG_STATE error with a path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from domain.customers import service as customers
from domain.customers.errors import CustomerNotFound
from domain.notifications import service as notifications
from domain.runs import actions, engine, repository, variables
from domain.runs.engine import Work, default_next
from domain.runs.errors import (
    InvalidBranch,
    NotApprover,
    RunAlreadyActive,
    RunNotFound,
    WrongState,
)
from domain.runs.models import ACTIVE, Run, RunEvent, RunFilter, RunStatus, RunStep, StepStatus
from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError, NotFound
from domain.shared.ids import parse_id
from domain.shared.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.users import repository as users_repository
from domain.workflows import service as workflows

MAX_COMMENT = 2000


async def _save(work: Work) -> None:
    """Save, mapping the one-active-run rule to its own error (the caller undoes the
    transaction's work: the mutation's savepoint or rollback, the job's rollback)."""
    try:
        await engine.save(work)
    except asyncpg.UniqueViolationError as exc:
        raise RunAlreadyActive("this customer already has an active run of this workflow",
                               path="input.workflowKey") from exc


async def start_run(session: AsyncSession, actor: Actor, *, workflow_key: str,
                    customer_id: UUID | str, variables: Any = None, trigger: str = "manual",
                    parent_run_id: UUID | None = None, advance: bool = True,
                    renewal_date: Any = None) -> Run:
    """Start the tenant's workflow with this key (its own shadows the core one) for the
    customer, at the version current now (the run pins it)."""
    actor.require(Role.EDITOR)
    workflow = await workflows.resolve_key(session, workflow_key)
    if workflow is None:
        raise NotFound("no such workflow", path="input.workflowKey")
    try:
        customer = await customers.get(session, customer_id)
    except CustomerNotFound as exc:
        raise CustomerNotFound(path="input.customerId") from exc
    values = _variables(workflow.config, variables)
    if await repository.active_for(session, customer.id, workflow.key) is not None:
        raise RunAlreadyActive("this customer already has an active run of this workflow",
                               path="input.workflowKey")
    try:  # (a violation aborts the transaction: the caller undoes it, as in _save)
        work = await engine.start(
            session, actor, workflow_id=workflow.id, workflow_key=workflow.key,
            version=workflow.latest_version, config=workflow.config,
            customer_id=customer.id, variables=values, trigger=trigger,
            parent_run_id=parent_run_id,
            renewal_date=renewal_date or customer.renewal_date, advance=advance)
        await engine.save(work)
    except asyncpg.UniqueViolationError as exc:  # a concurrent start won the race
        raise RunAlreadyActive("this customer already has an active run of this workflow",
                               path="input.workflowKey") from exc
    return work.run


def _variables(config: dict[str, Any], given: Any) -> dict[str, Any]:
    return variables.resolve(config.get("variables"), given)


def _waiting_step(work: Work) -> tuple[dict[str, Any], RunStep]:
    run = work.run
    step = work.step_config(run.current_step_id)
    record = work.steps.get(run.current_step_id or "")
    if run.status != RunStatus.WAITING or step is None or record is None \
            or record.status != StepStatus.WAITING:
        raise WrongState(f"the run is {run.status}, not waiting for a choice", path="runId")
    return step, record


async def choose_branch(session: AsyncSession, actor: Actor, run_id: UUID | str,
                        branch_id: str) -> Run:
    actor.require(Role.EDITOR)
    work = await engine.load(session, actor, _run_id(run_id), customer=True)
    step, record = _waiting_step(work)
    if step.get("type") == "approval":
        raise WrongState("this step waits for an approval (approveStep)", path="runId")
    branch = next((b for b in step.get("chatBranches") or []
                   if isinstance(b, dict) and b.get("id") == branch_id), None)
    if branch is None:
        raise InvalidBranch(f"step {record.step_id!r} has no branch {branch_id!r}",
                            path="branchId")
    kind = branch.get("type")
    if kind in ("llm", "rag"):
        raise InvalidBranch("chat branches are used through sendChatMessage", path="branchId")
    # A choice ends a snooze: its timer must not move the run later.
    engine.cancel_timers(work, await work.pending_timers())
    work.emit("branch_chosen", record.step_id, branchId=branch_id, type=kind,
              by=str(actor.user_id) if actor.user_id else None)
    if kind == "fixed":
        await actions.choose_fixed(work, step, record, branch)
    else:
        await actions.run_saved_action(work, step, record, branch)
    await _save(work)
    return work.run


async def approve(session: AsyncSession, actor: Actor, run_id: UUID | str, *, approved: bool,
                  comment: str | None = None) -> Run:
    """The rendered approver (or an admin) decides. A rejection follows the step's
    `routing.rejectRoute` when it has one, else the run fails."""
    actor.require(Role.EDITOR)
    work = await engine.load(session, actor, _run_id(run_id), customer=True)
    step, record = _waiting_step(work)
    if step.get("type") != "approval":
        raise WrongState("this step waits for a choice, not an approval", path="runId")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise DomainError(f"at most {MAX_COMMENT} characters", path="comment", code="TOO_LONG")
    approver = str((record.input or {}).get("approver", ""))
    email = await _email(session, actor)
    if actor.role != Role.ADMIN and (not email or email.lower() != approver.lower()):
        raise NotApprover(f"only {approver or 'the approver'} or an admin can decide",
                          path="runId")
    decision = {"approved": approved, "by": email, "comment": comment or None}
    engine.cancel_timers(work, await work.pending_timers())
    if approved:
        work.emit("approval_granted", record.step_id, **decision)
        engine.complete_step(work, record, decision)
        await engine.go_to(work, default_next(step))
    else:
        work.emit("approval_rejected", record.step_id, **decision)
        routing: dict[str, Any] = step["routing"] if isinstance(step.get("routing"),
                                                                dict) else {}
        reject_to = routing.get("rejectRoute")
        if isinstance(reject_to, str):
            engine.complete_step(work, record, decision)
            await engine.go_to(work, reject_to)
        else:
            engine.fail_run(work, f"rejected by {email or 'an admin'}"
                            + (f": {comment}" if comment else ""),
                            code="APPROVAL_REJECTED", record=record)
    await _save(work)
    return work.run


async def _email(session: AsyncSession, actor: Actor) -> str | None:
    if actor.user_id is None:
        return None
    user = await users_repository.get(session, actor.user_id)
    return user.email if user else None


async def pause(session: AsyncSession, actor: Actor, run_id: UUID | str) -> Run:
    """Takes effect at the next step boundary; timers that come due meanwhile wait."""
    actor.require(Role.EDITOR)
    work = await engine.load(session, actor, _run_id(run_id))
    if work.run.status not in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING):
        raise WrongState(f"a {work.run.status} run cannot be paused", path="runId")
    work.run.paused_status = work.run.status
    work.run.status = RunStatus.PAUSED.value
    work.emit("run_paused", work.run.current_step_id,
              by=str(actor.user_id) if actor.user_id else None)
    await _save(work)
    return work.run


async def resume(session: AsyncSession, actor: Actor, run_id: UUID | str) -> Run:
    actor.require(Role.EDITOR)
    work = await engine.load(session, actor, _run_id(run_id))
    if work.run.status != RunStatus.PAUSED:
        raise WrongState(f"a {work.run.status} run is not paused", path="runId")
    work.run.status = work.run.paused_status or RunStatus.RUNNING.value
    work.run.paused_status = None
    work.emit("run_resumed", work.run.current_step_id,
              by=str(actor.user_id) if actor.user_id else None)
    if work.run.status == RunStatus.PENDING:
        await engine.begin(work)
    elif not await engine.continue_pending(work):
        await catch_up(work)
    await _save(work)
    return work.run


async def catch_up(work: Work) -> None:
    """What waited during a pause: a timer that came due, or queued I/O to nudge again."""
    due = [t for t in await work.pending_timers()
           if t.fire_at <= work.now]
    if due:
        timer = due[0]
        engine.cancel_timers(work, due[1:])
        await fire(work, timer)
        return
    record = work.steps.get(work.run.current_step_id or "")
    # Only a queued step: a running one has its job (it ignores the pause, the step having
    # begun before it; a worker that died holding it is recovered), and a second job would
    # call the model again.
    if record is not None and record.status == StepStatus.QUEUED \
            and work.run.status == RunStatus.RUNNING:
        work.defer(work.step_job(record.step_id, record.attempts))


async def fire(work: Work, timer: Any) -> None:
    """A resume timer came due: back into the flow at its step."""
    await repository.set_timer_status(work.session, [timer.id], "fired", now=work.now)
    return_to = timer.payload.get("returnToStep")
    work.emit("timer_fired", work.run.current_step_id, timerId=str(timer.id),
              reason=timer.payload.get("reason"), returnToStep=return_to)
    await engine.go_to(work, return_to if isinstance(return_to, str)
                       else work.run.current_step_id)


async def cancel(session: AsyncSession, actor: Actor, run_id: UUID | str) -> Run:
    """Ends the run: its timers and undelivered notifications are dropped."""
    actor.require(Role.EDITOR)
    work = await engine.load(session, actor, _run_id(run_id))
    if work.run.status not in ACTIVE:
        raise WrongState(f"a {work.run.status} run cannot be cancelled", path="runId")
    engine.cancel_timers(work, await work.pending_timers())
    dropped = await notifications.drop_undelivered(session, work.run.id,
                                                   reason="the run was cancelled", now=work.now)
    record = work.steps.get(work.run.current_step_id or "")
    if record is not None and record.status not in (StepStatus.COMPLETED, StepStatus.FAILED,
                                                    StepStatus.SKIPPED):
        record.status = StepStatus.CANCELLED.value
        record.finished_at = work.now
        work.dirty.add(record.step_id)
    work.run.status = RunStatus.CANCELLED.value
    work.run.finished_at = work.now
    work.run.paused_status = None
    work.emit("run_cancelled", work.run.current_step_id, droppedNotifications=len(dropped),
              by=str(actor.user_id) if actor.user_id else None)
    await _save(work)
    return work.run


async def retry_step(session: AsyncSession, actor: Actor, run_id: UUID | str,
                     step_id: str) -> Run:
    """Run a failed step again; earlier steps keep their outputs (no second LLM call)."""
    actor.require(Role.EDITOR)
    work = await engine.load(session, actor, _run_id(run_id), steps=(step_id,))
    record = work.steps.get(step_id)
    if work.run.status != RunStatus.FAILED:
        raise WrongState(f"a {work.run.status} run has no failed step to retry", path="runId")
    if record is None or record.status != StepStatus.FAILED:
        raise WrongState(f"step {step_id!r} has not failed", path="stepId")
    work.run.status = RunStatus.RUNNING.value
    work.run.error = None
    work.run.finished_at = None
    work.emit("run_retried", step_id, by=str(actor.user_id) if actor.user_id else None)
    await engine.go_to(work, step_id)
    await _save(work)
    return work.run


# Reads


def _run_id(value: UUID | str) -> UUID:
    try:
        return parse_id(value, path="runId")
    except NotFound as exc:
        raise RunNotFound() from exc


async def get(session: AsyncSession, run_id: UUID | str) -> Run | None:
    try:
        parsed = _run_id(run_id)
    except RunNotFound:
        return None
    return await repository.get(session, parsed)


async def view(session: AsyncSession, run_id: UUID | str, *, steps: bool = False,
               events: tuple[int, int] | None = None, notifications: bool = False,
               workflow: bool = False, customer: bool = False) -> repository.RunView | None:
    """`get` with the parts a reader shows beside the run, in one round trip; `events` is
    (after_seq, limit), bounded as `events` bounds them."""
    try:
        parsed = _run_id(run_id)
    except RunNotFound:
        return None
    bounded = None if events is None else (max(events[0], 0), min(max(events[1], 1), 1000))
    return await repository.view(session, parsed, steps=steps, events=bounded,
                                 notifications=notifications, workflow=workflow,
                                 customer=customer)


async def get_many(session: AsyncSession, run_ids: Sequence[UUID]) -> list[Run]:
    return await repository.get_many(session, run_ids)


async def steps_of(session: AsyncSession, run_ids: Sequence[UUID]) -> list[RunStep]:
    return await repository.steps_many(session, run_ids)


async def events(session: AsyncSession, run_id: UUID, *, after_seq: int = 0,
                 limit: int = 1000) -> list[RunEvent]:
    return await repository.events(session, run_id, after_seq=max(after_seq, 0),
                                   limit=min(max(limit, 1), 1000))


async def page(session: AsyncSession, spec: RunFilter, *, first: int | None,
               after: str | None) -> Page[Run]:
    size = page_size(first)
    position: tuple[datetime, UUID] | None = None
    cursor = decode_cursor(after, kinds=("datetime", "uuid"))
    if cursor is not None:
        position = (cursor[0], cursor[1])
    rows, total = await repository.page(session, spec, limit=size + 1, after=position)
    items = rows[:size]
    return Page(items=items, cursors=[encode_cursor([r.created_at.isoformat(), str(r.id)])
                                      for r in items],
                has_next=len(rows) > size, total=total, has_previous=position is not None)
