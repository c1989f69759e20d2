"""Durable work to do: a job is a nudge to the worker, its state lives in our tables.

The domain names the work; the worker edge (worker/) maps each task name to code. The job
library never appears in domain/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

# Task names (the worker registers one function per name).
EXECUTE_STEP = "execute_step"      # an llm/query step's I/O, outside any transaction
CALL_WEBHOOK = "call_webhook"      # a script saved action
DELIVER = "deliver_notification"   # one outbox row, by its channel
START_RUN = "start_run"            # a run the renewal scan created, advanced off the scan
FIRE_TIMER = "fire_timer"          # a due run timer (a snooze ending), found by the tick
RELEASE = "release_notification"   # a due scheduled notification, found by the tick
SCAN = "scan_tenant"               # the periodic renewal scan of one tenant
CHAT_REPLY = "chat_reply"          # the model's answer to a chat message, outside any tx
CHAT_EXPIRE = "chat_expire"        # a chat thread idle too long, found by the tick
QUEUE = "stepwise"


@dataclass(frozen=True)
class Job:
    task: str
    tenant_id: UUID
    args: dict[str, Any] = field(default_factory=dict)
    scheduled_at: datetime | None = None
    queueing_lock: str | None = None
    priority: int = 0

    def payload(self) -> dict[str, Any]:
        return {"tenant_id": str(self.tenant_id), **self.args}
