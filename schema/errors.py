"""The one place domain errors become mutation payload errors."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import strawberry
from graphql import FieldNode, GraphQLError
from sqlalchemy.exc import DBAPIError

from domain.shared.errors import DomainError, from_database
from schema.context import Info

T = TypeVar("T")


@strawberry.type(description="A user error: nothing was written.")
class UserError:
    code: str
    message: str
    path: str | None = strawberry.field(
        description="Where: an input path (input.key) or a JSON path into a config ($.steps[0])."
    )


def to_user_errors(error: DomainError) -> list[UserError]:
    return [UserError(code=p.code, message=p.message, path=p.path) for p in error.problems]


async def attempt(info: Info, work: Callable[[], Awaitable[T]]) -> tuple[T | None, list[UserError]]:
    """Run one mutation's domain work; on a DomainError, undo it and report.

    "Nothing half-written": when the operation holds other mutations, the work runs in a
    savepoint that the error rolls back; when it is the operation's only field, nothing else
    shares the transaction and the error dooms it instead (it ends in ROLLBACK), which saves
    the savepoint's two round trips on every mutation.
    """
    tx = info.context.transaction
    alone = _sole_field(info)
    try:
        async with contextlib.nullcontext() if alone else tx.savepoint():
            result = await work()
    except DomainError as error:
        errors = to_user_errors(error)
    except (DBAPIError, asyncpg.PostgresError) as exc:
        mapped = from_database(exc)
        if mapped is None:
            raise
        errors = to_user_errors(mapped)
    else:
        return result, []
    if alone:
        tx.doom()
    return None, errors


def _sole_field(info: Info) -> bool:
    """Whether the operation selects this one field and nothing else at its root."""
    selections = info.operation.selection_set.selections
    return len(selections) == 1 and isinstance(selections[0], FieldNode)


async def outside_transaction(work: Callable[[], Awaitable[T]]
                              ) -> tuple[T | None, list[UserError]]:
    """`attempt` for work that opens transactions of its own (nothing to undo here)."""
    try:
        result = await work()
    except DomainError as error:
        return None, to_user_errors(error)
    return result, []


async def query_result(work: Callable[[], Awaitable[T]]) -> T:
    """Run a query's domain work; a DomainError becomes a GraphQL error carrying its code.

    Queries have no payload `errors` list; without this a user error (bad cursor, missing
    customer) would be masked as an unexpected one.
    """
    try:
        return await work()
    except DomainError as error:
        first = error.problems[0]
        raise GraphQLError(first.message,
                           extensions={"code": first.code, "path": first.path}) from error
