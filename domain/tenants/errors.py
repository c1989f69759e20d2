"""Tenant errors: none beyond the shared tree yet."""

from domain.shared.errors import DomainError, NotFound

__all__ = ["DomainError", "NotFound"]
