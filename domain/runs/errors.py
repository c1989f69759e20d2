"""Run errors: each a machine-readable code the client can act on."""

from __future__ import annotations

from domain.shared.errors import Conflict, DomainError, NotFound


class RunNotFound(NotFound):
    """Missing, or another tenant's (they look the same)."""

    def __init__(self, message: str = "no such run", *, path: str | None = "runId") -> None:
        super().__init__(message, path=path)


class WrongState(DomainError):
    """The run's state does not allow this (e.g. choosing a branch on a cancelled run)."""

    code = "WRONG_STATE"


class RunAlreadyActive(Conflict):
    code = "RUN_ALREADY_ACTIVE"


class InvalidBranch(DomainError):
    code = "INVALID_BRANCH"


class NotApprover(DomainError):
    code = "NOT_APPROVER"
