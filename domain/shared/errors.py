"""The one error tree the domain raises; the API edge turns it into payload errors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One user-facing problem: a machine-readable code, a sentence, and where."""

    code: str
    message: str
    path: str | None = None


class DomainError(Exception):
    """A user error: reported to the client, nothing is written."""

    code = "INVALID"

    def __init__(self, message: str, *, path: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        if code is not None:
            self.code = code

    @property
    def problems(self) -> list[Problem]:
        return [Problem(self.code, self.message, self.path)]


class NotFound(DomainError):
    """Missing, or another tenant's: the two must look the same to a client."""

    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Conflict(DomainError):
    code = "CONFLICT"


class ValidationFailed(DomainError):
    """Several problems at once (config validation, input checks)."""

    code = "VALIDATION_FAILED"

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0] if problems else Problem(self.code, "invalid input")
        super().__init__(first.message, path=first.path)
        self._problems = list(problems)

    @property
    def problems(self) -> list[Problem]:
        return self._problems


def from_database(exc: BaseException) -> DomainError | None:
    """A user error for constraint/RLS failures, phrased so nothing about other tenants leaks.

    Keys are (tenant_id, ...), so a unique violation can only be about the caller's own rows;
    an RLS refusal (42501) or a dangling reference (23503) reads as "not found".
    """
    sqlstate = getattr(exc, "sqlstate", None) or getattr(
        getattr(exc, "orig", None), "sqlstate", None) or getattr(
        getattr(exc, "orig", None), "pgcode", None)
    if sqlstate is None:
        cause = getattr(getattr(exc, "orig", None), "__cause__", None)
        sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate == "23505":
        return Conflict("that already exists", code="ALREADY_EXISTS")
    if sqlstate in ("23503", "42501"):
        return NotFound("not found")
    if sqlstate in ("23514", "22P02", "22007", "22008", "22003"):
        return DomainError("a value is out of range or malformed", code="INVALID_VALUE")
    return None
