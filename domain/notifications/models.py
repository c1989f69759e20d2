"""The notification outbox and the tenant's delivery channels (M17)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

CHANNEL_TYPES = ("in_app", "email", "slack", "webhook")
PRIORITIES = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


@dataclass
class Notification:
    """One rendered notification to deliver once; its id is the idempotency key."""

    tenant_id: UUID
    id: UUID
    run_id: UUID
    step_id: str | None
    notification_id: str | None
    channel: str
    channel_id: UUID | None
    priority: str
    title: str
    message: str
    recipients: list[str]
    reason: str
    status: str
    deliver_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    sent_at: datetime | None = None
    read_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Channel:
    """Where notifications of one type go for a tenant: an SMTP sender, a Slack incoming
    webhook, a signed webhook, or the in-app inbox."""

    tenant_id: UUID
    id: UUID
    type: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class WorkflowChannel:
    """A channel's use by one workflow (by key): enabled or not, and its priority."""

    workflow_key: str
    channel_id: UUID
    enabled: bool
    priority: int
