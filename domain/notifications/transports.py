"""How one notification leaves Stepwise, by channel type.

Each transport either returns (delivered), raises `Retryable` (a known failure: nothing was
accepted, so trying again cannot duplicate it) or raises `Undeliverable` (a known, permanent
failure, or an unknown outcome: the receiver may have it, so at-most-once forbids a retry).
Every request carries the notification id as its idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx

from domain.notifications.models import Channel, Notification
from domain.shared.signing import IDEMPOTENCY_HEADER, signed_headers

SEND_TIMEOUT = 10.0


class Retryable(Exception):
    """Nothing was delivered; a later attempt may succeed."""


class Undeliverable(Exception):
    """Not delivered and not to be retried (permanent, or the outcome is unknown)."""


Send = Callable[[Channel, Notification], Awaitable[None]]


def payload(notification: Notification) -> dict[str, Any]:
    return {"id": str(notification.id), "runId": str(notification.run_id),
            "stepId": notification.step_id, "notificationId": notification.notification_id,
            "type": notification.channel, "priority": notification.priority,
            "title": notification.title, "message": notification.message,
            "recipients": notification.recipients}


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
                ) -> None:
    try:
        answer = await client.post(url, content=body, headers=headers, timeout=SEND_TIMEOUT)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        raise Retryable(f"could not connect: {type(error).__name__}") from None
    except httpx.HTTPError as error:  # sent, no answer: the receiver may have it
        raise Undeliverable(f"outcome unknown: {type(error).__name__}") from None
    if answer.status_code < 300:
        return
    if answer.status_code in (408, 425, 429) or answer.status_code >= 500:
        raise Retryable(f"HTTP {answer.status_code}")
    raise Undeliverable(f"HTTP {answer.status_code}")


class Transports:
    """The transports of one worker process (one HTTP client, reused)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, channel: Channel, notification: Notification) -> None:
        kind = channel.type
        if kind == "webhook":
            await self.webhook(channel, notification)
        elif kind == "slack":
            await self.slack(channel, notification)
        elif kind == "email":
            await self.email(channel, notification)
        else:
            raise Undeliverable(f"no transport for {kind}")

    async def webhook(self, channel: Channel, notification: Notification) -> None:
        body = json.dumps(payload(notification), separators=(",", ":")).encode()
        headers = signed_headers(channel.secret or "", body, timestamp=int(time.time()),
                                 idempotency_key=str(notification.id))
        await _post(self.client, str(channel.config["url"]), body, headers)

    async def slack(self, channel: Channel, notification: Notification) -> None:
        text = f"*{notification.title}*\n{notification.message}" if notification.title \
            else notification.message
        body = json.dumps({"text": text}, separators=(",", ":")).encode()
        await _post(self.client, str(channel.config["url"]), body,
                    {"Content-Type": "application/json",
                     IDEMPOTENCY_HEADER: str(notification.id)})

    async def email(self, channel: Channel, notification: Notification) -> None:
        if not notification.recipients:
            raise Undeliverable("no recipients")
        await asyncio.to_thread(_smtp_send, channel, notification)


def _smtp_send(channel: Channel, notification: Notification) -> None:
    config = channel.config
    message = EmailMessage()
    message["From"] = str(config.get("from") or "stepwise@localhost")
    message["To"] = ", ".join(notification.recipients)
    message["Subject"] = notification.title or "Stepwise"
    domain = str(config.get("from", "stepwise@localhost")).rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(idstring=str(notification.id), domain=domain)
    message["X-Stepwise-Idempotency-Key"] = str(notification.id)
    message.set_content(notification.message)
    try:
        server = smtplib.SMTP(str(config.get("host", "127.0.0.1")),
                              int(config.get("port", 25)), timeout=SEND_TIMEOUT)
    except (OSError, smtplib.SMTPException) as error:
        raise Retryable(f"could not connect: {type(error).__name__}") from None
    try:
        with server:
            if config.get("starttls"):
                server.starttls()
            if config.get("username"):
                server.login(str(config["username"]), channel.secret or "")
            server.send_message(message)
    except smtplib.SMTPResponseException as error:
        text = f"SMTP {error.smtp_code}"
        if 400 <= error.smtp_code < 500:
            raise Retryable(text) from None
        raise Undeliverable(text) from None
    except smtplib.SMTPRecipientsRefused:
        raise Undeliverable("every recipient refused") from None
    except (TimeoutError, OSError, smtplib.SMTPException) as error:
        raise Undeliverable(f"outcome unknown: {type(error).__name__}") from None
