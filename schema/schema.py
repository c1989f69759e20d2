"""The Strawberry Schema: every concept's Query and Mutation merged, with the limits."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types

from schema import users
from schema.extensions import MaskUnexpectedErrors, TenantTransaction

QUERIES: tuple[type, ...] = (users.Query,)
MUTATIONS: tuple[type, ...] = ()


def build_schema(*, max_depth: int = 12, max_aliases: int = 30, max_tokens: int = 4000
                 ) -> strawberry.Schema:
    query = merge_types("Query", QUERIES)
    mutation = merge_types("Mutation", MUTATIONS) if MUTATIONS else None
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        extensions=[
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            MaskUnexpectedErrors,
            TenantTransaction,
        ],
    )


schema = build_schema()
