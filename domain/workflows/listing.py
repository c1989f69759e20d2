"""What a workflow list asks for: filters and orderings (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class WorkflowOrder(StrEnum):
    UPDATED_AT_DESC = "UPDATED_AT_DESC"
    UPDATED_AT_ASC = "UPDATED_AT_ASC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    CREATED_AT_DESC = "CREATED_AT_DESC"

    @property
    def column(self) -> str:
        return {"UPDATED": "updated_at", "NAME": "name", "CREATED": "created_at"}[
            self.value.split("_")[0]]

    @property
    def descending(self) -> bool:
        return self.value.endswith("_DESC")


@dataclass(frozen=True)
class WorkflowFilter:
    search: str | None = None
    tags: list[str] = field(default_factory=list)
    is_core: bool | None = None
    is_template: bool | None = None
    include_deleted: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """A listed workflow: every column but the config (loaded by id when asked for)."""

    id: UUID
    tenant_id: UUID | None
    key: str
    name: str
    description: str
    version: str
    tags: list[str]
    is_template: bool
    created_by: UUID | None
    cloned_from: UUID | None
    latest_version: int
    latest_version_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


SUMMARY_COLUMNS = tuple(WorkflowSummary.__dataclass_fields__)
