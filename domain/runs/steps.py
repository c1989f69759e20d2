"""Step types: how the engine enters each kind of step, through a registry.

Kinds that need I/O (`llm`, `query`) are started in the transaction that enters them
(`prepare` renders the request, the LLM call is reserved in the ledger, the step is marked
running) and queued for the worker, which runs `perform` outside any transaction and
`finish` in a new one (domain/runs/work.py). Register a new kind with
`register(name, handler)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.runs.engine import (
    WAIT,
    Next,
    Work,
    complete_step,
    default_next,
    fail_run,
)
from domain.runs.models import RunStatus, RunStep, StepStatus
from domain.shared.errors import DomainError
from domain.templating.engine import TemplateError, condition_holds, off_loop, render
from domain.usage import service as usage
from domain.usage.errors import BudgetExceeded

if TYPE_CHECKING:
    from domain.shared.db import Database
    from domain.shared.llm import Completion


class StepType:
    """A kind of step that the engine completes (or parks) in the transaction itself."""

    io = False

    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        raise NotImplementedError


class IOStepType(StepType):
    """A kind of step whose work is I/O: queued here, done by the worker."""

    io = True
    uses_llm = False  # a model call: reserved in the ledger before, reconciled after

    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        """Queued, and started here if it can be: the worker then only calls and finishes.
        A tenant over its budget leaves the step queued (the worker waits for the budget)."""
        record.status = StepStatus.QUEUED.value
        work.run.status = RunStatus.RUNNING.value
        work.emit("step_queued", record.step_id, attempt=record.attempts)
        args: dict[str, Any] = {}
        try:
            started = await start_io(work, step, record, self)
        except BudgetExceeded:
            pass  # left queued: the worker starts it once the budget allows
        else:
            if started is None:  # its request could not be rendered: the run failed
                return WAIT
            args["started"] = True
            if started.reservation is not None:
                args["reservation"] = str(started.reservation)
        work.defer(work.step_job(record.step_id, record.attempts, **args))
        return WAIT

    async def prepare(self, work: Work, step: Mapping[str, Any], record: RunStep
                      ) -> dict[str, Any]:
        """In the transaction that starts the step: what `perform` needs (JSON-able, stored
        as the step's input)."""
        raise NotImplementedError

    async def perform(self, work_input: dict[str, Any], *, db: Database, tenant_id: UUID
                      ) -> Any:
        """Outside any transaction (`db` opens its own if the work needs one); a DomainError
        fails the step with its message."""
        raise NotImplementedError

    async def finish(self, work: Work, step: Mapping[str, Any], record: RunStep,
                     result: Any) -> Next:
        complete_step(work, record, result)
        return default_next(step)


@dataclass(frozen=True)
class Started:
    """An I/O step ready for its call: the request (also stored as the step's input) and
    the ledger reservation of the LLM call (None for kinds that call no model)."""

    request: dict[str, Any]
    reservation: UUID | None


async def start_io(work: Work, step: Mapping[str, Any], record: RunStep, handler: IOStepType
                   ) -> Started | None:
    """Render the request, reserve the call and mark the step running (event
    `step_running`). None: the request could not be rendered and the run failed; raises
    BudgetExceeded, before changing anything, if the budget cannot cover the call."""
    try:
        request = await handler.prepare(work, step, record)
    except (DomainError, TemplateError) as error:  # e.g. a prompt over the render limits
        fail_run(work, error.message, code=error.code, record=record)
        return None
    reservation = await _reserve(work, record, handler, request)
    record.status = StepStatus.RUNNING.value
    record.input = {**(record.input or {}), **request}
    work.dirty.add(record.step_id)
    work.emit("step_running", record.step_id, attempt=record.attempts)
    return Started(request, reservation)


async def _reserve(work: Work, record: RunStep, handler: IOStepType, request: dict[str, Any]
                   ) -> UUID | None:
    """The LLM call's reservation in the ledger (None for steps that call no model)."""
    if not handler.uses_llm:
        return None
    from domain.shared import llm

    call = usage.Call(
        purpose=f"{record.step_type}_step", model=llm.config().model,
        prompt_chars=len(str(request.get("system", ""))) + len(str(request.get("prompt", ""))),
        max_tokens=int(request.get("max_tokens") or 0), run_id=work.run.id,
        step_id=record.step_id, workflow_key=work.run.workflow_key,
        customer_id=work.run.customer_id)
    return await usage.reserve(work.session, work.run.tenant_id, call, now=work.now)


class ConditionalRouting(StepType):
    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        context = await work.context()
        routing: Mapping[str, Any] = step["routing"] if isinstance(step.get("routing"),
                                                                   Mapping) else {}
        target = default_next(step)
        taken = "default"
        for index, route in enumerate(routing.get("routes") or []):
            try:
                holds = await off_loop(condition_holds, str(route.get("condition", "")),
                                       context)
            except TemplateError as error:
                fail_run(work, f"route {index}: {error.message}", code=error.code,
                         record=record)
                return WAIT
            if holds:
                target, taken = route.get("next"), f"routes[{index}]"
                break
        complete_step(work, record, target, route=taken, next=target)
        return target


class NotificationStep(StepType):
    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        sent = len(step.get("notifications") or [])
        complete_step(work, record, f"{sent} notification(s) fired")
        return default_next(step)


class Task(StepType):
    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        record.status = StepStatus.WAITING.value
        work.run.status = RunStatus.WAITING.value
        branches = [b.get("id") for b in step.get("chatBranches") or [] if isinstance(b, dict)]
        work.emit("step_waiting", record.step_id, waitingFor="choice", branches=branches)
        return WAIT


class Approval(StepType):
    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        try:
            approver = (await off_loop(render, str(step.get("approver", "")),
                                       await work.context())).strip()
        except TemplateError as error:
            fail_run(work, f"approver: {error.message}", code=error.code, record=record)
            return WAIT
        record.input = {"approver": approver}
        record.status = StepStatus.WAITING.value
        work.run.status = RunStatus.WAITING.value
        work.emit("step_waiting", record.step_id, waitingFor="approval", approver=approver)
        return WAIT


_SYSTEM = (resources.files("domain.runs") / "prompts" / "step_system.txt").read_text()


def system_prompt(work_config: Mapping[str, Any], customer_context: Mapping[str, Any]) -> str:
    settings = work_config.get("context")
    base = settings.get("systemPrompt", "") if isinstance(settings, Mapping) else ""
    return _SYSTEM.format(system_prompt=base, workflow_name=work_config.get("name", ""),
                          context=json.dumps(customer_context, indent=1, default=str)).strip()


class Llm(IOStepType):
    """An LLM writes the step's output from its rendered prompt (the Anthropic SDK)."""

    uses_llm = True
    max_tokens = 1024

    async def prepare(self, work: Work, step: Mapping[str, Any], record: RunStep
                      ) -> dict[str, Any]:
        execution: Mapping[str, Any] = step["execution"] if isinstance(
            step.get("execution"), Mapping) else {}
        prompt = await off_loop(render, str(execution.get("llmPrompt") or step.get("name", "")),
                                await work.context())
        return {"system": system_prompt(work.config, await work.customer_context()),
                "prompt": prompt, "max_tokens": self.max_tokens}

    async def perform(self, work_input: dict[str, Any], *, db: Database, tenant_id: UUID
                      ) -> Any:
        completion = await _complete(work_input)
        return {"text": completion.text, "model": completion.model,
                "usage": _usage(completion)}

    async def finish(self, work: Work, step: Mapping[str, Any], record: RunStep,
                     result: Any) -> Next:
        complete_step(work, record, result["text"], model=result.get("model"),
                      usage=result.get("usage"))
        return default_next(step)


async def _complete(work_input: Mapping[str, Any]) -> Completion:
    from domain.shared import llm

    return await llm.complete(
        system=work_input["system"], max_tokens=int(work_input["max_tokens"]),
        messages=[{"role": "user", "content": work_input["prompt"]}])


def _usage(completion: Completion) -> dict[str, int]:
    return {"input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "cache_creation_input_tokens": completion.usage.cache_creation_input_tokens,
            "cache_read_input_tokens": completion.usage.cache_read_input_tokens}


class Query(IOStepType):
    """Governed NL->SQL (M12): the model writes one SELECT from the rendered prompt; it runs
    only if the guard accepts it, read-only as the query role (domain/queries)."""

    uses_llm = True

    async def prepare(self, work: Work, step: Mapping[str, Any], record: RunStep
                      ) -> dict[str, Any]:
        from domain.queries import service as queries

        execution: Mapping[str, Any] = step["execution"] if isinstance(
            step.get("execution"), Mapping) else {}
        prompt = await off_loop(render, str(execution.get("llmPrompt") or ""),
                                await work.context())
        return {"system": queries.system_prompt(), "prompt": prompt,
                "max_tokens": queries.MAX_TOKENS}

    async def perform(self, work_input: dict[str, Any], *, db: Database, tenant_id: UUID
                      ) -> Any:
        from domain.queries import service as queries
        from domain.queries.errors import QueryFailed, QueryRefused

        completion = await _complete(work_input)
        spent = {"model": completion.model, "usage": _usage(completion)}
        try:
            result = await queries.run(db, tenant_id, queries.extract_sql(completion.text))
        except (QueryRefused, QueryFailed) as error:  # the call was paid for: keep its usage
            return {**spent, "failure": {"code": error.code, "message": error.message}}
        return {**result.as_output(), **spent}

    async def finish(self, work: Work, step: Mapping[str, Any], record: RunStep,
                     result: Any) -> Next:
        failure = result.get("failure")
        if failure:
            fail_run(work, failure["message"], code=failure["code"], record=record)
            return WAIT
        output = {k: v for k, v in result.items() if k not in ("model", "usage")}
        complete_step(work, record, output, model=result.get("model"),
                      usage=result.get("usage"), rowCount=output["rowCount"])
        return default_next(step)


class Unavailable(StepType):
    """A kind this deployment cannot run yet: the run fails with a clear error."""

    def __init__(self, message: str, code: str) -> None:
        self.message = message
        self.code = code

    async def enter(self, work: Work, step: Mapping[str, Any], record: RunStep) -> Next:
        fail_run(work, self.message, code=self.code, record=record)
        return WAIT


STEP_TYPES: dict[str, StepType] = {
    "conditional_routing": ConditionalRouting(),
    "notification": NotificationStep(),
    "task": Task(),
    "approval": Approval(),
    "llm": Llm(),
    "query": Query(),
}


def register(kind: str, handler: StepType) -> None:
    """Add or replace the handler of a step kind (the NL->SQL engine registers `query`)."""
    STEP_TYPES[kind] = handler


async def enter(work: Work, step_id: str) -> Next:
    """Enter one step: its record, its entry notifications, then its kind's behaviour."""
    step = work.step_config(step_id)
    kind = step.get("type") if step else None
    handler = STEP_TYPES.get(str(kind))
    record = await work.record(step_id, str(kind or "unknown"))
    record.attempts += 1
    record.status = StepStatus.RUNNING.value
    record.started_at, record.finished_at, record.error = work.now, None, None
    work.run.current_step_id = step_id
    if work.run.status in (RunStatus.PENDING, RunStatus.WAITING):
        work.run.status = RunStatus.RUNNING.value
    work.emit("step_started", step_id, type=kind, attempt=record.attempts)
    if step is None or handler is None:
        fail_run(work, f"step {step_id!r} of type {kind!r} cannot run", code="UNKNOWN_STEP",
                 record=record)
        return WAIT
    await fire_notifications(work, step_id, step)
    if work.run.status == RunStatus.FAILED:
        return WAIT
    return await handler.enter(work, step, record)


async def fire_notifications(work: Work, step_id: str, step: Mapping[str, Any], *,
                             action: str | None = None) -> None:
    """The step's notifications for this moment (entry, or a triggered action) to the outbox."""
    configured = step.get("notifications")
    if not configured:
        return
    context = await work.context()
    renewal_text = context.get("customer", {}).get("renewalDate")
    scheduled = any(isinstance(n, Mapping) and n.get("schedule") for n in configured)
    fired = await work.notifier().fire(
        step_id, configured, context, action=action,
        renewal=date.fromisoformat(renewal_text) if renewal_text else None,
        time_zone=await work.time_zone() if scheduled else None)
    if fired:
        work.emit("notifications_fired", step_id, action=action, notifications=[
            {"id": str(n.id), "notificationId": n.notification_id, "channel": n.channel,
             "status": n.status, "deliverAt": n.deliver_at.isoformat() if n.deliver_at
             else None} for n in fired])
