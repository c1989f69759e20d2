"""The run engine: one locked run, one transaction, the pinned version's config interpreted.

Every edge calls the same engine inside its tenant transaction (a resolver with the CSM as
Actor, a worker job with the system): `load` locks the run row, so all work on one run is
serialised and events get gapless sequence numbers (commit order is seq order); steps
advance in memory until the run waits (a person, a timer, the worker for I/O) or ends;
`save` writes the run, its step records, events, timers, outbox rows and jobs in a handful
of statements. Steps that need I/O (an LLM call) are never run here: they are queued as a
job and finished by `domain/runs/work.py` in a later transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.context import builder
from domain.jobs.models import EXECUTE_STEP, Job
from domain.notifications import service as notifications
from domain.runs import repository
from domain.runs.errors import RunNotFound
from domain.runs.models import Run, RunEvent, RunStatus, RunStep, RunTimer, StepStatus
from domain.shared import clock
from domain.shared.actor import Actor
from domain.tenants import repository as tenants_repository

# A run may pass this many steps in one transaction without waiting: a routing loop that
# never waits (allowRevisit) would otherwise spin forever.
MAX_HOPS = 100
PENDING_NEXT = "_pendingNext"  # where a paused run continues (context key)
STEPS = "steps"  # where runs once kept a copy of their step outputs (context key)
_END = "__end__"


class Wait:
    """The run stops here: it waits for a person, a timer or the worker."""


WAIT = Wait()
Next = str | None | Wait  # a step id to enter, None to end the run, or WAIT


@dataclass
class Work:
    """One transaction's work on one locked run."""

    session: AsyncSession
    actor: Actor
    run: Run
    config: dict[str, Any]
    steps: dict[str, RunStep]  # the records loaded: the current step's and those asked for
    now: datetime
    known: set[str] = field(default_factory=set)  # every step the run has a record of
    # `steps.*` of templates: each completed step's output (read with the lock from the
    # step records, so the run's row never carries a copy that every transition rewrites)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    has_timers: bool = True  # False: the run had no pending timer when loaded
    events: list[RunEvent] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    jobs: list[Job] = field(default_factory=list)
    timers: list[RunTimer] = field(default_factory=list)
    cancelled_timers: list[UUID] = field(default_factory=list)
    firing: notifications.Firing | None = None
    settlement: str | None = None  # an LLM call's ledger settlement, written with the save
    _customer: dict[str, Any] | None = None
    _found: repository.CustomerFound | None = None  # what `load` read, if asked to
    _time_zone: str | None = None

    def emit(self, event_type: str, step_id: str | None = None, /, **payload: Any) -> None:
        self.run.next_seq += 1
        self.events.append(RunEvent(tenant_id=self.run.tenant_id, run_id=self.run.id,
                                    seq=self.run.next_seq, type=event_type, step_id=step_id,
                                    payload=payload, at=self.now))

    def step_config(self, step_id: str | None) -> dict[str, Any] | None:
        for step in self.config.get("steps", []):
            if isinstance(step, dict) and step.get("id") == step_id:
                return step
        return None

    async def record(self, step_id: str, step_type: str) -> RunStep:
        """The step's record to change: loaded, read now (a step entered again), or new."""
        found = self.steps.get(step_id)
        if found is None and step_id in self.known:
            found = await repository.step(self.session, self.run.id, step_id)
        if found is None:
            found = RunStep(tenant_id=self.run.tenant_id, run_id=self.run.id, step_id=step_id,
                            step_type=step_type, status=StepStatus.QUEUED.value)
        self.steps[step_id] = found
        self.known.add(step_id)
        self.dirty.add(step_id)
        return found

    async def pending_timers(self) -> list[RunTimer]:
        """The run's pending timers (no query when the load saw none)."""
        if not self.has_timers:
            return []
        return await repository.pending_timers(self.session, self.run.id)

    def defer(self, job: Job) -> None:
        self.jobs.append(job)

    def job(self, task: str, **args: Any) -> Job:
        return Job(task, self.run.tenant_id, {"run_id": str(self.run.id), **args})

    def step_job(self, step_id: str, attempt: int, *, scheduled_at: datetime | None = None,
                 **args: Any) -> Job:
        """The worker's job for an I/O step's attempt: one queued per attempt at most."""
        return Job(EXECUTE_STEP, self.run.tenant_id,
                   {"run_id": str(self.run.id), "step_id": step_id, "attempt": attempt, **args},
                   scheduled_at=scheduled_at,
                   queueing_lock=f"step:{self.run.id}:{step_id}:{attempt}")

    async def customer_context(self) -> dict[str, Any]:
        if self._customer is None and self._found is not None:
            self._customer = builder.build_found(self._found, now=self.now)
        if self._customer is None:
            self._customer = await builder.build(self.session, self.run.customer_id,
                                                 now=self.now)
        return self._customer

    async def context(self) -> dict[str, Any]:
        """What templates see: the customer's context plus vars, steps and run (M18)."""
        return builder.with_run(await self.customer_context(), variables=self.run.variables,
                                steps=self.outputs, run=run_root(self.run))

    async def time_zone(self) -> str | None:
        tenant = self._found[1].tenant if self._found is not None else None
        if self._time_zone is None and tenant is not None:
            self._time_zone = tenant.time_zone
        if self._time_zone is None:
            found = await tenants_repository.get_many(self.session, [self.run.tenant_id])
            self._time_zone = found[0].time_zone if found else "UTC"
        return self._time_zone

    def notifier(self) -> notifications.Firing:
        if self.firing is None:
            self.firing = notifications.Firing(
                self.session, tenant_id=self.run.tenant_id, run_id=self.run.id,
                workflow_key=self.run.workflow_key, now=self.now)
        return self.firing


