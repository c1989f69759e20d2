"""Field execution without graphql-core's per-field machinery where it adds nothing.

graphql-core builds a resolve-info tuple, checks for awaitables and walks `complete_value`
for every field; for the builder's lists that is most of a request's CPU. Most fields are
*basic* (Strawberry's term: no resolver, no extension, no permission: the attribute of the
source object). `PlannedExecutor` plans each selection once per operation — which fields
are basic, what their types need — and completes basic fields of leaf, list-of-leaf and
plain object types inline: the attribute, the null check, the scalar's own serialiser. Every
other field (resolvers, arguments, permission checks, abstract types, types with
`is_type_of`) goes through graphql-core unchanged, as does every error: a failure in the
inline path is handed to graphql-core's `handle_field_error` with the field's real path,
so null propagation and error paths are exactly graphql-core's.

The same class executes on both edges (Strawberry's view and `schema.fast`); graphql-core's
own executor stays the reference the differential test compares it with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import (
    GraphQLError,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# How a basic field is completed inline.
LEAF, LEAF_LIST, OBJECT, OBJECT_LIST = 1, 2, 3, 4


class _Inline(NamedTuple):
    """A basic field's plan: how to read it and complete its value."""

    kind: int
    read: Callable[..., Any]
    return_type: GraphQLOutputType
    non_null: bool
    leaf: GraphQLLeafType | None  # LEAF, LEAF_LIST: the scalar or enum
    item_non_null: bool  # LEAF_LIST, OBJECT_LIST: are items non-null
    item_type: GraphQLOutputType | None  # LEAF_LIST, OBJECT_LIST: the item type as declared
    object_type: GraphQLObjectType | None  # OBJECT, OBJECT_LIST


def _inline_plan(parent_type: GraphQLObjectType, field_details_list: FieldDetailsList
                 ) -> _Inline | None:
    """The inline plan of a field, or None when graphql-core must execute it."""
    first = field_details_list[0]
    if (first.fragment_variable_values is not None or first.defer_usage is not None
            or first.node.arguments):
        return None
    key = (parent_type, first.node.name.value)
    if key not in _FIELD_PLANS:  # by schema field: as many as the schema has, planned once
        _FIELD_PLANS[key] = _field_plan(parent_type, first.node.name.value)
    return _FIELD_PLANS[key]


_FIELD_PLANS: dict[tuple[GraphQLObjectType, str], _Inline | None] = {}


def _field_plan(parent_type: GraphQLObjectType, name: str) -> _Inline | None:
    field_def = parent_type.fields.get(name)
    if field_def is None or field_def.args:
        return None
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None  # a resolver, an extension or a permission class: graphql-core's path
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    inner = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    if isinstance(inner, GraphQLLeafType):
        return _Inline(LEAF, resolve, return_type, non_null, inner, False, None, None)
    if isinstance(inner, GraphQLList):
        declared: GraphQLOutputType = inner.of_type
        item_non_null = isinstance(declared, GraphQLNonNull)
        item = declared.of_type if isinstance(declared, GraphQLNonNull) else declared
        if isinstance(item, GraphQLLeafType):
            return _Inline(LEAF_LIST, resolve, return_type, non_null, item, item_non_null,
                           declared, None)
        if isinstance(item, GraphQLObjectType) and item.is_type_of is None:
            return _Inline(OBJECT_LIST, resolve, return_type, non_null, None, item_non_null,
                           declared, item)
        return None
    if isinstance(inner, GraphQLObjectType) and inner.is_type_of is None:
        return _Inline(OBJECT, resolve, return_type, non_null, None, False, None, inner)
    return None


def _leaf(leaf: GraphQLLeafType, value: Any) -> Any:
    coerced = leaf.coerce_output_value(value)
    if coerced is Undefined or coerced is None:
        raise TypeError(f"Expected `{leaf}.coerce_output_value({value!r})` to return "
                        f"non-nullable value, returned: {coerced!r}")
    return coerced


def _null_error(parent_type: GraphQLObjectType, field_name: str) -> TypeError:
    return TypeError(f"Cannot return null for non-nullable field {parent_type}.{field_name}.")


class PlannedExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with basic fields completed inline (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per grouped field set (memoised by graphql-core per selection and type, so a
        # list's items share one): each field's inline plan or None. The set is kept
        # alive beside its plans so its id cannot be reused during the operation.
        self._plans: dict[int, tuple[GroupedFieldSet, list[_Inline | None]]] = {}
        # Middleware wraps every resolver: with any, graphql-core executes every field.
        middleware = self.middleware_manager
        self._inline_allowed = (self.abort_signal is None and (
            middleware is None or middleware._middleware_resolvers is None))

    def _plans_for(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
                   ) -> list[_Inline | None]:
        key = id(grouped_field_set)
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        plans = [_inline_plan(parent_type, details) for details in grouped_field_set.values()]
        self._plans[key] = (grouped_field_set, plans)
        return plans

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any,
                       path: Path | None, grouped_field_set: GroupedFieldSet,
                       position_context: Any) -> Any:
        if not self._inline_allowed:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        plans = self._plans_for(parent_type, grouped_field_set)
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for (response_name, field_details_list), plan in zip(
                    grouped_field_set.items(), plans, strict=True):
                if plan is not None:
                    results[response_name] = self._inline(
                        plan, parent_type, source_value, path, response_name,
                        field_details_list, position_context)
                else:
                    result = self.execute_field(
                        parent_type, source_value, field_details_list,
                        Path(path, response_name, parent_type.name), position_context)
                    if result is Undefined:
                        continue
                    results[response_name] = result
                if is_awaitable(results[response_name]):
                    awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather(results, awaitable_fields)

    async def _gather(self, results: dict[str, Any], awaitable_fields: list[str]
                      ) -> dict[str, Any]:
        if len(awaitable_fields) == 1:
            name = awaitable_fields[0]
            results[name] = await results[name]
        else:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results

    def _inline(self, plan: _Inline, parent_type: GraphQLObjectType, source: Any,
                path: Path | None, response_name: str, field_details_list: FieldDetailsList,
                position_context: Any) -> Any:
        """A basic field's completed value; errors handled exactly as graphql-core does."""
        try:
            value = plan.read(source, None)
            if isinstance(value, Exception):
                raise value
            if value is None or value is Undefined:
                if plan.non_null:
                    raise _null_error(parent_type, field_details_list[0].node.name.value)
                return None
            kind = plan.kind
            if kind == LEAF:
                return _leaf(plan.leaf, value)  # type: ignore[arg-type]
            if kind == LEAF_LIST:
                return self._leaf_list(plan, parent_type, value, path, response_name,
                                       field_details_list)
            if kind == OBJECT_LIST:
                return self._object_list(plan, parent_type, value, path, response_name,
                                         field_details_list, position_context)
            object_type = plan.object_type
            assert object_type is not None
            field_path = Path(path, response_name, parent_type.name)
            grouped, defers, _forbidden = self.collect_subfields(object_type,
                                                                 field_details_list)
            completed = self.execute_collected_subfields(object_type, value, field_path,
                                                         grouped, defers, position_context)
            if self.is_awaitable(completed):
                return self._await_object(completed, plan, parent_type, path, response_name,
                                          field_details_list)
            return completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.return_type, field_details_list,
                                    Path(path, response_name, parent_type.name))
            return None

    async def _await_object(self, completed: Any, plan: _Inline,
                            parent_type: GraphQLObjectType, path: Path | None,
                            response_name: str, field_details_list: FieldDetailsList) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.return_type, field_details_list,
                                    Path(path, response_name, parent_type.name))
            return None

    def _object_list(self, plan: _Inline, parent_type: GraphQLObjectType, value: Any,
                     path: Path | None, response_name: str,
                     field_details_list: FieldDetailsList, position_context: Any) -> Any:
        if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
            raise GraphQLError("Expected Iterable, but did not find one for field "
                               f"'{parent_type}.{field_details_list[0].node.name.value}'.")
        object_type = plan.object_type
        assert object_type is not None
        grouped, defers, _forbidden = self.collect_subfields(object_type, field_details_list)
        field_path = Path(path, response_name, parent_type.name)
        item_type = plan.item_type
        assert item_type is not None
        out: list[Any] = []
        pending: list[int] = []
        is_awaitable = self.is_awaitable
        try:
            for index, item in enumerate(value):
                item_path = field_path.add_key(index, None)
                try:
                    if isinstance(item, Exception):
                        raise item
                    if item is None or item is Undefined:
                        if plan.item_non_null:
                            raise _null_error(parent_type,
                                              field_details_list[0].node.name.value)
                        out.append(None)
                        continue
                    completed = self.execute_collected_subfields(
                        object_type, item, item_path, grouped, defers, position_context)
                    if is_awaitable(completed):
                        completed = self._await_item(completed, item_type, field_details_list,
                                                     item_path)
                        pending.append(index)
                    out.append(completed)
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    out.append(None)
        except Exception:
            # A non-null item failed: the list is gone; settle what already started.
            self.settle_in_background([out[index] for index in pending])
            raise
        if not pending:
            return out
        return self._gather_items(out, pending, plan, parent_type, path, response_name,
                                  field_details_list)

    async def _await_item(self, completed: Any, item_type: GraphQLOutputType,
                          field_details_list: FieldDetailsList, item_path: Path) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, item_type, field_details_list, item_path)
            return None

    async def _gather_items(self, out: list[Any], pending: list[int], plan: _Inline,
                            parent_type: GraphQLObjectType, path: Path | None,
                            response_name: str, field_details_list: FieldDetailsList
                            ) -> Any:
        try:
            awaited = await gather_with_cancel(*(out[index] for index in pending))
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.return_type, field_details_list,
                                    Path(path, response_name, parent_type.name))
            return None
        for index, item in zip(pending, awaited, strict=True):
            out[index] = item
        return out

    def _leaf_list(self, plan: _Inline, parent_type: GraphQLObjectType, value: Any,
                   path: Path | None, response_name: str,
                   field_details_list: FieldDetailsList) -> list[Any]:
        if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
            raise GraphQLError("Expected Iterable, but did not find one for field "
                               f"'{parent_type}.{field_details_list[0].node.name.value}'.")
        leaf = plan.leaf
        assert leaf is not None
        out: list[Any] = []
        for index, item in enumerate(value):
            if item is not None and item is not Undefined and not isinstance(item, Exception):
                try:
                    out.append(_leaf(leaf, item))
                    continue
                except Exception as raw_error:
                    error: Exception = raw_error
            elif isinstance(item, Exception):
                error = item
            elif plan.item_non_null:
                error = _null_error(parent_type, field_details_list[0].node.name.value)
            else:
                out.append(None)
                continue
            assert plan.item_type is not None
            field_path = Path(path, response_name, parent_type.name)
            self.handle_field_error(error, plan.item_type, field_details_list,
                                    field_path.add_key(index, None))
            out.append(None)
        return out
