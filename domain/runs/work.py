"""The run engine's work for the worker: each function is one job, idempotent.

A job is a nudge; the state it acts on lives in our tables and is re-checked under the
run's row lock, so a job retried after a crash (or sent twice) never repeats an effect that
already committed. I/O (the LLM, a webhook) happens between two transactions, never inside
one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.runs import engine, repository, service, steps
from domain.runs.engine import Work, default_next
from domain.runs.models import RunStatus, StepStatus
from domain.runs.steps import STEP_TYPES, IOStepType
from domain.shared import clock
from domain.shared.db import Database
from domain.shared.errors import DomainError
from domain.usage import service as usage
from domain.usage.errors import BudgetExceeded

log = logging.getLogger("stepwise.runs")


def _wait_for_budget(work: Work, record: Any, attempt: int, error: BudgetExceeded) -> None:
    """The step stays queued and asks again later (an admin may raise the budget)."""
    work.defer(work.step_job(record.step_id, attempt,
                             scheduled_at=datetime.now(UTC) + usage.retry_after()))
    work.emit("step_waiting", record.step_id, waitingFor="budget", code=error.code,
              message=error.message)


def _io_step(work: Work, step_id: str, attempt: int, *, statuses: tuple[str, ...]
             ) -> tuple[dict[str, Any], IOStepType] | None:
    """The step's config and handler if the job still applies (same attempt, same state)."""
    record = work.steps.get(step_id)
    step = work.step_config(step_id)
    handler = STEP_TYPES.get(str(step.get("type"))) if step else None
    if (record is None or step is None or not isinstance(handler, IOStepType)
            or record.attempts != attempt or record.status not in statuses
            or work.run.current_step_id != step_id):
        return None
    return step, handler


async def _start(db: Database, tenant_id: UUID, run_id: UUID, step_id: str, attempt: int
                 ) -> tuple[dict[str, Any], IOStepType, UUID | None] | str:
    """A step queued without being started (its tenant was over budget, or the run was
    resumed): start it here, in a transaction of its own. The request, handler and
    reservation, or the job's outcome if there is nothing to call."""
    async with db.transaction(tenant_id) as tx:
        work = await engine.load(tx.session, tx.acting, run_id, path=None, steps=(step_id,))
        found = _io_step(work, step_id, attempt, statuses=(StepStatus.QUEUED,
                                                           StepStatus.RUNNING))
        if found is None or work.run.status != RunStatus.RUNNING:
            return "stale"  # cancelled, paused, retried or already done meanwhile
        step, handler = found
        record = work.steps[step_id]
        try:
            started = await steps.start_io(work, step, record, handler)
        except BudgetExceeded as error:
            _wait_for_budget(work, record, attempt, error)
            await engine.save(work)
            return "budget_exceeded"
        await engine.save(work)
    if started is None:
        return "failed"
    return started.request, handler, started.reservation


async def _started(db: Database, tenant_id: UUID, run_id: UUID, step_id: str, attempt: int,
                   reservation: UUID | None
                   ) -> tuple[dict[str, Any], IOStepType, UUID | None] | str:
    """A step the transaction that entered it started: its request, read without a lock
    (the finishing transaction checks again under it), if the job still applies."""
    found = await repository.io_request(db, tenant_id, run_id, step_id)
    handler = STEP_TYPES.get(found.step_type) if found else None
    if (found is not None and isinstance(handler, IOStepType) and found.attempts == attempt
            and found.status == StepStatus.RUNNING and found.current_step_id == step_id
            and found.run_status in (RunStatus.RUNNING, RunStatus.PAUSED)):
        return dict(found.input or {}), handler, reservation
    if reservation is not None:  # cancelled or retried before the call: nothing was spent
        async with db.transaction(tenant_id) as tx:
            await usage.release(tx.session, tenant_id, reservation, now=clock.now())
    return "stale"


