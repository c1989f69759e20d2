"""Customer rules: who may write, what a valid customer looks like, upsert by external id."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.customers import repository
from domain.customers.errors import CustomerNotFound
from domain.customers.models import Customer
from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError, NotFound, Problem, ValidationFailed
from domain.shared.ids import parse_id
from domain.shared.pagination import Page, decode_cursor, encode_cursor, page_size
from domain.users import repository as users_repository
from domain.users.emails import is_email

# Columns an upsert may set besides the key; a key left out keeps the stored value.
FIELDS = ("name", "arr", "renewal_date", "has_account_plan", "health_score", "csm_id",
          "account_team")
_INPUT_NAMES = {"name": "name", "arr": "arr", "renewal_date": "renewalDate",
                "has_account_plan": "hasAccountPlan", "health_score": "healthScore",
                "csm_id": "csmId", "account_team": "accountTeam"}
_MAX_ARR = Decimal("999999999999.99")  # numeric(14, 2)
_TEAM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_MAX_TEAM = 30
MAX_CUSTOMER_NAME = 300
MAX_EXTERNAL_ID = 200


def _check_text(value: Any, field: str, limit: int, problems: list[Problem]) -> str:
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        problems.append(Problem("REQUIRED", f"{field} must not be empty", f"input.{field}"))
    elif len(text) > limit:
        problems.append(Problem("TOO_LONG", f"{field} is longer than {limit} characters",
                                f"input.{field}"))
    return text


def _check_arr(value: Any, problems: list[Problem]) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or (
            isinstance(value, float) and not math.isfinite(value)):
        problems.append(Problem("INVALID_VALUE", "arr must be a number", "input.arr"))
        return None
    amount = Decimal(str(value))
    # Range first: quantizing 1e27 to cents overflows Decimal's 28 digits.
    if amount < 0 or amount > _MAX_ARR:
        problems.append(Problem("OUT_OF_RANGE", f"arr must be between 0 and {_MAX_ARR}",
                                "input.arr"))
        return None
    return amount.quantize(Decimal("0.01"))


def _check_health(value: Any, problems: list[Problem]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        problems.append(Problem("OUT_OF_RANGE",
                                "healthScore must be an integer from 0 to 100",
                                "input.healthScore"))
        return None
    return value


def _check_team(value: Any, problems: list[Problem]) -> dict[str, str]:
    """An object of role -> email ({"ae": "...", "sa": "..."}); null members are dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(Problem("INVALID_VALUE", "accountTeam must be an object of role: email",
                                "input.accountTeam"))
        return {}
    if len(value) > _MAX_TEAM:
        problems.append(Problem("TOO_LONG", f"accountTeam has more than {_MAX_TEAM} members",
                                "input.accountTeam"))
    team: dict[str, str] = {}
    for key, email in value.items():
        path = f"input.accountTeam.{key[:40]}"
        if not _TEAM_KEY.match(key) or key == "allEmails":
            problems.append(Problem(
                "INVALID_KEY", "team roles are identifiers (letters, digits, _) and not "
                "'allEmails', which is computed", path))
        elif email is None:
            continue
        elif not isinstance(email, str) or not is_email(email.strip()):
            problems.append(Problem("INVALID_EMAIL", f"{key} must be an email address", path))
        else:
            team[key] = email.strip()
    return team


async def _check(session: AsyncSession, changes: Mapping[str, Any]) -> dict[str, Any]:
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "name":
            values[field] = _check_text(value, "name", MAX_CUSTOMER_NAME, problems)
        elif field == "arr":
            values[field] = _check_arr(value, problems)
        elif field == "renewal_date":
            if value is not None and not isinstance(value, date):
                problems.append(Problem("INVALID_VALUE", "renewalDate must be a date",
                                        "input.renewalDate"))
            values[field] = value
        elif field == "has_account_plan":
            values[field] = bool(value)
        elif field == "health_score":
            values[field] = _check_health(value, problems)
        elif field == "csm_id":
            values[field] = None if value is None else parse_id(value, path="input.csmId")
        elif field == "account_team":
            values[field] = _check_team(value, problems)
        else:
            raise ValueError(f"unknown customer field {field!r}")
    if problems:
        raise ValidationFailed(problems)
    csm_id = values.get("csm_id")
    if csm_id is not None and await users_repository.get(session, csm_id) is None:
        raise NotFound("no such user", path="input.csmId")
    return values


async def upsert(session: AsyncSession, actor: Actor, *, external_id: str,
                 changes: Mapping[str, Any]) -> Customer:
    """Create or update the tenant's customer with this external id (editors and admins).

    `changes` holds the fields the caller sent (domain names); omitted ones keep their value.
    """
    tenant_id = actor.require(Role.EDITOR).tenant_id
    if "name" not in changes:
        raise DomainError("name is required", path="input.name", code="REQUIRED")
    problems: list[Problem] = []
    key = _check_text(external_id, "externalId", MAX_EXTERNAL_ID, problems)
    if problems:
        raise ValidationFailed(problems)
    values = await _check(session, changes)
    return await repository.upsert(session, tenant_id, key, values)


def parse_customer_id(customer_id: UUID | str) -> UUID:
    """The id as a UUID, or CustomerNotFound (a malformed id finds nothing, like a missing one)."""
    try:
        parsed = parse_id(customer_id, path="customerId")
    except NotFound as exc:
        raise CustomerNotFound() from exc
    return parsed


async def get(session: AsyncSession, customer_id: UUID | str) -> Customer:
    """The customer, or CustomerNotFound (missing and another tenant's look the same)."""
    found = await repository.get(session, parse_customer_id(customer_id))
    if found is None:
        raise CustomerNotFound()
    return found


async def find(session: AsyncSession, customer_id: UUID | str) -> Customer | None:
    try:
        return await get(session, customer_id)
    except CustomerNotFound:
        return None


async def page(session: AsyncSession, *, first: int | None, after: str | None,
               search: str | None) -> Page[Customer]:
    """Customers by name, keyset-paginated; `search` matches name or external id."""
    size = page_size(first)
    cursor = decode_cursor(after, kinds=("text", "uuid"))
    position: tuple[str, UUID] | None = (cursor[0], cursor[1]) if cursor else None
    search = search.strip() if search else None
    rows = await repository.page(session, limit=size + 1, after=position, search=search)
    total = await repository.count(session, search=search)
    items = rows[:size]
    return Page(items=items, cursors=[encode_cursor([c.name, str(c.id)]) for c in items],
                has_next=len(rows) > size, total=total, has_previous=position is not None)


async def get_many(session: AsyncSession, ids: list[UUID]) -> list[Customer]:
    return await repository.get_many(session, ids)
