"""Resolvers for runs: thin calls into the domain, loaders for what lists show."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from strawberry.dataloader import DataLoader

from domain.customers import service as customers
from domain.customers.models import Customer
from domain.notifications import service as notifications
from domain.notifications.models import Notification
from domain.runs import service as runs
from domain.runs.models import Run, RunEvent, RunFilter, RunStep
from domain.shared.pagination import Page
from domain.workflows import service as workflows
from domain.workflows.models import Workflow
from schema.context import Info
from schema.loaders import by_key


def _grouped(context: Any, fetch: Any) -> DataLoader[UUID, list[Any]]:
    """A loader of every row of each run (steps, notifications), one query per batch."""

    async def load(keys: list[UUID]) -> list[list[Any]]:
        groups: dict[UUID, list[Any]] = defaultdict(list)
        for row in await fetch(context.session, keys):
            groups[row.run_id].append(row)
        return [groups.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


async def one(info: Info, run_id: str) -> Run | None:
    return await runs.get(info.context.session, run_id)


async def page(info: Info, *, first: int | None, after: str | None, spec: RunFilter
               ) -> Page[Run]:
    return await runs.page(info.context.session, spec, first=first, after=after)


async def steps(info: Info, run: Run) -> list[RunStep]:
    loader = info.context.loaders.get("run_steps", lambda c: _grouped(c, runs.steps_of))
    found: list[RunStep] = await loader.load(run.id)
    return found


async def notifications_of(info: Info, run: Run) -> list[Notification]:
    loader = info.context.loaders.get("run_notifications",
                                      lambda c: _grouped(c, notifications.for_runs))
    found: list[Notification] = await loader.load(run.id)
    return found


async def events(info: Info, run: Run, *, after_seq: int, first: int) -> list[RunEvent]:
    return await runs.events(info.context.session, run.id, after_seq=after_seq, limit=first)


async def workflow(info: Info, run: Run) -> Workflow | None:
    loader = info.context.loaders.get(
        "workflow", lambda c: by_key(c, lambda s, ids: workflows.get_many(s, list(ids))))
    found: Workflow | None = await loader.load(run.workflow_id)
    return found


async def customer(info: Info, run: Run) -> Customer | None:
    loader = info.context.loaders.get(
        "customer", lambda c: by_key(c, lambda s, ids: customers.get_many(s, list(ids))))
    found: Customer | None = await loader.load(run.customer_id)
    return found


async def parent(info: Info, run: Run) -> Run | None:
    if run.parent_run_id is None:
        return None
    loader = info.context.loaders.get(
        "run", lambda c: by_key(c, lambda s, ids: runs.get_many(s, list(ids))))
    found: Run | None = await loader.load(run.parent_run_id)
    return found


# Mutations (inside schema.errors.attempt: DomainErrors become payload errors)


async def start(info: Info, *, workflow_key: str, customer_id: str, variables: Any) -> Run:
    return await runs.start_run(info.context.session, info.context.actor,
                                workflow_key=workflow_key, customer_id=customer_id,
                                variables=variables)


async def choose(info: Info, run_id: str, branch_id: str) -> Run:
    return await runs.choose_branch(info.context.session, info.context.actor, run_id, branch_id)


async def approve(info: Info, run_id: str, approved: bool, comment: str | None) -> Run:
    return await runs.approve(info.context.session, info.context.actor, run_id,
                              approved=approved, comment=comment)


async def pause(info: Info, run_id: str) -> Run:
    return await runs.pause(info.context.session, info.context.actor, run_id)


async def resume(info: Info, run_id: str) -> Run:
    return await runs.resume(info.context.session, info.context.actor, run_id)


async def cancel(info: Info, run_id: str) -> Run:
    return await runs.cancel(info.context.session, info.context.actor, run_id)


async def retry(info: Info, run_id: str, step_id: str) -> Run:
    return await runs.retry_step(info.context.session, info.context.actor, run_id, step_id)
