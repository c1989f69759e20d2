"""What a workflow list asks for: filters and orderings (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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
