"""Render a workflow's notifications for a context: previews now, the run engine later.

Escaping follows the channel: an email body is HTML, so values are escaped there; Slack
text (title and message) is Slack markup, so values get Slack's escaping of `&`, `<` and
`>` (a customer named `<!channel>` neither pings nor links; the template's own text keeps
its markup); in-app and webhook text stays raw. An email subject (the title) is a mail
header, not HTML: never escaped, but line breaks become spaces (no header injection).
Recipients are addresses, never escaped: each renders to one address or a comma-separated
list (accountTeam.allEmails); the result is split, line breaks removed, trimmed,
de-duplicated (case-insensitively) and empty entries are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.shared.errors import Problem
from domain.templating.engine import Escape, TemplateError, condition_holds, off_loop, render
from domain.templating.limits import MAX_STEPS, Budget, metered

HTML_CHANNELS = frozenset({"email"})
SLACK_CHANNELS = frozenset({"slack"})
_LINE_BREAKS = re.compile(r"[\r\n\u0085\u2028\u2029]+")


def _channel(channel: str | None) -> str:
    return (channel or "").strip().lower()


def is_html(channel: str | None) -> bool:
    return _channel(channel) in HTML_CHANNELS


def slack_escape(text: str) -> str:
    """Slack's own escaping: `&`, `<` and `>` are its only control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def value_escape(channel: str | None) -> Escape | None:
    """How values are escaped in the channel's text outside HTML (None: kept raw)."""
    return slack_escape if _channel(channel) in SLACK_CHANNELS else None


def one_line(text: str) -> str:
    """A header value: every run of line breaks becomes one space."""
    return _LINE_BREAKS.sub(" ", text)


@dataclass(frozen=True)
class RenderedNotification:
    step_id: str | None
    notification_id: str | None
    type: str | None
    title: str | None
    message: str | None
    recipients: list[str]
    condition_met: bool
    problems: list[Problem] = field(default_factory=list)
    schedule: Any = None
    fires_at: datetime | None = None  # scheduled ones: when; None = when its step is entered


def notifications_of(config: Mapping[str, Any]
                     ) -> Iterator[tuple[str | None, str, Mapping[str, Any]]]:
    """(step id, JSON path, notification) for every notification, in step order."""
    steps = config.get("steps") if isinstance(config, Mapping) else None
    for s_index, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, Mapping):
            continue
        items = step.get("notifications")
        for n_index, notification in enumerate(items if isinstance(items, list) else []):
            if isinstance(notification, Mapping):
                step_id = step.get("id") if isinstance(step.get("id"), str) else None
                yield step_id, f"$.steps[{s_index}].notifications[{n_index}]", notification


def split_recipients(rendered: list[str]) -> list[str]:
    seen: set[str] = set()
    recipients: list[str] = []
    for text in rendered:
        for part in text.split(","):
            address = _LINE_BREAKS.sub("", part).strip()
            if address and address.lower() not in seen:
                seen.add(address.lower())
                recipients.append(address)
    return recipients


def _text(value: Any, context: Mapping[str, Any], path: str, problems: list[Problem],
          *, html: bool = False, escape: Escape | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem("INVALID_VALUE", "expected a template string", path))
        return None
    try:
        return render(value, context, html=html, escape=escape)
    except TemplateError as error:
        problems.append(Problem(error.code, error.message, path))
        return None


def render_notification(notification: Mapping[str, Any], context: Mapping[str, Any], *,
                        step_id: str | None = None, path: str = "$") -> RenderedNotification:
    """One notification rendered; template failures become problems, never exceptions."""
    problems: list[Problem] = []
    kind = notification.get("type") if isinstance(notification.get("type"), str) else None
    condition = notification.get("condition")
    condition_met = True
    if condition is not None:
        try:
            condition_met = isinstance(condition, str) and condition_holds(condition, context)
            if not isinstance(condition, str):
                problems.append(Problem("INVALID_VALUE", "expected a template string",
                                        f"{path}.condition"))
        except TemplateError as error:
            condition_met = False
            problems.append(Problem(error.code, error.message, f"{path}.condition"))
    escape = value_escape(kind)
    title = _text(notification.get("title"), context, f"{path}.title", problems, escape=escape)
    if title is not None and is_html(kind):
        title = one_line(title)
    message = _text(notification.get("message"), context, f"{path}.message", problems,
                    html=is_html(kind), escape=escape)
    raw = notification.get("recipients")
    rendered: list[str] = []
    for index, recipient in enumerate(raw if isinstance(raw, list) else []):
        text = _text(recipient, context, f"{path}.recipients[{index}]", problems)
        if text is not None:
            rendered.append(text)
    identifier = notification.get("id")
    return RenderedNotification(
        step_id=step_id, notification_id=identifier if isinstance(identifier, str) else None,
        type=kind, title=title, message=message, recipients=split_recipients(rendered),
        condition_met=condition_met, problems=problems,
        schedule=notification.get("schedule"),
    )


# All of a preview's templates share one budget: a config holds up to a few hundred.
PREVIEW_STEPS = 4 * MAX_STEPS


def preview(config: Mapping[str, Any], context: Mapping[str, Any]) -> list[RenderedNotification]:
    """Every notification of a workflow config rendered for the context; nothing is sent.
    Blocking and bounded as a whole: run it with `off_loop`."""
    with metered(Budget(max_steps=PREVIEW_STEPS)):
        return [render_notification(n, context, step_id=step_id, path=path)
                for step_id, path, n in notifications_of(config)]


async def render_notification_off_loop(notification: Mapping[str, Any],
                                       context: Mapping[str, Any], *,
                                       step_id: str | None = None, path: str = "$"
                                       ) -> RenderedNotification:
    """`render_notification` in a render thread, its templates sharing one budget."""

    def bounded() -> RenderedNotification:
        with metered(Budget()):
            return render_notification(notification, context, step_id=step_id, path=path)

    return await off_loop(bounded)
