"""Channels (M17): where a tenant's notifications go, enabled and prioritised per workflow,
and the in-app inbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.notifications import repository
from domain.notifications.models import Channel, Notification, WorkflowChannel
from domain.shared import clock
from domain.shared.actor import Actor, Role
from domain.shared.errors import NotFound, Problem, ValidationFailed
from domain.shared.ids import parse_id
from domain.users.emails import is_email

CONFIGURED = ("email", "slack", "webhook")  # in_app needs no channel
MAX_SECRET = 500


def _url(value: Any, path: str, problems: list[Problem]) -> str | None:
    text = value if isinstance(value, str) else ""
    parts = urlsplit(text) if len(text) <= 2000 else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(Problem("INVALID_URL", "an http(s) URL of at most 2000 characters",
                                path))
        return None
    return text


def check_config(kind: str, given: Any, problems: list[Problem]) -> dict[str, Any]:
    """The channel's config as stored, or problems; `given` is client JSON of any type."""
    if given is not None and not isinstance(given, Mapping):
        problems.append(Problem("INVALID", "the config must be an object", "input.config"))
        return {}
    config = dict(given or {})
    if kind in ("slack", "webhook"):
        url = _url(config.get("url"), "input.config.url", problems)
        return {"url": url}
    host = config.get("host")
    if not isinstance(host, str) or not 0 < len(host) <= 255:
        problems.append(Problem("INVALID", "the SMTP host name", "input.config.host"))
    port = config.get("port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append(Problem("INVALID", "a port from 1 to 65535", "input.config.port"))
    sender = config.get("from")
    if not isinstance(sender, str) or len(sender) > 254 or not is_email(sender):
        problems.append(Problem("INVALID_EMAIL", "the sender's email address",
                                "input.config.from"))
    username = config.get("username")
    if username is not None and (not isinstance(username, str) or len(username) > 254):
        problems.append(Problem("INVALID", "at most 254 characters", "input.config.username"))
    return {"host": host, "port": port, "from": sender, "username": username,
            "starttls": bool(config.get("starttls", False))}


async def list_channels(session: AsyncSession, actor: Actor) -> list[Channel]:
    actor.require(Role.VIEWER)
    return await repository.channels(session)


async def save_channel(session: AsyncSession, actor: Actor, *, channel_id: str | None,
                       kind: str | None, name: str | None, config: Mapping[str, Any] | None,
                       secret: str | None, enabled: bool | None) -> Channel:
    """Create (no id) or update a channel; admins only. A secret left out is kept."""
    actor.require(Role.ADMIN)
    existing = None
    if channel_id is not None:
        existing = await repository.channel(session, parse_id(channel_id, path="id"))
        if existing is None:
            raise NotFound("no such channel", path="id")
        kind = existing.type
    problems: list[Problem] = []
    if kind not in CONFIGURED:
        problems.append(Problem("INVALID", f"one of {', '.join(CONFIGURED)} (in_app needs no "
                                "channel)", "input.type"))
    final_name = name if name is not None else (existing.name if existing else None)
    if not isinstance(final_name, str) or not 0 < len(final_name.strip()) <= 100:
        problems.append(Problem("INVALID", "a name of 1 to 100 characters", "input.name"))
    if secret is not None and len(secret) > MAX_SECRET:
        problems.append(Problem("INVALID", f"at most {MAX_SECRET} characters", "input.secret"))
    checked: dict[str, Any] = {}
    if kind in CONFIGURED:
        source = config if config is not None else (existing.config if existing else None)
        checked = check_config(str(kind), source, problems)
    if problems:
        raise ValidationFailed(problems)
    assert isinstance(final_name, str)
    assert kind is not None
    item = Channel(tenant_id=actor.tenant_id, id=existing.id if existing else uuid.uuid4(),
                   type=kind, name=final_name.strip(), config=checked,
                   secret=secret if secret is not None else (existing.secret if existing
                                                             else None),
                   enabled=enabled if enabled is not None else (existing.enabled if existing
                                                                else True))
    return await repository.upsert_channel(session, item, now=clock.now())


async def delete_channel(session: AsyncSession, actor: Actor, channel_id: str) -> UUID:
    actor.require(Role.ADMIN)
    found = parse_id(channel_id, path="id")
    if not await repository.delete_channel(session, found):
        raise NotFound("no such channel", path="id")
    return found


async def workflow_channels(session: AsyncSession, actor: Actor, workflow_key: str
                            ) -> list[WorkflowChannel]:
    actor.require(Role.VIEWER)
    return await repository.workflow_channels(session, workflow_key)


async def set_workflow_channels(session: AsyncSession, actor: Actor, workflow_key: str,
                                items: Sequence[Mapping[str, Any]]) -> list[WorkflowChannel]:
    """Replace which channels a workflow (by key) uses, and their priority (higher first)."""
    actor.require(Role.ADMIN)
    problems: list[Problem] = []
    if not 0 < len(workflow_key) <= 100:
        problems.append(Problem("INVALID", "a workflow key", "workflowKey"))
    known = {c.id for c in await repository.channels(session)}
    settings: list[WorkflowChannel] = []
    seen: set[UUID] = set()
    for index, item in enumerate(items[:50]):
        path = f"channels[{index}]"
        try:
            channel_id = parse_id(str(item.get("channel_id")), path=f"{path}.channelId")
        except NotFound:
            channel_id = None
        if channel_id is None or channel_id not in known:
            problems.append(Problem("NOT_FOUND", "no such channel", f"{path}.channelId"))
            continue
        if channel_id in seen:
            problems.append(Problem("DUPLICATE", "listed twice", f"{path}.channelId"))
        seen.add(channel_id)
        priority = item.get("priority", 0)
        if not isinstance(priority, int) or not -100 <= priority <= 100:
            problems.append(Problem("INVALID", "a priority from -100 to 100", f"{path}.priority"))
            continue
        settings.append(WorkflowChannel(workflow_key=workflow_key, channel_id=channel_id,
                                        enabled=bool(item.get("enabled", True)),
                                        priority=priority))
    if len(items) > 50:
        problems.append(Problem("TOO_MANY", "at most 50 channels", "channels"))
    if problems:
        raise ValidationFailed(problems)
    await repository.set_workflow_channels(session, actor.tenant_id, workflow_key, settings,
                                           now=clock.now())
    return settings


async def inbox(session: AsyncSession, actor: Actor, email: str, *, unread_only: bool,
                limit: int) -> list[Notification]:
    actor.require(Role.VIEWER)
    return await repository.inbox(session, email, unread_only=unread_only,
                                  limit=max(1, min(limit, 100)))


async def mark_read(session: AsyncSession, actor: Actor, email: str, notification_id: str
                    ) -> Notification:
    actor.require(Role.VIEWER)
    found = await repository.mark_read(session, parse_id(notification_id, path="id"), email,
                                       now=clock.now())
    if found is None:
        raise NotFound("no such notification in your inbox", path="id")
    return found
