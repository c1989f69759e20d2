"""The typed per-operation context: who is calling, the tenant transaction, the loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from domain.auth.tokens import Principal
from domain.shared.actor import Actor
from domain.shared.db import Database, Tx
from domain.shared.settings import Settings


class NotAuthenticated(Exception):
    """Raised when an operation reaches the schema without a verified principal."""


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    db: Database
    settings: Settings
    request_id: str
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = None
    tx: Tx | None = None
    _loaders: Any = field(default=None, repr=False)

    @property
    def session(self) -> AsyncSession:
        """The operation's tenant transaction (opened by the TenantTransaction extension)."""
        return self.transaction.session

    @property
    def transaction(self) -> Tx:
        if self.tx is None:
            raise RuntimeError("no tenant transaction is open for this operation")
        return self.tx

    @property
    def actor(self) -> Actor:
        """Who acts in this operation: the caller with the role stored now."""
        actor = self.transaction.actor
        if actor is None:
            raise NotAuthenticated("no caller entered")
        return actor

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticated("no verified token")
        return self.principal

    @property
    def loaders(self) -> Any:
        if self._loaders is None:
            from schema.loaders import Loaders

            self._loaders = Loaders(self)
        return self._loaders


Info = StrawberryInfo[Context, None]
