"""Notification channels (M17), the in-app inbox, and the script-action signing secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from domain.notifications import channels as service
from domain.notifications.models import Channel as ChannelModel
from domain.notifications.models import WorkflowChannel as WorkflowChannelModel
from domain.tenants import service as tenants
from schema.context import Info
from schema.errors import UserError, attempt, query_result
from schema.runs import RunNotification


@strawberry.type(description="Where notifications of one type go: an SMTP sender, a Slack "
                             "incoming webhook, or a signed webhook. Secrets are write-only.")
class NotificationChannel:
    id: strawberry.ID
    type: str
    name: str
    config: JSON
    enabled: bool
    has_secret: bool
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, row: ChannelModel) -> NotificationChannel:
        return cls(id=strawberry.ID(str(row.id)), type=row.type, name=row.name,
                   config=cast(JSON, row.config), enabled=row.enabled, has_secret=bool(row.secret),
                   created_at=row.created_at, updated_at=row.updated_at)


@strawberry.type(description="A channel's use by one workflow: the enabled channel of a "
                             "type with the highest priority is the one used.")
class WorkflowChannel:
    workflow_key: str
    channel_id: strawberry.ID
    enabled: bool
    priority: int

    @classmethod
    def of(cls, row: WorkflowChannelModel) -> WorkflowChannel:
        return cls(workflow_key=row.workflow_key, channel_id=strawberry.ID(str(row.channel_id)),
                   enabled=row.enabled, priority=row.priority)


@strawberry.input
class NotificationChannelInput:
    type: str | None = strawberry.field(default=None, description="email, slack or webhook "
                                                                  "(fixed once created).")
    name: str | None = None
    config: JSON | None = strawberry.field(
        default=None, description="email: {host, port, from, username?, starttls?}; slack and "
                                  "webhook: {url}.")
    secret: str | None = strawberry.field(
        default=None, description="SMTP password or webhook signing secret; omitted: kept.")
    enabled: bool | None = None


@strawberry.input
class WorkflowChannelInput:
    channel_id: strawberry.ID
    enabled: bool = True
    priority: int = 0


@strawberry.type
class NotificationChannelPayload:
    channel: NotificationChannel | None
    errors: list[UserError]


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID | None
    errors: list[UserError]


@strawberry.type
class WorkflowChannelsPayload:
    channels: list[WorkflowChannel] | None
    errors: list[UserError]


@strawberry.type
class InboxPayload:
    notification: RunNotification | None
    errors: list[UserError]


@strawberry.type
class WebhookSecretPayload:
    secret: str | None = strawberry.field(description="Shown once: store it to verify "
                                                      "X-Stepwise-Signature.")
    errors: list[UserError]


def _email(info: Info) -> str:
    user = info.context.transaction.user
    return str(user["email"]) if user else ""


def _channel_payload(found: tuple[Any, list[UserError]]) -> NotificationChannelPayload:
    row, errors = found
    return NotificationChannelPayload(channel=NotificationChannel.of(row) if row else None,
                                      errors=errors)


async def _save(info: Info, channel_id: str | None, input: NotificationChannelInput
                ) -> NotificationChannelPayload:
    config = cast(dict[str, Any] | None, input.config)
    return _channel_payload(await attempt(info, lambda: service.save_channel(
        info.context.session, info.context.actor, channel_id=channel_id, kind=input.type,
        name=input.name, config=config, secret=input.secret, enabled=input.enabled)))


@strawberry.type
class Query:
    @strawberry.field(description="The tenant's notification channels.")
    async def notification_channels(self, info: Info) -> list[NotificationChannel]:
        rows = await query_result(lambda: service.list_channels(info.context.session,
                                                                info.context.actor))
        return [NotificationChannel.of(row) for row in rows]

    @strawberry.field(description="Which channels a workflow (by key) uses.")
    async def workflow_channels(self, info: Info, workflow_key: str) -> list[WorkflowChannel]:
        rows = await query_result(lambda: service.workflow_channels(
            info.context.session, info.context.actor, workflow_key))
        return [WorkflowChannel.of(row) for row in rows]

    @strawberry.field(description="In-app notifications addressed to the caller, newest first.")
    async def inbox(self, info: Info, unread_only: bool = False, first: int = 20
                    ) -> list[RunNotification]:
        rows = await query_result(lambda: service.inbox(
            info.context.session, info.context.actor, _email(info), unread_only=unread_only,
            limit=first))
        return [RunNotification.of(row) for row in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Add a channel (admins).")
    async def create_notification_channel(self, info: Info, input: NotificationChannelInput
                                          ) -> NotificationChannelPayload:
        return await _save(info, None, input)

    @strawberry.mutation(description="Change a channel (admins); its type is fixed.")
    async def update_notification_channel(self, info: Info, id: strawberry.ID,
                                          input: NotificationChannelInput
                                          ) -> NotificationChannelPayload:
        return await _save(info, str(id), input)

    @strawberry.mutation(description="Remove a channel (admins); queued notifications for it "
                                     "are dropped at delivery.")
    async def delete_notification_channel(self, info: Info, id: strawberry.ID
                                          ) -> DeletePayload:
        found, errors = await attempt(info, lambda: service.delete_channel(
            info.context.session, info.context.actor, str(id)))
        return DeletePayload(deleted_id=strawberry.ID(str(found)) if found else None,
                             errors=errors)

    @strawberry.mutation(description="Replace the channels a workflow uses (admins).")
    async def set_workflow_channels(self, info: Info, workflow_key: str,
                                    channels: list[WorkflowChannelInput]
                                    ) -> WorkflowChannelsPayload:
        items = [{"channel_id": c.channel_id, "enabled": c.enabled, "priority": c.priority}
                 for c in channels]
        found, errors = await attempt(info, lambda: service.set_workflow_channels(
            info.context.session, info.context.actor, workflow_key, items))
        return WorkflowChannelsPayload(
            channels=[WorkflowChannel.of(row) for row in found] if found is not None else None,
            errors=errors)

    @strawberry.mutation(description="Mark an in-app notification of yours as read.")
    async def mark_notification_read(self, info: Info, id: strawberry.ID) -> InboxPayload:
        found, errors = await attempt(info, lambda: service.mark_read(
            info.context.session, info.context.actor, _email(info), str(id)))
        return InboxPayload(notification=RunNotification.of(found) if found else None,
                            errors=errors)

    @strawberry.mutation(description="A new signing secret for script actions' webhooks "
                                     "(admins); the old one stops working.")
    async def rotate_webhook_secret(self, info: Info) -> WebhookSecretPayload:
        found, errors = await attempt(info, lambda: tenants.rotate_webhook_secret(
            info.context.session, info.context.actor))
        return WebhookSecretPayload(secret=found, errors=errors)
