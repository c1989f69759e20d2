"""Tenant rules: creation (operator path) and company contacts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError, NotFound, Problem, ValidationFailed
from domain.shared.limits import MAX_NAME, MAX_TIME_ZONE, bad_text, check_length
from domain.shared.models import utcnow
from domain.tenants import repository
from domain.tenants.models import CompanyContacts, Tenant
from domain.users.emails import is_email


def check_time_zone(name: str) -> str:
    """An IANA zone name; a folder of the database (`America`) or a long name is refused."""
    if len(name) > MAX_TIME_ZONE or bad_text(name):
        raise DomainError(f"unknown time zone {name[:MAX_TIME_ZONE]!r}", path="timeZone",
                          code="INVALID_TIME_ZONE")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a directory
        raise DomainError(f"unknown time zone {name!r}", path="timeZone",
                          code="INVALID_TIME_ZONE") from exc
    return name


async def create(session: AsyncSession, *, name: str, time_zone: str = "UTC",
                 tenant_id: UUID | None = None) -> Tenant:
    """Create a tenant (owner path: the app role cannot insert tenants); `tenant_id` fixes
    the id (the demo tenant), else a new one is drawn."""
    name = name.strip()
    if not name:
        raise DomainError("a tenant needs a name", path="name", code="REQUIRED")
    check_length(name, MAX_NAME, path="name", what="a name")
    tenant = Tenant(name=name, time_zone=check_time_zone(time_zone))
    if tenant_id is not None:
        tenant.id = tenant_id
    return await repository.add(session, tenant)


async def get(session: AsyncSession, tenant_id: UUID) -> Tenant | None:
    return await repository.get(session, tenant_id)


_CONTACT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_FIXED_CONTACTS = ("vpCustomerSuccess", "ceo")
_MAX_CONTACTS = 30


def _contact(value: Any, path: str, problems: list[Problem]) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not is_email(value.strip()):
        problems.append(Problem("INVALID_EMAIL", "expected an email address", path))
        return None
    return value.strip()


def _other_contacts(value: Any, problems: list[Problem]) -> dict[str, str]:
    """Extra contacts by role ({"cfo": "cfo@example.com"}); null members are dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(Problem("INVALID_VALUE", "other must be an object of role: email",
                                "input.other"))
        return {}
    if len(value) > _MAX_CONTACTS:
        problems.append(Problem("TOO_LONG", f"at most {_MAX_CONTACTS} other contacts",
                                "input.other"))
        return {}
    contacts: dict[str, str] = {}
    for key, email in value.items():
        path = f"input.other.{key[:40]}"
        if not _CONTACT_KEY.match(key) or key in _FIXED_CONTACTS:
            problems.append(Problem("INVALID_KEY", "contact roles are identifiers (letters, "
                                    "digits, _) other than vpCustomerSuccess and ceo", path))
            continue
        address = _contact(email, path, problems)
        if address is not None:
            contacts[key] = address
    return contacts


async def update_contacts(session: AsyncSession, actor: Actor, *,
                          changes: Mapping[str, Any]) -> CompanyContacts:
    """Admins set the company contacts; fields left out of `changes` keep their value.

    `changes` may hold vp_customer_success, ceo (emails or None to clear) and other
    (an object replacing the previous extra contacts).
    """
    tenant_id = actor.require(Role.ADMIN).tenant_id
    problems: list[Problem] = []
    current = await repository.get_contacts(session, tenant_id)
    contacts = CompanyContacts(
        tenant_id=tenant_id,
        vp_customer_success=current.vp_customer_success if current else None,
        ceo=current.ceo if current else None,
        other=dict(current.other) if current else {},
        updated_at=utcnow(),
    )
    if "vp_customer_success" in changes:
        contacts.vp_customer_success = _contact(changes["vp_customer_success"],
                                                "input.vpCustomerSuccess", problems)
    if "ceo" in changes:
        contacts.ceo = _contact(changes["ceo"], "input.ceo", problems)
    if "other" in changes:
        contacts.other = _other_contacts(changes["other"], problems)
    if problems:
        raise ValidationFailed(problems)
    await repository.upsert_contacts(session, contacts)
    return contacts


async def get_contacts(session: AsyncSession, tenant_id: UUID) -> CompanyContacts | None:
    return await repository.get_contacts(session, tenant_id)


async def update_settings(session: AsyncSession, actor: Actor, *,
                          time_zone: str | None = None) -> Tenant:
    """Admins change tenant settings: the IANA time zone that renewal dates are counted in."""
    tenant_id = actor.require(Role.ADMIN).tenant_id
    tenant = await repository.get(session, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    if time_zone is not None:
        try:
            zone_name = check_time_zone(time_zone.strip())
        except DomainError as error:
            raise DomainError(error.message, path="input.timeZone",
                              code="INVALID_TIME_ZONE") from error
        updated = await repository.set_time_zone(session, tenant_id, zone_name)
        if updated is None:
            raise NotFound("tenant not found")
        tenant = updated
    return tenant


async def webhook_secret(session: AsyncSession, tenant_id: UUID) -> str:
    """The secret script actions are signed with (made on first use)."""
    from domain.shared.signing import new_secret

    secret = await repository.webhook_secret(session, tenant_id, create=new_secret())
    if secret is None:
        raise NotFound("tenant not found")
    return secret


async def rotate_webhook_secret(session: AsyncSession, actor: Actor) -> str:
    """A new signing secret for script actions (admins); returned once."""
    from domain.shared.signing import new_secret

    actor.require(Role.ADMIN)
    secret = new_secret()
    if not await repository.set_webhook_secret(session, actor.tenant_id, secret):
        raise NotFound("tenant not found")
    return secret
