"""Per-request DataLoaders: one query per kind of object, whatever the list size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from domain.tenants import repository as tenants_repository
from domain.tenants.models import Tenant
from domain.users import repository as users_repository
from domain.users.models import User

if TYPE_CHECKING:
    from schema.context import Context

K = TypeVar("K")
V = TypeVar("V")


def by_key(
    context: Context,
    fetch: Callable[[AsyncSession, Sequence[Any]], Awaitable[Sequence[V]]],
    key: Callable[[V], Any] = lambda row: row.id,  # type: ignore[attr-defined]
) -> DataLoader[Any, V | None]:
    """A loader that fetches a batch of keys with one query and maps rows back by `key`."""

    async def load(keys: list[Any]) -> list[V | None]:
        rows = await fetch(context.session, keys)
        found = {key(row): row for row in rows}
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """Created lazily per request; concepts add their loaders here."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._named: dict[str, DataLoader[Any, Any]] = {}

    def get(
        self, name: str, build: Callable[[Context], DataLoader[Any, Any]]
    ) -> DataLoader[Any, Any]:
        """A concept's own loader, built once per request: `loaders.get("workflow", build)`."""
        loader = self._named.get(name)
        if loader is None:
            loader = self._named[name] = build(self._context)
        return loader

    @cached_property
    def user(self) -> DataLoader[UUID, User | None]:
        return by_key(self._context, users_repository.get_many)

    @cached_property
    def tenant(self) -> DataLoader[UUID, Tenant | None]:
        return by_key(self._context, tenants_repository.get_many)