def run_root(run: Run) -> dict[str, Any]:
    """The `run` root of templates."""
    return {"id": str(run.id), "status": run.status, "workflowKey": run.workflow_key,
            "workflowVersion": run.workflow_version, "trigger": run.trigger,
            "startedAt": run.started_at.isoformat() if run.started_at else None,
            "parentRunId": str(run.parent_run_id) if run.parent_run_id else None}


async def load(session: AsyncSession, actor: Actor, run_id: UUID, *,
               path: str | None = "runId", steps: Sequence[str] = (),
               customer: bool = False) -> Work:
    """Lock the run and load what work on it needs (the current step's record, and those of
    `steps`); RunNotFound if it is not the tenant's. `customer`: read the customer's context
    in the same statement (work that will likely enter a step rendering a template)."""
    found = await repository.lock_with_steps(session, run_id, steps, customer=customer)
    if found is None:
        raise RunNotFound(path=path)
    config = await repository.version_config(session, found.run.workflow_id,
                                             found.run.workflow_version)
    if config is None:  # the version FK makes this impossible
        raise RunNotFound(path=path)
    run = found.run
    if STEPS in run.context:  # a run from before the outputs moved: its next save drops them
        run.context = {k: v for k, v in run.context.items() if k != STEPS}
    return Work(session=session, actor=actor, run=run, config=config, steps=found.steps,
                now=clock.now(), known=found.known, outputs=found.outputs,
                has_timers=found.has_timers, _found=found.customer)


async def save(work: Work) -> None:
    """Write everything the work changed: the run, its steps and events and its jobs in one
    statement, then timers and outbox rows if there are any."""
    session, now = work.session, work.now
    await repository.save(session, work.run, [work.steps[s] for s in sorted(work.dirty)],
                          work.events, now=now, jobs=work.jobs, settlement=work.settlement)
    work.settlement = None
    await repository.insert_timers(session, work.timers)
    await repository.set_timer_status(session, work.cancelled_timers, "cancelled", now=now)
    if work.firing is not None:
        await work.firing.flush()
    work.events, work.dirty, work.jobs, work.timers, work.cancelled_timers = [], set(), [], [], []


# Moving through steps


def default_next(step: Mapping[str, Any]) -> str | None:
    routing = step.get("routing")
    if isinstance(routing, Mapping) and isinstance(routing.get("defaultRoute"), str):
        return str(routing["defaultRoute"])
    return None


