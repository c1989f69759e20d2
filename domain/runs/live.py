"""What the live stream of a run is: its topic (as migration 0007 notifies it) and its end."""

from __future__ import annotations

from uuid import UUID

from domain.runs.models import Run, RunEvent

FINAL_EVENTS = frozenset({"run_completed", "run_failed", "run_cancelled"})
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def topic(tenant_id: UUID, run_id: UUID) -> str:
    return f"run:{tenant_id}:{run_id}"


def is_final(event: RunEvent) -> bool:
    return event.type in FINAL_EVENTS


def is_over(run: Run, after_seq: int) -> bool:
    """The run has ended and the subscriber has seen its last event already."""
    return run.status in FINAL_STATUSES and run.next_seq - 1 <= after_seq
