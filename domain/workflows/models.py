"""Workflows (tenant or core) and their config versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Column, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from domain.shared.models import timestamp_field


class Workflow(SQLModel, table=True):
    """A workflow; `tenant_id` NULL marks a core workflow every tenant reads and none writes."""

    __tablename__ = "workflows"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID | None = None
    key: str
    name: str
    description: str = ""
    version: str = "1.0.0"
    tags: list[str] = Field(default_factory=list,
                            sa_column=Column(ARRAY(Text), nullable=False,
                                             server_default=text("'{}'::text[]")))
    config: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    is_core: bool = False
    is_template: bool = False
    created_by: UUID | None = None
    cloned_from: UUID | None = None
    # Maintained by the versioning trigger, so a list needs no join to show the latest version.
    latest_version: int = 0
    latest_version_at: datetime | None = timestamp_field(nullable=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    deleted_at: datetime | None = timestamp_field(nullable=True)


class WorkflowVersion(SQLModel, table=True):
    """One config as it was; written only by the workflows trigger, tags editable."""

    __tablename__ = "workflow_versions"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    workflow_id: UUID
    tenant_id: UUID | None = None
    number: int
    config: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    changed_by: UUID | None = None
    changed_at: datetime = timestamp_field()
    change_description: str | None = None
    tags: list[str] = Field(default_factory=list,
                            sa_column=Column(ARRAY(Text), nullable=False,
                                             server_default=text("'{}'::text[]")))