async def execute_step(db: Database, tenant_id: UUID, run_id: UUID, step_id: str,
                       attempt: int, *, started: bool = False,
                       reservation: UUID | None = None) -> str:
    """An I/O step: started (by the transaction that entered it, else here), performed
    outside any transaction, then finished and advanced in a new one."""
    if started:
        ready = await _started(db, tenant_id, run_id, step_id, attempt, reservation)
    else:
        ready = await _start(db, tenant_id, run_id, step_id, attempt)
    if isinstance(ready, str):
        return ready
    request, handler, reservation = ready
    outcome: Any
    failure: DomainError | None = None
    try:
        outcome = await handler.perform(request, db=db, tenant_id=tenant_id)
    except DomainError as error:
        failure, outcome = error, None
    spent = outcome.get("usage") if isinstance(outcome, dict) else None
    async with db.transaction(tenant_id) as tx:
        work = await engine.load(tx.session, tx.acting, run_id, path=None, steps=(step_id,))
        found = _io_step(work, step_id, attempt, statuses=(StepStatus.RUNNING,))
        stale = found is None or work.run.status not in (RunStatus.RUNNING, RunStatus.PAUSED)
        # What the call cost counts even if the step is stale: settled with the run's save
        # (the same statement), else on its own.
        if reservation is not None and spent is not None:
            model = str(outcome.get("model") or "")
            if stale:
                await usage.settle(tx.session, tenant_id, reservation, model=model,
                                   usage=spent, now=work.now)
            else:
                work.settlement = usage.settlement(tenant_id, reservation, model=model,
                                                   usage=spent, now=work.now)
        elif reservation is not None:
            await usage.release(tx.session, tenant_id, reservation, now=work.now)
        if found is None or stale:
            return "stale"
        step, handler = found
        record = work.steps[step_id]
        if failure is not None:
            engine.fail_run(work, failure.message, code=failure.code, record=record)
        else:
            target = await handler.finish(work, step, record, outcome)
            if not isinstance(target, engine.Wait):
                await engine.go_to(work, target)
        await engine.save(work)
    return "failed" if failure else "done"


async def call_webhook(db: Database, tenant_id: UUID, run_id: UUID, step_id: str,
                       attempt: int, *, call: Callable[[bytes], Awaitable[None]],
                       body: dict[str, Any], final: bool) -> str:
    """A script action: `call` posts the signed body (raising on failure); on success the
    run resumes at the branch's returnToStep; after the last failed attempt (`final`) the
    step waits for another choice."""
    import json

    async with db.transaction(tenant_id) as tx:
        work = await engine.load(tx.session, tx.acting, run_id, path=None, steps=(step_id,))
        record = work.steps.get(step_id)
        if (record is None or record.attempts != attempt or record.status != StepStatus.RUNNING
                or work.run.current_step_id != step_id or not work.run.active):
            return "stale"
    error: str | None = None
    try:
        await call(json.dumps(body, separators=(",", ":"), default=str).encode())
    except Exception as exc:  # any transport failure: retried by the job, then reported
        error = f"{type(exc).__name__}: {exc}"[:300]
        if not final:
            raise
    async with db.transaction(tenant_id) as tx:
        work = await engine.load(tx.session, tx.acting, run_id, path=None, steps=(step_id,))
        record = work.steps.get(step_id)
        if record is None or record.attempts != attempt or record.status != StepStatus.RUNNING:
            return "stale"
        record.input = {k: v for k, v in (record.input or {}).items() if k != "pendingAction"}
        from domain.runs import actions

        if error is None:
            work.emit("action_completed", step_id, actionId=body.get("actionId"))
            if work.run.status == RunStatus.PAUSED:
                work.run.context = {**work.run.context,
                                    engine.PENDING_NEXT: body.get("returnToStep") or step_id}
            else:
                await actions.resume_at(work, record, body.get("returnToStep"))
        else:
            work.emit("action_failed", step_id, actionId=body.get("actionId"), error=error)
            await actions.resume_at(work, record, None)
        await engine.save(work)
    return "failed" if error else "done"


async def fire_timer(db: Database, tenant_id: UUID, timer_id: UUID) -> str:
    """A due resume timer (a snooze ending). A paused run's timer waits for the resume."""
    async with db.transaction(tenant_id) as tx:
        timer = await repository.lock_timer(tx.session, timer_id)
        if timer is None or timer.status != "pending":
            return "stale"
        work = await engine.load(tx.session, tx.acting, timer.run_id, path=None)
        if timer.fire_at > work.now:
            return "not_due"
        if work.run.status == RunStatus.PAUSED:
            return "paused"
        if not work.run.active:
            engine.cancel_timers(work, [timer])
            await engine.save(work)
            return "stale"
        await service.fire(work, timer)
        await engine.save(work)
    return "fired"


async def begin_pending(db: Database, tenant_id: UUID, run_id: UUID) -> str:
    """A run the renewal scan created: enter its first step."""
    async with db.transaction(tenant_id) as tx:
        work = await engine.load(tx.session, tx.acting, run_id, path=None)
        if work.run.status != RunStatus.PENDING:
            return "stale"
        await engine.begin(work)
        await engine.save(work)
    return "started"


__all__ = ["begin_pending", "call_webhook", "default_next", "execute_step", "fire_timer"]
