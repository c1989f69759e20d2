"""User rules: who may be created, by whom, with which manager."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.actor import Actor
from domain.shared.errors import DomainError, NotFound
from domain.shared.limits import MAX_NAME, check_length
from domain.users import repository
from domain.users.emails import is_email
from domain.users.errors import EmailTaken
from domain.users.models import Role, User


async def create(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    email: str,
    name: str,
    role: Role,
    manager_id: UUID | None = None,
) -> User:
    email = email.strip()
    if not is_email(email):
        raise DomainError("not an email address", path="input.email", code="INVALID_EMAIL")
    if not name.strip():
        raise DomainError("a user needs a name", path="input.name", code="REQUIRED")
    check_length(name.strip(), MAX_NAME, path="input.name", what="a name")
    if await repository.by_email(session, email) is not None:
        raise EmailTaken(f"{email} is already a user of this tenant", path="input.email")
    if manager_id is not None and await repository.get(session, manager_id) is None:
        raise NotFound("no such manager", path="input.managerId")
    user = User(tenant_id=tenant_id, email=email, name=name.strip(), role=role.value,
                manager_id=manager_id)
    return await repository.add(session, user)


async def get(session: AsyncSession, user_id: UUID) -> User | None:
    return await repository.get(session, user_id)


async def create_by(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: Role,
    manager_id: str | UUID | None = None,
) -> User:
    """A tenant admin creates a user; the manager must be a user of the same tenant."""
    actor.require(Role.ADMIN)
    manager: UUID | None
    try:
        manager = manager_id if manager_id is None or isinstance(manager_id, UUID) \
            else UUID(str(manager_id))
    except ValueError as exc:
        raise NotFound("no such manager", path="input.managerId") from exc
    return await create(session, tenant_id=actor.tenant_id, email=email, name=name, role=role,
                        manager_id=manager)
