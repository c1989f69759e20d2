"""Runs of a pinned workflow version, their per-step records, events and timers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED})
FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepStatus(StrEnum):
    QUEUED = "queued"        # waiting for the worker (I/O steps, script actions)
    RUNNING = "running"      # the worker is on it
    WAITING = "waiting"      # waiting for a person (a branch choice, an approval, a timer)
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


@dataclass
class Run:
    """A run as loaded for work (mutable: the engine changes it, the repository saves it)."""

    tenant_id: UUID
    id: UUID
    workflow_id: UUID
    workflow_key: str
    workflow_version: int
    customer_id: UUID
    status: str
    current_step_id: str | None
    variables: dict[str, Any]
    context: dict[str, Any]
    trigger: str
    started_by: UUID | None
    parent_run_id: UUID | None
    renewal_date: date | None
    paused_status: str | None
    error: str | None
    next_seq: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass
class RunStep:
    tenant_id: UUID
    run_id: UUID
    step_id: str
    step_type: str
    status: str
    attempts: int = 0
    input: Any = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RunEvent:
    tenant_id: UUID
    run_id: UUID
    seq: int
    type: str
    step_id: str | None
    payload: dict[str, Any]
    at: datetime


@dataclass
class RunTimer:
    tenant_id: UUID
    id: UUID
    run_id: UUID
    kind: str
    fire_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    fired_at: datetime | None = None


@dataclass(frozen=True)
class RunFilter:
    statuses: tuple[str, ...] = ()
    workflow_key: str | None = None
    customer_id: UUID | None = None
