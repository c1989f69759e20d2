"""Runs: starting and working them (the CSM's side) and reading them (the live view)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from domain.notifications.models import Notification as NotificationModel
from domain.runs.models import Run as RunModel
from domain.runs.models import RunEvent as RunEventModel
from domain.runs.models import RunFilter as FilterSpec
from domain.runs.models import RunStep as RunStepModel
from domain.shared.ids import parse_id
from resolvers import runs as resolve
from schema.context import Info
from schema.errors import UserError, attempt, query_result
from schema.relay import Connection

if TYPE_CHECKING:
    from schema.customers import Customer
    from schema.workflows import Workflow


@strawberry.type(description="One step of a run as executed (the latest attempt).")
class RunStep:
    step_id: str
    type: str
    status: str
    attempts: int
    input: JSON | None
    output: JSON | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: RunStepModel) -> RunStep:
        return cls(step_id=row.step_id, type=row.step_type, status=row.status,
                   attempts=row.attempts, input=cast(JSON, row.input),
                   output=cast(JSON, row.output), error=row.error, started_at=row.started_at,
                   finished_at=row.finished_at)


@strawberry.type(description="An entry of the run's append-only event log; seq is gapless "
                             "per run, in commit order.")
class RunEvent:
    seq: int
    type: str
    step_id: str | None
    at: datetime
    payload: JSON

    @classmethod
    def of(cls, row: RunEventModel) -> RunEvent:
        return cls(seq=row.seq, type=row.type, step_id=row.step_id, at=row.at,
                   payload=cast(JSON, row.payload))


@strawberry.type(description="A notification in the outbox; each is delivered at most once.")
class RunNotification:
    id: strawberry.ID
    step_id: str | None
    notification_id: str | None
    type: str = strawberry.field(description="The channel: in_app, email, slack or webhook.")
    priority: str
    title: str
    message: str
    recipients: list[str]
    reason: str = strawberry.field(description="step (on entry), action or schedule.")
    status: str = strawberry.field(
        description="scheduled, pending, sending, sent, failed or dropped.")
    deliver_at: datetime | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    read_at: datetime | None

    @classmethod
    def of(cls, row: NotificationModel) -> RunNotification:
        return cls(id=strawberry.ID(str(row.id)), step_id=row.step_id,
                   notification_id=row.notification_id, type=row.channel,
                   priority=row.priority, title=row.title, message=row.message,
                   recipients=list(row.recipients), reason=row.reason, status=row.status,
                   deliver_at=row.deliver_at, attempts=row.attempts,
                   last_error=row.last_error, sent_at=row.sent_at, read_at=row.read_at)


@strawberry.type
class Run:
    id: strawberry.ID
    status: str = strawberry.field(
        description="pending, running, waiting, paused, completed, failed or cancelled.")
    current_step_id: str | None
    workflow_key: str
    workflow_version: int = strawberry.field(description="The pinned version's number.")
    variables: JSON
    trigger: str = strawberry.field(description="manual, scan or escalation.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    _row: strawberry.Private[RunModel]

    @classmethod
    def of(cls, row: RunModel) -> Run:
        return cls(id=strawberry.ID(str(row.id)), status=row.status,
                   current_step_id=row.current_step_id, workflow_key=row.workflow_key,
                   workflow_version=row.workflow_version,
                   variables=cast(JSON, row.variables), trigger=row.trigger, error=row.error,
                   created_at=row.created_at, started_at=row.started_at,
                   finished_at=row.finished_at, _row=row)

    @strawberry.field
    async def workflow(self, info: Info
                       ) -> Annotated[Workflow, strawberry.lazy("schema.workflows")] | None:
        from schema.workflows import Workflow as WorkflowType

        found = await resolve.workflow(info, self._row)
        return WorkflowType.of(found) if found else None  # type: ignore[return-value]

    @strawberry.field
    async def customer(self, info: Info
                       ) -> Annotated[Customer, strawberry.lazy("schema.customers")] | None:
        from schema.customers import Customer as CustomerType

        found = await resolve.customer(info, self._row)
        return CustomerType.of(found) if found else None  # type: ignore[return-value]

    @strawberry.field(description="The run this one was escalated from.")
    async def parent_run(self, info: Info) -> Annotated[Run, strawberry.lazy("schema.runs")] | None:
        found = await resolve.parent(info, self._row)
        return Run.of(found) if found else None

    @strawberry.field
    async def steps(self, info: Info) -> list[RunStep]:
        return [RunStep.of(s) for s in await resolve.steps(info, self._row)]

    @strawberry.field(description="Events with seq > afterSeq, in order (at most `first`).")
    async def events(self, info: Info, after_seq: int = 0, first: int = 1000
                     ) -> list[RunEvent]:
        found = await resolve.events(info, self._row, after_seq=after_seq, first=first)
        return [RunEvent.of(e) for e in found]

    @strawberry.field
    async def notifications(self, info: Info) -> list[RunNotification]:
        return [RunNotification.of(n) for n in await resolve.notifications_of(info, self._row)]


@strawberry.input
class StartRunInput:
    workflow_key: str
    customer_id: strawberry.ID
    variables: JSON | None = None


@strawberry.input
class RunFilter:
    status: list[str] | None = None
    workflow_key: str | None = None
    customer_id: strawberry.ID | None = None

    def spec(self) -> FilterSpec | None:
        """None when the filter can match nothing (a malformed customer id)."""
        customer = None
        if self.customer_id is not None:
            try:
                customer = parse_id(self.customer_id, path="filter.customerId")
            except Exception:
                return None
        return FilterSpec(statuses=tuple(self.status or ()), workflow_key=self.workflow_key,
                          customer_id=customer)


@strawberry.type
class RunPayload:
    run: Run | None
    errors: list[UserError]


def _payload(found: tuple[Any, list[UserError]]) -> RunPayload:
    row, errors = found
    return RunPayload(run=Run.of(row) if row else None, errors=errors)


@strawberry.type
class Query:
    @strawberry.field(description="A run of the tenant's (null when missing or not yours).")
    async def run(self, info: Info, id: strawberry.ID) -> Run | None:
        found = await resolve.one(info, id)
        return Run.of(found) if found else None

    @strawberry.field(description="The tenant's runs, newest first.")
    async def runs(self, info: Info, first: int | None = None, after: str | None = None,
                   filter: RunFilter | None = None) -> Connection[Run]:
        spec = filter.spec() if filter else FilterSpec()
        if spec is None:
            spec = FilterSpec(statuses=("__none__",))
        chosen = spec
        page = await query_result(lambda: resolve.page(info, first=first, after=after,
                                                       spec=chosen))
        return Connection.of(page, Run.of)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start the workflow (by key: the tenant's own shadows the "
                                     "core one) for a customer; variables are checked first.")
    async def start_run(self, info: Info, input: StartRunInput) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.start(
            info, workflow_key=input.workflow_key, customer_id=input.customer_id,
            variables=input.variables)))

    @strawberry.mutation(description="The CSM's choice at a task step: a fixed branch or a "
                                     "saved action (snooze, skip, escalate, script).")
    async def choose_branch(self, info: Info, run_id: strawberry.ID, branch_id: str
                            ) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.choose(info, run_id, branch_id)))

    @strawberry.mutation(description="The approver (or an admin) decides an approval step.")
    async def approve_step(self, info: Info, run_id: strawberry.ID, approved: bool,
                           comment: str | None = None) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.approve(info, run_id, approved,
                                                                    comment)))

    @strawberry.mutation(description="Takes effect at the next step boundary.")
    async def pause_run(self, info: Info, run_id: strawberry.ID) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.pause(info, run_id)))

    @strawberry.mutation
    async def resume_run(self, info: Info, run_id: strawberry.ID) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.resume(info, run_id)))

    @strawberry.mutation(description="Timers and undelivered notifications are dropped.")
    async def cancel_run(self, info: Info, run_id: strawberry.ID) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.cancel(info, run_id)))

    @strawberry.mutation(description="Run a failed step again; earlier outputs are reused.")
    async def retry_step(self, info: Info, run_id: strawberry.ID, step_id: str) -> RunPayload:
        return _payload(await attempt(info, lambda: resolve.retry(info, run_id, step_id)))
