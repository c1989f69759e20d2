"""Saved-action errors."""

from domain.shared.errors import Conflict, DomainError


class ActionIdTaken(Conflict):
    code = "ALREADY_EXISTS"


class CoreReadOnly(DomainError):
    code = "CORE_READ_ONLY"
