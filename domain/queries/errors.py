"""Why a query step's SQL did not run (or did not finish): step errors with a reason."""

from __future__ import annotations

from domain.shared.errors import DomainError


class QueryRefused(DomainError):
    """The static check refused the generated SQL; nothing reached the database."""

    code = "QUERY_REFUSED"


class QueryFailed(DomainError):
    """The SQL passed the check but the database refused or stopped it (timeout, error)."""

    code = "QUERY_FAILED"
