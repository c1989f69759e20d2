"""Render a template or a workflow's notifications for a customer: no side effects."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.context import builder
from domain.context.dates import schedule_moment
from domain.customers.errors import CustomerNotFound
from domain.shared.errors import NotFound, Problem
from domain.templating.engine import (
    MAX_AD_HOC_LENGTH,
    TemplateError,
    off_loop,
    problems,
    render,
)
from domain.templating.notifications import RenderedNotification, preview
from domain.workflows import service as workflows


@dataclass(frozen=True)
class Rendered:
    output: str | None
    problems: list[Problem] = field(default_factory=list)


def run_context(context: Mapping[str, Any], config: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """The customer context plus the run-only roots a preview has no values for yet.

    `vars` holds the workflow's declared variable defaults; `steps` and `run` are empty.
    """
    defaults: dict[str, Any] = {}
    declared = config.get("variables") if isinstance(config, Mapping) else None
    for variable in declared if isinstance(declared, list) else []:
        if isinstance(variable, Mapping) and isinstance(variable.get("name"), str):
            defaults[variable["name"]] = variable.get("default")
    return builder.with_run(dict(context), variables=defaults)


async def render_for_customer(session: AsyncSession, template: str, customer_id: UUID | str, *,
                              html: bool = False, now: datetime | None = None,
                              lane: Hashable | None = None) -> Rendered:
    """The template rendered against the customer's context, or the problems why not.

    `lane` (the tenant): its renders queue behind each other, not ahead of other tenants'.
    The template is checked (and compiled, in the mode it renders in) before any query: a
    broken or oversized one costs no database work. Its problems do not depend on the
    customer, so they reveal nothing about other tenants' ids. The check and the render run
    in a render thread, bounded (limits.py), never on the event loop."""
    if len(template) > MAX_AD_HOC_LENGTH:  # before hashing it into a cache key
        return Rendered(None, [Problem(
            "TEMPLATE_TOO_LONG", f"templates are limited to {MAX_AD_HOC_LENGTH} characters here",
            "template")])
    found = await off_loop(problems, template, path="template", ad_hoc=True, html=html,
                           lane=lane)
    if found:
        return Rendered(None, found)
    try:
        context = await builder.build(session, customer_id, now=now)
    except CustomerNotFound as missing:
        return Rendered(None, missing.problems)
    try:
        return Rendered(await off_loop(render, template, run_context(context), html=html,
                                       ad_hoc=True, lane=lane))
    except TemplateError as error:
        return Rendered(None, [Problem(error.code, error.message, "template")])


async def notifications_for_customer(
    session: AsyncSession, config: Mapping[str, Any], customer_id: UUID | str, *,
    now: datetime | None = None, lane: Hashable | None = None,
) -> list[RenderedNotification]:
    """Every notification of `config` rendered for the customer; CustomerNotFound if hidden."""
    context = await builder.build(session, customer_id, now=now)
    return await off_loop(preview, config, run_context(context, config), lane=lane)


async def notifications_for_key(session: AsyncSession, workflow_key: str,
                                customer_id: UUID | str, *, now: datetime | None = None,
                                lane: Hashable | None = None) -> list[RenderedNotification]:
    """The notifications of the workflow the tenant resolves `workflow_key` to (its own
    shadows the core one), rendered for the customer; NotFound for either being hidden."""
    context, renewal, time_zone = await builder.build_with_renewal(session, customer_id, now=now)
    workflow = await workflows.resolve_key(session, workflow_key)
    if workflow is None:
        raise NotFound("no such workflow", path="workflowKey")
    rendered = await off_loop(preview, workflow.config, run_context(context, workflow.config),
                              lane=lane)
    return [replace(item, fires_at=schedule_moment(item.schedule, renewal, time_zone))
            if isinstance(item.schedule, Mapping) else item for item in rendered]
