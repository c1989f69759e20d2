"""Customer errors."""

from domain.shared.errors import NotFound


class CustomerNotFound(NotFound):
    """Missing or another tenant's: the same message either way."""

    def __init__(self, *, path: str | None = "customerId") -> None:
        super().__init__("no such customer", path=path)
