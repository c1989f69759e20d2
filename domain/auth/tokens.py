"""JWTs: HS256, claims sub (user id), tenant_id, role, exp."""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

import jwt

from domain.users.models import Role

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of a token."""

    user_id: UUID
    tenant_id: UUID
    role: Role


class InvalidToken(Exception):
    """Missing, malformed, badly signed or expired: all 401 to the client."""


def mint(*, secret: str, tenant_id: UUID, user_id: UUID, role: Role, ttl: int = 86400) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "tenant_id": str(tenant_id),
        "role": role.value,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(token: str, *, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
        return Principal(
            user_id=UUID(claims["sub"]),
            tenant_id=UUID(claims["tenant_id"]),
            role=Role(claims["role"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc


def from_header(value: str | None, *, secret: str) -> Principal:
    """Verify an `Authorization: Bearer <JWT>` header value."""
    if not value:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("expected 'Bearer <token>'")
    return verify(token.strip(), secret=secret)
