"""Saved actions: reusable, registered server-side behaviours (snooze, skip, escalate, webhook)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlmodel import Field, SQLModel

from domain.shared.models import json_object_field, timestamp_field


class SavedAction(SQLModel, table=True):
    """A core (tenant_id NULL) or tenant action; `handler` names registered code (`code:...`)."""

    __tablename__ = "saved_actions"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID | None = None
    action_id: str
    name: str
    type: str
    handler: str
    config: dict[str, Any] = json_object_field()
    available_globally: bool = True
    is_core: bool = False
    created_by: UUID | None = None
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
