"""The registry of server-side code a saved action may name; tenants never upload code.

A handler checks an action's config and turns it into an effect; the run engine applies the
effect (pause the run, skip the step, start another run, call the tenant's webhook).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from domain.shared.errors import Problem

ACTION_TYPES = ("snooze", "skip", "escalation", "script")


@dataclass(frozen=True)
class Snooze:
    days: int


@dataclass(frozen=True)
class Skip:
    pass


@dataclass(frozen=True)
class Escalate:
    workflow_key: str
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CallWebhook:
    url: str
    timeout_seconds: int = 10


Effect = Snooze | Skip | Escalate | CallWebhook


def _allowed(config: dict[str, Any], path: str, names: set[str]) -> list[Problem]:
    return [Problem("UNKNOWN_FIELD", f"'{name}' is not a setting of this action", f"{path}.{name}")
            for name in sorted(set(config) - names)]


def _check_snooze(config: dict[str, Any], path: str) -> list[Problem]:
    days = config.get("days")
    problems = _allowed(config, path, {"days"})
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        problems.append(Problem("INVALID_VALUE", "days must be a whole number from 1 to 365",
                                f"{path}.days"))
    return problems


def _check_skip(config: dict[str, Any], path: str) -> list[Problem]:
    return _allowed(config, path, set())


def _check_escalate(config: dict[str, Any], path: str) -> list[Problem]:
    problems = _allowed(config, path, {"workflowKey", "recipients"})
    if not isinstance(config.get("workflowKey"), str) or not config["workflowKey"]:
        problems.append(Problem("REQUIRED", "an escalation names the workflow it starts",
                                f"{path}.workflowKey"))
    recipients = config.get("recipients", [])
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        problems.append(Problem("INVALID_TYPE", "recipients must be a list of strings",
                                f"{path}.recipients"))
    return problems


def _check_webhook(config: dict[str, Any], path: str) -> list[Problem]:
    problems = _allowed(config, path, {"url", "timeoutSeconds"})
    url = config.get("url")
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme != "https" or not parsed.hostname:
        problems.append(Problem("INVALID_URL", "a script action calls an https:// webhook URL",
                                f"{path}.url"))
    timeout = config.get("timeoutSeconds", 10)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 30:
        problems.append(Problem("INVALID_VALUE", "timeoutSeconds must be from 1 to 30",
                                f"{path}.timeoutSeconds"))
    return problems


@dataclass(frozen=True)
class Handler:
    name: str
    action_type: str
    check: Callable[[dict[str, Any], str], list[Problem]]
    plan: Callable[[dict[str, Any]], Effect]


REGISTRY: dict[str, Handler] = {h.name: h for h in (
    Handler("code:snooze", "snooze", _check_snooze, lambda c: Snooze(days=int(c["days"]))),
    Handler("code:skip", "skip", _check_skip, lambda c: Skip()),
    Handler("code:escalate", "escalation", _check_escalate,
            lambda c: Escalate(workflow_key=c["workflowKey"],
                               recipients=list(c.get("recipients", [])))),
    Handler("code:webhook", "script", _check_webhook,
            lambda c: CallWebhook(url=c["url"], timeout_seconds=int(c.get("timeoutSeconds", 10)))),
)}
DEFAULT_HANDLER = {h.action_type: h.name for h in REGISTRY.values()}


def check(action_type: str, handler: str | None, config: dict[str, Any], *, path: str = "input"
          ) -> list[Problem]:
    """Problems with an action's type, handler and config (paths under `path`)."""
    if action_type not in ACTION_TYPES:
        return [Problem("INVALID_ACTION_TYPE", f"type must be one of {', '.join(ACTION_TYPES)}",
                        f"{path}.type")]
    name = handler or DEFAULT_HANDLER[action_type]
    found = REGISTRY.get(name)
    if found is None:
        return [Problem("UNKNOWN_HANDLER",
                        f"{name!r} is not registered server-side code (known: "
                        f"{', '.join(sorted(REGISTRY))}); code cannot be uploaded",
                        f"{path}.handler")]
    if found.action_type != action_type:
        return [Problem("HANDLER_TYPE_MISMATCH", f"{name} handles {found.action_type} actions",
                        f"{path}.handler")]
    return found.check(config, f"{path}.config")


def plan(handler: str, config: dict[str, Any]) -> Effect:
    """The effect of running a stored action (its config was checked when it was saved)."""
    return REGISTRY[handler].plan(config)
