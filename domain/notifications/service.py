"""Notifications at run time: rendered into the outbox in the step's own transaction.

A step's notifications fire when the step is entered; those with `actionTriggered` fire
when a branch triggers that action; those with a `schedule` are written as scheduled and
released at that moment in the tenant's time zone (dropped if the run has ended by then).
Delivery is a job per notification (domain/notifications/delivery.py), through the channel
the tenant configured for its type, as enabled and prioritised for the workflow.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.context.dates import schedule_moment
from domain.jobs import service as jobs
from domain.jobs.models import DELIVER, Job
from domain.notifications import repository
from domain.notifications.models import PRIORITIES, Channel, Notification
from domain.templating.notifications import render_notification_off_loop

# in_app needs no configuration: the inbox is part of Stepwise.
IMPLICIT = frozenset({"in_app"})


def choose_channel(kind: str, channels: Sequence[Channel],
                   settings: Mapping[UUID, tuple[bool, int]]) -> Channel | None:
    """The enabled channel of this type with the highest priority for the workflow."""
    usable = []
    for candidate in channels:
        enabled, priority = settings.get(candidate.id, (candidate.enabled, 0))
        if candidate.type == kind and candidate.enabled and enabled:
            usable.append((-priority, candidate.name, candidate))
    return min(usable, key=lambda item: item[:2])[2] if usable else None


class Firing:
    """The notifications one transaction fires for one run (channels loaded once)."""

    def __init__(self, session: AsyncSession, *, tenant_id: UUID, run_id: UUID,
                 workflow_key: str, now: datetime) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.workflow_key = workflow_key
        self.now = now
        self.rows: list[Notification] = []
        self._channels: tuple[list[Channel], dict[UUID, tuple[bool, int]]] | None = None

    async def _routing(self) -> tuple[list[Channel], dict[UUID, tuple[bool, int]]]:
        if self._channels is None:
            found = await repository.channels(self.session)
            settings = {s.channel_id: (s.enabled, s.priority) for s in
                        await repository.workflow_channels(self.session, self.workflow_key)}
            self._channels = (found, settings)
        return self._channels

    async def fire(self, step_id: str, notifications: Any, context: Mapping[str, Any], *,
                   action: str | None = None, renewal: date | None = None,
                   time_zone: str | None = None) -> list[Notification]:
        """Render and queue the step's notifications for this moment: on entry (action None)
        those without `actionTriggered`, or those triggered by `action`."""
        fired: list[Notification] = []
        for index, config in enumerate(notifications if isinstance(notifications, list) else []):
            if not isinstance(config, Mapping):
                continue
            triggered_by = config.get("actionTriggered")
            if (action is None and triggered_by) or (action is not None
                                                      and triggered_by != action):
                continue
            rendered = await render_notification_off_loop(config, context, step_id=step_id,
                                                          path=f"$.notifications[{index}]")
            if not rendered.condition_met and not rendered.problems:
                continue
            kind = rendered.type or "in_app"
            status, error, deliver_at = "pending", None, None
            if rendered.problems:
                status, error = "failed", "; ".join(p.message for p in rendered.problems)[:500]
            schedule = config.get("schedule")
            if status == "pending" and isinstance(schedule, Mapping):
                deliver_at = schedule_moment(schedule, renewal, time_zone)
                if deliver_at is None:
                    status, error = "dropped", "the customer has no renewal date to schedule by"
                elif deliver_at > self.now:
                    status = "scheduled"
            channel: Channel | None = None
            if status in ("pending", "scheduled") and kind not in IMPLICIT:
                channels, settings = await self._routing()
                channel = choose_channel(kind, channels, settings)
                if channel is None:
                    status, error = "dropped", f"no enabled {kind} channel for this workflow"
            row = Notification(
                tenant_id=self.tenant_id, id=uuid.uuid4(), run_id=self.run_id, step_id=step_id,
                notification_id=rendered.notification_id, channel=kind,
                channel_id=channel.id if channel else None,
                priority=str(config.get("priority") or "normal"),
                title=rendered.title or "", message=rendered.message or "",
                recipients=rendered.recipients,
                reason="action" if action else ("schedule" if schedule else "step"),
                status=status, deliver_at=deliver_at, last_error=error)
            fired.append(row)
        self.rows += fired
        return fired

    async def flush(self) -> None:
        """Write the outbox rows and defer one delivery job per deliverable one."""
        await repository.insert(self.session, self.rows)
        await jobs.defer(self.session, *(delivery_job(row) for row in self.rows
                                          if row.status == "pending"))
        self.rows = []


def delivery_job(row: Notification) -> Job:
    return Job(DELIVER, row.tenant_id, {"notification_id": str(row.id)},
               queueing_lock=f"deliver:{row.id}", priority=PRIORITIES.get(row.priority, 1))


async def drop_undelivered(session: AsyncSession, run_id: UUID, *, reason: str,
                           now: datetime) -> list[UUID]:
    return await repository.drop_undelivered(session, run_id, reason=reason, now=now)


async def for_runs(session: AsyncSession, run_ids: Sequence[UUID]) -> list[Notification]:
    return await repository.for_runs(session, run_ids)
