"""What every live stream resolver needs: its subscriber, and transactions as that caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from graphql import GraphQLError

from domain.auth.tokens import Principal
from domain.live.broker import Broker
from domain.shared.db import Database, Tx, UnknownCaller
from schema.context import Info


def unauthenticated(reason: str) -> GraphQLError:
    return GraphQLError(reason, extensions={"code": "UNAUTHENTICATED"})


@dataclass(frozen=True)
class Subscriber:
    """Who subscribes (the verified token), this process's broker, and the database."""

    principal: Principal
    broker: Broker
    db: Database

    @classmethod
    def of(cls, info: Info) -> Subscriber:
        context = info.context
        if context.principal is None:
            raise unauthenticated("a valid bearer token is required")
        return cls(context.principal, context.request.app.state.broker, context.db)

    def check(self) -> None:
        """Raises once the token has expired (`follow` calls it at every wake-up)."""
        if self.principal.expired():
            raise unauthenticated("the token has expired")

    @asynccontextmanager
    async def as_caller(self) -> AsyncIterator[Tx]:
        """A read-only tenant transaction as the caller, re-read now (a deleted user ends
        the stream with UNAUTHENTICATED)."""
        try:
            async with self.db.transaction(self.principal.tenant_id,
                                           user_id=self.principal.user_id,
                                           read_only=True) as tx:
                yield tx
        except UnknownCaller:
            raise unauthenticated("the token's user does not exist") from None
