"""Who acts: the one Actor every writing service receives, and the role order it checks.

A resolver, a job of the worker, an escalation and an LLM tool all reach the domain with an
Actor, so the rules are the same whoever calls. A user's role is the one stored now (read
at the start of each tenant transaction), never the one a token claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from domain.shared.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


def require_role(actual: Role, needed: Role) -> None:
    """Admins can do what editors can, editors what viewers can."""
    if _RANK[actual] < _RANK[needed]:
        raise Forbidden(f"this needs the {needed.value} role")


@dataclass(frozen=True)
class Actor:
    """A user of a tenant with their current role, or the system acting for a tenant.

    The system (jobs, the renewal scan, timers) acts with the editor's rights: it works runs
    but manages nobody.
    """

    tenant_id: UUID
    user_id: UUID | None
    role: Role

    @classmethod
    def system(cls, tenant_id: UUID) -> Actor:
        return cls(tenant_id=tenant_id, user_id=None, role=Role.EDITOR)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    def require(self, needed: Role) -> Actor:
        """This actor, if its role is at least `needed`; Forbidden otherwise."""
        require_role(self.role, needed)
        return self
