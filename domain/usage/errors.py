"""Budget errors."""

from __future__ import annotations

from domain.shared.errors import DomainError


class BudgetExceeded(DomainError):
    """The tenant's monthly budget cannot cover this call's worst case."""

    code = "BUDGET_EXCEEDED"
