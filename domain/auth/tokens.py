"""JWTs: HS256, claims sub (user id), tenant_id, role, exp."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
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
    expires_at: int | None = None

    def expired(self, *, now: float | None = None) -> bool:
        """A WebSocket outlives its token's `exp`: operations check it again."""
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


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
    """The token's principal; signature checks are cached per token, expiry is checked always."""
    principal = _verified(token, secret)
    if principal.expired():
        raise InvalidToken("the token has expired")
    return principal


@lru_cache(maxsize=4096)
def _verified(token: str, secret: str) -> Principal:
    # A client sends the same token on every request; its signature need not be recomputed.
    # Failures raise and are not cached.
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "tenant_id", "role"]},
        )
        return Principal(
            user_id=UUID(str(claims["sub"])),
            tenant_id=UUID(str(claims["tenant_id"])),
            role=Role(str(claims["role"])),
            expires_at=int(claims["exp"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidToken(str(exc)) from exc


def from_header(value: str | None, *, secret: str) -> Principal:
    """Verify an `Authorization: Bearer <JWT>` header value."""
    if not value:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("expected 'Bearer <token>'")
    return verify(token.strip(), secret=secret)
