"""User errors."""

from domain.shared.errors import Conflict


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"
