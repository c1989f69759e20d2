"""Saved-action errors."""

from domain.shared.errors import Conflict


class ActionIdTaken(Conflict):
    code = "ALREADY_EXISTS"
