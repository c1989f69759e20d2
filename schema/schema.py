"""The Strawberry Schema: every concept's Query and Mutation merged, with the limits."""

from __future__ import annotations

import importlib

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from schema.execution import PlannedExecutor
from schema.extensions import MaskUnexpectedErrors, TenantTransaction
from schema.fast import Prepared, RecordPrepared
from schema.scalars import SCALAR_OVERRIDES

# One module per concept, each with an optional `Query`, `Mutation` and `Subscription` class.
MODULES = (
    "schema.users",
    "schema.customers",
    "schema.templating",
    "schema.workflows",
    "schema.workflow_mutations",
    "schema.saved_actions",
    "schema.runs",
    "schema.notifications",
    "schema.live",
    "schema.usage",
    "schema.chat",
    "schema.generation",
)
_loaded = [importlib.import_module(name) for name in MODULES]
QUERIES: tuple[type, ...] = tuple(m.Query for m in _loaded if hasattr(m, "Query"))
MUTATIONS: tuple[type, ...] = tuple(m.Mutation for m in _loaded if hasattr(m, "Mutation"))
SUBSCRIPTIONS: tuple[type, ...] = tuple(m.Subscription for m in _loaded
                                        if hasattr(m, "Subscription"))


class StepwiseSchema(strawberry.Schema):
    """Errors are logged once, where they are understood (MaskUnexpectedErrors, the edge).

    Strawberry's default logs every error, including a client's typo, at ERROR level.
    """

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        return None


def build_schema(*, max_depth: int = 12, max_aliases: int = 30, max_tokens: int = 4000,
                 prepared: Prepared | None = None, reference: bool = False
                 ) -> strawberry.Schema:
    """The schema; `prepared` collects validated queries for the fast path (schema.fast),
    `reference` keeps graphql-core's own executor (the differential test's reference)."""
    query = merge_types("Query", QUERIES)
    mutation = merge_types("Mutation", MUTATIONS) if MUTATIONS else None
    subscription = merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None
    # The limiters build their validation-rule classes in __init__. Built once here, the rule
    # classes are the same objects on every request, so ValidationCache's key (document,
    # rules) hits; a fresh limiter per request would defeat the cache entirely.
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    return StepwiseSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        execution_context_class=None if reference else PlannedExecutor,
        scalar_overrides=SCALAR_OVERRIDES,  # type: ignore[arg-type]
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: ParserCache(maxsize=512),
            lambda: AddValidationRules(rules),
            lambda: ValidationCache(maxsize=512),
            MaskUnexpectedErrors,
            TenantTransaction,
            *([] if prepared is None else [lambda: RecordPrepared(prepared)]),
        ],
    )


schema = build_schema()