async def go_to(work: Work, step_id: str | None) -> None:
    """Enter `step_id` and keep going until the run waits or ends (None: it ends now)."""
    from domain.runs.steps import enter  # steps build on this module

    hops = 0
    target: Next = step_id
    while not isinstance(target, Wait):
        if work.run.status == RunStatus.PAUSED:
            # Pause takes effect at the step boundary: resume continues from here.
            work.run.context = {**work.run.context, PENDING_NEXT: target or _END}
            return
        if target is None:
            complete_run(work)
            return
        hops += 1
        if hops > MAX_HOPS:
            fail_run(work, f"more than {MAX_HOPS} steps without waiting (a routing loop?)",
                     code="TOO_MANY_STEPS")
            return
        target = await enter(work, target)


async def continue_pending(work: Work) -> bool:
    """After a resume: continue where a pause stopped the run, if it stopped between steps."""
    pending = work.run.context.get(PENDING_NEXT)
    if pending is None:
        return False
    work.run.context = {k: v for k, v in work.run.context.items() if k != PENDING_NEXT}
    await go_to(work, None if pending == _END else str(pending))
    return True


def set_output(work: Work, record: RunStep, output: Any) -> None:
    record.output = output
    work.outputs[record.step_id] = {"output": output, "status": record.status}


def complete_step(work: Work, record: RunStep, output: Any, **payload: Any) -> None:
    record.status = StepStatus.COMPLETED.value
    record.finished_at = work.now
    record.error = None
    work.dirty.add(record.step_id)
    set_output(work, record, output)
    work.emit("step_completed", record.step_id, **payload)


def cancel_timers(work: Work, timers: list[RunTimer]) -> None:
    work.cancelled_timers += [t.id for t in timers]


def schedule_resume(work: Work, *, fire_at: datetime, return_to: str | None,
                    reason: str) -> RunTimer:
    timer = RunTimer(tenant_id=work.run.tenant_id, id=uuid.uuid4(), run_id=work.run.id,
                     kind="resume", fire_at=fire_at,
                     payload={"returnToStep": return_to, "reason": reason})
    work.timers.append(timer)
    return timer


def _finish(work: Work, status: RunStatus) -> None:
    work.run.status = status.value
    work.run.finished_at = work.now
    work.run.paused_status = None


def complete_run(work: Work) -> None:
    _finish(work, RunStatus.COMPLETED)
    work.emit("run_completed", work.run.current_step_id)


def fail_run(work: Work, message: str, *, code: str = "STEP_FAILED",
             record: RunStep | None = None) -> None:
    if record is not None:
        record.status = StepStatus.FAILED.value
        record.error = message
        record.finished_at = work.now
        work.dirty.add(record.step_id)
        work.emit("step_failed", record.step_id, code=code, error=message)
    work.run.error = message
    _finish(work, RunStatus.FAILED)
    work.emit("run_failed", work.run.current_step_id, code=code, error=message)


async def start(session: AsyncSession, actor: Actor, *, workflow_id: UUID, workflow_key: str,
                version: int, config: dict[str, Any], customer_id: UUID,
                variables: dict[str, Any], trigger: str, parent_run_id: UUID | None = None,
                renewal_date: date | None = None, advance: bool = True) -> Work:
    """Insert the run and (unless `advance` is False: the scan leaves that to the worker)
    enter its first step."""
    now = clock.now()
    run = await repository.insert(
        session, tenant_id=actor.tenant_id, workflow_id=workflow_id, workflow_key=workflow_key,
        workflow_version=version, customer_id=customer_id, variables=variables,
        trigger=trigger, started_by=actor.user_id, parent_run_id=parent_run_id,
        renewal_date=renewal_date, now=now)
    work = Work(session=session, actor=actor, run=run, config=config, steps={}, now=now)
    work.emit("run_created", None, trigger=trigger, workflowKey=workflow_key,
              workflowVersion=version,
              startedBy=str(actor.user_id) if actor.user_id else None,
              parentRunId=str(parent_run_id) if parent_run_id else None)
    if advance:
        await begin(work)
    return work


async def begin(work: Work) -> None:
    """A pending run starts at its first step."""
    work.run.status = RunStatus.RUNNING.value
    work.run.started_at = work.now
    work.emit("run_started")
    steps = work.config.get("steps") or []
    first = steps[0].get("id") if steps and isinstance(steps[0], dict) else None
    await go_to(work, first if isinstance(first, str) else None)
