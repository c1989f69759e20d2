"""Compiled reads: a prepared query document answered straight from rows, without graphql-core.

A document Strawberry validated (schema.fast) is compiled once per operation and shape of
its boolean variables (what `@skip`/`@include` can read): graphql-core's own field
collection (aliases, fragments, directives, merged selections) turns the selection into a
tree of plans, one per object type. Executing a plan is breadth first and batched: every
basic field (Strawberry's term: no resolver, no extension, no permission) is read with the
field's own default resolver from the same Strawberry objects the reference builds with the
same `of` constructors, and serialised by the field's own GraphQL type; every resolver field
is one entry of `RESOLVED` below, which loads what the reference's resolver loads (the same
domain functions, on the transaction's driver) for all parents at once. Roots are `ROOTS`.

The compiler covers what the builder reads (`viewer`, `workflows`, `workflow`, `run` and
what lies under them); anything else is not compiled, and the document runs on graphql-core
as before. Exactness is kept by refusing rather than imitating: whenever an answer would
not be a plain success — a domain error, a null where the schema says non-null, a value of
an unexpected kind — execution raises `Decline`, the read-only transaction is rolled back,
and the reference path answers the request from scratch (null propagation, error paths and
messages are then graphql-core's own). tests/test_fast_path_differential.py compares the
answers with graphql-core's on the contract's queries and generated documents.
"""

from __future__ import annotations

import inspect
import keyword
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, cast
from uuid import UUID

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
)
from graphql.execution.collect_fields import (
    CollectedFields,
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from sqlalchemy.ext.asyncio import AsyncSession

from domain.customers import service as customers
from domain.notifications import service as notifications
from domain.runs import service as runs
from domain.shared.db import Tx
from domain.shared.errors import DomainError
from domain.shared.models import from_row
from domain.tenants import repository as tenants
from domain.tenants.models import Tenant as TenantModel
from domain.users import repository as users
from domain.users.models import User as UserModel
from domain.workflows import service as workflows
from domain.workflows.listing import WorkflowFilter as FilterSpec
from domain.workflows.listing import WorkflowOrder

PLANS_MAX = 512


class Decline(Exception):
    """The compiled path cannot give the reference's answer exactly: the reference answers."""


# What a field is, for execution.
TYPENAME, LEAF, LEAF_LIST, OBJECT, OBJECT_LIST = range(5)


@dataclass(slots=True)
class FieldPlan:
    key: str  # the response name (alias or field name)
    kind: int
    non_null: bool = False
    item_non_null: bool = False  # lists: are items non-null
    read: Callable[..., Any] | None = None  # basic fields: the field's default resolver
    attribute: str | None = None  # basic fields read as this attribute of the object
    serialize: Callable[[Any], Any] | None = None  # leaves
    passthrough: type | None = None  # leaves: values of this type are their own output
    int32: bool = False  # Int leaves: an int within 32 bits is its own output
    load: Resolved | None = None  # resolver fields
    node: FieldNode | None = None  # resolver fields with arguments
    definition: GraphQLField | None = None
    plan: ObjectPlan | None = None  # objects
    constant: str | None = None  # __typename


@dataclass(slots=True)
class ObjectPlan:
    type_name: str
    fields: list[FieldPlan] = field(default_factory=list)
    # One parent's object with every leaf in place and None where a nested field goes
    # (generated Python, see `_builder`), and the nested fields, in selection order.
    build: Callable[[Any], dict[str, Any]] | None = None
    nested: list[FieldPlan] = field(default_factory=list)


def _builder(plan: ObjectPlan) -> Callable[[Any], dict[str, Any]]:
    """Python source for one parent's object, compiled once per plan: each leaf read as its
    attribute (or by its resolver), copied if of its passthrough type, else serialised by
    `_value` (nulls, lists and serialisers exactly as for any leaf; a non-null leaf goes
    through its serialiser and `_leaf`'s check). Only names the parser and the schema vouch
    for reach the source: response keys (GraphQL names, as repr), type names, and attributes
    that are Python identifiers (not keywords); values stay in `names`."""
    names: dict[str, Any] = {"_value": _value, "_leaf": _leaf}
    reads: list[str] = []
    items: list[str] = []
    for index, entry in enumerate(plan.fields):
        key = repr(entry.key)
        if entry.kind == TYPENAME:
            items.append(f"{key}: {entry.constant!r}")
            continue
        if entry.load is not None or entry.kind in (OBJECT, OBJECT_LIST):
            items.append(f"{key}: None")
            continue
        names[f"E{index}"] = entry
        if (entry.attribute is not None and entry.attribute.isidentifier()
                and not keyword.iskeyword(entry.attribute)):
            reads.append(f"    v{index} = parent.{entry.attribute}")
        else:
            names[f"R{index}"] = entry.read
            reads.append(f"    v{index} = R{index}(parent)")
        value = f"v{index}"
        if entry.kind == LEAF and entry.passthrough is not None:
            names[f"P{index}"] = entry.passthrough
            reads.append(f"    if {value}.__class__ is not P{index}: "
                         f"{value} = _value(E{index}, {value})")
        elif entry.kind == LEAF and entry.int32:
            reads.append(f"    if not ({value}.__class__ is int and "
                         f"-2147483648 <= {value} <= 2147483647): "
                         f"{value} = _value(E{index}, {value})")
        elif entry.kind == LEAF:
            names[f"S{index}"] = entry.serialize
            reads.append(f"    if {value} is None: {value} = _value(E{index}, None)")
            reads.append(f"    else: {value} = _leaf({value}, S{index})")
        else:
            reads.append(f"    {value} = _value(E{index}, {value})")
        items.append(f"{key}: {value}")
    source = "def build(parent):\n" + "".join(line + "\n" for line in reads) + \
        "    return {" + ", ".join(items) + "}\n"
    exec(compile(source, f"<compiled {plan.type_name}>", "exec"), names)  # noqa: S102
    built: Callable[[Any], dict[str, Any]] = names["build"]
    return built


@dataclass(slots=True)
class Request:
    """What one execution shares: the transaction, the caller, the variables."""

    tx: Tx
    user: UserModel
    variables: VariableValues
    users: dict[UUID, UserModel]  # users already at hand (the caller, authors read with rows)
    # what a root read beside its object for a resolver field: (field, parent id) -> value
    prefetched: dict[tuple[str, UUID], Any] = field(default_factory=dict)

    @property
    def reader(self) -> AsyncSession:
        # The domain reads used here reach the database only through `tx_of`, which takes a
        # Tx as it is: no ORM session is made for a compiled read.
        return cast(AsyncSession, self.tx)


Loader = Callable[[Request, list[Any], dict[str, Any]], Awaitable[list[Any]]]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A resolver field: values for all parents at once (a list per parent for list types)."""

    load: Loader
    arguments: bool = False  # the loader reads the field's arguments


async def _users(request: Request, ids: Sequence[UUID | None]) -> dict[UUID, UserModel]:
    wanted = [i for i in set(ids) if i is not None and i not in request.users]
    if wanted:
        for found in await users.get_many(request.reader, wanted):
            request.users[found.id] = found
    return request.users


def _grouped(rows: Sequence[Any], parents: list[Any], key: str) -> list[list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return [groups.get(parent._row.id, []) for parent in parents]


# Resolver fields, by (type, field): the reference's resolvers, batched over parents.

async def _user_tenant(request: Request, parents: list[Any], _: dict[str, Any]) -> list[Any]:
    from schema.users import Tenant

    found = {}
    if request.tx.tenant is not None:  # read with the caller (domain.shared.db)
        found[request.tx.tenant["id"]] = from_row(TenantModel, request.tx.tenant)
    ids = list({parent._model.tenant_id for parent in parents} - found.keys())
    if ids:
        found.update((row.id, row) for row in await tenants.get_many(request.reader, ids))
    out = []
    for parent in parents:
        row = found.get(parent._model.tenant_id)
        if row is None:
            raise Decline("tenant not visible")  # the reference raises LookupError
        out.append(Tenant.of(row))
    return out


async def _workflow_created_by(request: Request, parents: list[Any], _: dict[str, Any]
                               ) -> list[Any]:
    from schema.users import User

    known = await _users(request, [parent._row.created_by for parent in parents])
    out = []
    for parent in parents:
        found = known.get(parent._row.created_by) if parent._row.created_by else None
        out.append(User.of(found) if found else None)
    return out


async def _workflow_config(request: Request, parents: list[Any], _: dict[str, Any]
                           ) -> list[Any]:
    missing = [p._row.id for p in parents if workflows.loaded_config(p._row) is None]
    # (configs are read through the ORM: a list that shows them pays for a session)
    fetched = await workflows.configs(request.tx.session, missing) if missing else {}
    out = []
    for parent in parents:
        loaded = workflows.loaded_config(parent._row)
        out.append(loaded if loaded is not None else fetched.get(parent._row.id))
    return out


_NOTHING = object()


def _prefetched(request: Request, name: str, parents: list[Any]) -> list[Any] | None:
    """The values the root read for every parent, or None (then the loader queries)."""
    found = [request.prefetched.get((name, parent._row.id), _NOTHING) for parent in parents]
    return None if any(value is _NOTHING for value in found) else found


async def _to_one(request: Request, parents: list[Any], name: str, key: str,
                  get_many: Callable[[AsyncSession, list[UUID]], Awaitable[Sequence[Any]]],
                  convert: Callable[[Any], Any]) -> list[Any]:
    """A run's object by its foreign key `key`: read beside the run, else one batch by id."""
    ready = _prefetched(request, name, parents)
    if ready is None:
        ids = list({getattr(parent._row, key) for parent in parents})
        found = {row.id: row for row in await get_many(request.reader, ids)}
        ready = [found.get(getattr(parent._row, key)) for parent in parents]
    return [convert(row) if row else None for row in ready]


async def _run_workflow(request: Request, parents: list[Any], _: dict[str, Any]) -> list[Any]:
    from schema.workflows import Workflow

    return await _to_one(request, parents, "workflow", "workflow_id", workflows.get_many,
                         Workflow.of)


async def _run_customer(request: Request, parents: list[Any], _: dict[str, Any]) -> list[Any]:
    from schema.customers import Customer

    return await _to_one(request, parents, "customer", "customer_id", customers.get_many,
                         Customer.of)


async def _run_steps(request: Request, parents: list[Any], _: dict[str, Any]) -> list[Any]:
    from schema.runs import RunStep

    ready = _prefetched(request, "steps", parents)
    if ready is not None:
        return [[RunStep.of(row) for row in rows] for rows in ready]
    rows = await runs.steps_of(request.reader, [p._row.id for p in parents])
    return [[RunStep.of(row) for row in group] for group in _grouped(rows, parents, "run_id")]


async def _run_events(request: Request, parents: list[Any], args: dict[str, Any]
                      ) -> list[Any]:
    from schema.runs import RunEvent

    ready = _prefetched(request, "events", parents)
    if ready is not None:
        return [[RunEvent.of(row) for row in rows] for rows in ready]
    out = []
    for parent in parents:  # as the reference: one query per run
        rows = await runs.events(request.reader, parent._row.id,
                                 after_seq=args.get("afterSeq", 0),
                                 limit=args.get("first", 1000))
        out.append([RunEvent.of(row) for row in rows])
    return out


async def _run_notifications(request: Request, parents: list[Any], _: dict[str, Any]
                             ) -> list[Any]:
    from schema.runs import RunNotification

    ready = _prefetched(request, "notifications", parents)
    if ready is not None:
        return [[RunNotification.of(row) for row in rows] for rows in ready]
    rows = await notifications.for_runs(request.reader, [p._row.id for p in parents])
    return [[RunNotification.of(row) for row in group]
            for group in _grouped(rows, parents, "run_id")]


RESOLVED: dict[tuple[str, str], Resolved] = {
    ("User", "tenant"): Resolved(_user_tenant),
    ("Workflow", "createdBy"): Resolved(_workflow_created_by),
    ("Workflow", "config"): Resolved(_workflow_config),
    ("Run", "workflow"): Resolved(_run_workflow),
    ("Run", "customer"): Resolved(_run_customer),
    ("Run", "steps"): Resolved(_run_steps),
    ("Run", "events"): Resolved(_run_events, arguments=True),
    ("Run", "notifications"): Resolved(_run_notifications),
}


# Roots: the reference's root resolvers, returning the same Strawberry objects.

async def _viewer(request: Request, args: dict[str, Any], _: ObjectPlan) -> Any:
    from schema.users import User

    return User.of(request.user)


_FILTER_FIELDS = {"search": "search", "tags": "tags", "isCore": "is_core",
                  "isTemplate": "is_template", "includeDeleted": "include_deleted"}


async def _workflows(request: Request, args: dict[str, Any], _: ObjectPlan) -> Any:
    from schema.relay import Connection
    from schema.workflows import Workflow, WorkflowFilter

    given = args.get("filter")
    spec = (WorkflowFilter(**{_FILTER_FIELDS[k]: v for k, v in given.items()}).spec()
            if given else FilterSpec())
    ordered = args.get("orderBy")
    order = WorkflowOrder(getattr(ordered, "value", ordered)) if ordered \
        else WorkflowOrder.UPDATED_AT_DESC
    page = await workflows.list_workflows(request.reader, spec, order,
                                          first=args.get("first"), after=args.get("after"))
    return Connection.of(page, Workflow.of)


async def _workflow(request: Request, args: dict[str, Any], _: ObjectPlan) -> Any:
    from schema.workflows import Workflow

    if args.get("id") is not None:
        try:
            parsed = UUID(args["id"])
        except ValueError:
            return None
        rows = await workflows.get_many(request.reader, [parsed])
        return Workflow.of(rows[0]) if rows else None
    if args.get("key") is None:
        return None
    found = await workflows.resolve_key_with_creator(request.reader, args["key"])
    if found is None:
        return None
    row, author = found
    if author is not None:
        request.users[author.id] = author  # the author came with the row
    return Workflow.of(row)


_RUN_PARTS = ("steps", "events", "notifications", "workflow", "customer")


async def _run(request: Request, args: dict[str, Any], plan: ObjectPlan) -> Any:
    """The run, and the parts its selection shows (each asked for once), in one statement."""
    from schema.runs import Run

    asked: dict[str, FieldPlan] = {}
    repeated = set()
    for entry in plan.nested:
        name = entry.node.name.value if entry.node else ""
        if name in asked:
            repeated.add(name)
        asked[name] = entry
    wanted = {name: entry for name, entry in asked.items()
              if name in _RUN_PARTS and name not in repeated}
    events = None
    if "events" in wanted:
        given = get_argument_values(wanted["events"].definition,  # type: ignore[arg-type]
                                    wanted["events"].node, request.variables)  # type: ignore[arg-type]
        events = (given.get("afterSeq", 0), given.get("first", 1000))
    found = await runs.view(request.reader, args["id"], steps="steps" in wanted,
                            events=events, notifications="notifications" in wanted,
                            workflow="workflow" in wanted, customer="customer" in wanted)
    if found is None:
        return None
    for name in wanted:
        request.prefetched[(name, found.run.id)] = getattr(found, name)
    return Run.of(found.run)


Root = Callable[[Request, dict[str, Any], "ObjectPlan"], Awaitable[Any]]
ROOTS: dict[str, Root] = {"viewer": _viewer, "workflows": _workflows, "workflow": _workflow,
                          "run": _run}


@dataclass(slots=True)
class RootPlan:
    key: str
    resolve: Root
    node: FieldNode
    definition: GraphQLField
    non_null: bool
    plan: ObjectPlan


@dataclass(slots=True)
class Compiled:
    roots: list[RootPlan]


class NotCompiled(Exception):
    """The document asks for something the compiler does not cover."""


def _plain(collected: CollectedFields) -> None:
    """Only what plain execution means: no @defer, no fragment variables."""
    if collected.new_defer_usages or collected.forbidden_directive_instances:
        raise NotCompiled("@defer")
    for details in collected.grouped_field_set.values():
        for detail in details:
            if detail.defer_usage is not None or detail.fragment_variable_values is not None:
                raise NotCompiled("@defer or fragment variables")


def _unwrap(type_: GraphQLOutputType) -> tuple[GraphQLOutputType, bool]:
    if isinstance(type_, GraphQLNonNull):
        return type_.of_type, True
    return type_, False


def _basic(definition: GraphQLField) -> bool:
    resolve = definition.resolve
    return (resolve is not None and getattr(resolve, "_is_default", False)
            and not inspect.iscoroutinefunction(resolve))


def _attribute_of(definition: GraphQLField) -> str | None:
    """The attribute a basic field reads, where Strawberry's default resolver is
    `getattr(source, python_name)` (its default)."""
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    if (strawberry_field is not None and strawberry_field.default_resolver is getattr
            and strawberry_field.base_resolver is None):
        name: str = strawberry_field.python_name
        return name
    return None


def _reader(definition: GraphQLField) -> Callable[[Any], Any]:
    """A basic field's value: what its default resolver returns."""
    attribute = _attribute_of(definition)
    if attribute is not None:
        return attrgetter(attribute)
    resolve = definition.resolve
    assert resolve is not None
    return lambda source: resolve(source, None)


# Leaves whose serialiser returns a value of this exact type unchanged (graphql-core's
# serialize_string, serialize_id and serialize_boolean): copied without the call.
_PASSTHROUGH: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


class Compiler:
    """Turns (document, operation, variables) into a `Compiled`, cached per shape."""

    def __init__(self, schema: GraphQLSchema, maxsize: int = PLANS_MAX) -> None:
        self.schema = schema
        self._plans: OrderedDict[tuple[Any, ...], tuple[DocumentNode, Compiled | None]] = \
            OrderedDict()
        self._maxsize = maxsize

    def get(self, document: DocumentNode, operation: OperationDefinitionNode,
            variables: VariableValues) -> Compiled | None:
        # Field collection reads variables only in @skip/@include (Boolean!): one plan per
        # combination of the operation's boolean values.
        flags = tuple(sorted((name, value) for name, value in variables.coerced.items()
                             if isinstance(value, bool)))
        key = (id(document), id(operation), flags)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is document:
            self._plans.move_to_end(key)
            return cached[1]
        try:
            compiled: Compiled | None = self._compile(document, operation, variables)
        except NotCompiled:
            compiled = None
        self._plans[key] = (document, compiled)
        while len(self._plans) > self._maxsize:
            self._plans.popitem(last=False)
        return compiled

    def _compile(self, document: DocumentNode, operation: OperationDefinitionNode,
                 variables: VariableValues) -> Compiled:
        query = self.schema.query_type
        assert query is not None
        fragments: dict[str, FragmentDetails] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    raise NotCompiled("fragment variables")
                fragments[definition.name.value] = FragmentDetails(definition)
        collected = collect_fields(self.schema, fragments, variables, query, operation)
        _plain(collected)
        roots = []
        for key, details in collected.grouped_field_set.items():
            node = details[0].node
            name = node.name.value
            resolve = ROOTS.get(name)
            definition = query.fields.get(name)
            if resolve is None or definition is None:
                raise NotCompiled(name)
            inner, non_null = _unwrap(definition.type)
            if not isinstance(inner, GraphQLObjectType) or inner.is_type_of is not None:
                raise NotCompiled(name)
            roots.append(RootPlan(key, resolve, node, definition, non_null,
                                  self._object(inner, details, fragments, variables, operation)))
        return Compiled(roots)

    def _object(self, type_: GraphQLObjectType, details: FieldDetailsList,
                fragments: dict[str, FragmentDetails], variables: VariableValues,
                operation: OperationDefinitionNode) -> ObjectPlan:
        collected = collect_subfields(self.schema, fragments, variables, operation, type_,
                                      details)
        _plain(collected)
        plan = ObjectPlan(type_.name)
        for key, field_details in collected.grouped_field_set.items():
            node = field_details[0].node
            name = node.name.value
            if name == "__typename":
                plan.fields.append(FieldPlan(key, TYPENAME, constant=type_.name))
                continue
            definition = type_.fields.get(name)
            if definition is None:
                raise NotCompiled(name)
            resolved = RESOLVED.get((type_.name, name))
            if resolved is None and (not _basic(definition) or node.arguments):
                raise NotCompiled(f"{type_.name}.{name}")
            if resolved is not None and node.arguments and not resolved.arguments:
                raise NotCompiled(f"{type_.name}.{name}")
            inner, non_null = _unwrap(definition.type)
            entry = FieldPlan(key, LEAF, non_null=non_null, load=resolved,
                              read=None if resolved else _reader(definition),
                              attribute=None if resolved else _attribute_of(definition),
                              node=node, definition=definition)
            if isinstance(inner, GraphQLList):
                item, entry.item_non_null = _unwrap(inner.of_type)
                inner = item
                entry.kind = LEAF_LIST
                if isinstance(inner, GraphQLList):
                    raise NotCompiled("nested lists")
            if isinstance(inner, GraphQLLeafType):
                entry.serialize = inner.serialize
                entry.passthrough = _PASSTHROUGH.get(inner)
                entry.int32 = inner is GraphQLInt  # serialize_int returns such an int as is
            elif isinstance(inner, GraphQLObjectType) and inner.is_type_of is None:
                entry.kind = OBJECT_LIST if entry.kind == LEAF_LIST else OBJECT
                entry.plan = self._object(inner, field_details, fragments, variables,
                                          operation)
            else:
                raise NotCompiled(f"{type_.name}.{name}: abstract")
            plan.fields.append(entry)
        plan.nested = [entry for entry in plan.fields
                       if entry.load is not None or entry.kind in (OBJECT, OBJECT_LIST)]
        plan.build = _builder(plan)
        return plan


async def execute(compiled: Compiled, request: Request) -> dict[str, Any]:
    """The operation's `data`, or Decline."""
    data: dict[str, Any] = {}
    for root in compiled.roots:
        args = get_argument_values(root.definition, root.node, request.variables)
        try:
            value = await root.resolve(request, args, root.plan)
        except DomainError as exc:
            raise Decline(str(exc)) from exc
        if value is None:
            if root.non_null:
                raise Decline("null root")
            data[root.key] = None
            continue
        data[root.key] = (await complete(root.plan, [value], request))[0]
    return data


def _leaf(value: Any, serialize: Callable[[Any], Any]) -> Any:
    try:
        out = serialize(value)
    except Exception as exc:  # the reference reports it as the field's error
        raise Decline("a leaf did not serialise") from exc
    if out is None or out is Undefined:
        raise Decline("a leaf did not serialise")
    return out


async def complete(plan: ObjectPlan, parents: list[Any], request: Request) -> list[dict[str, Any]]:
    """Each parent's completed object, breadth first: one batch per nested field."""
    build = plan.build
    assert build is not None
    outs = [build(parent) for parent in parents]
    for entry in plan.nested:
        if entry.load is None:
            read = entry.read
            assert read is not None
            values = [read(parent) for parent in parents]
        else:
            args = (get_argument_values(entry.definition, entry.node,  # type: ignore[arg-type]
                                        request.variables)
                    if entry.load.arguments else {})
            try:
                values = await entry.load.load(request, parents, args)
            except DomainError as exc:
                raise Decline(str(exc)) from exc
        if entry.plan is None:  # a resolver field of a leaf type (JSON config)
            for out, value in zip(outs, values, strict=True):
                out[entry.key] = _value(entry, value)
            continue
        await _nested(entry, outs, values, request)
    return outs


def _value(entry: FieldPlan, value: Any) -> Any:
    if value is None:
        if entry.non_null:
            raise Decline("null in a non-null field")
        return None
    serialize = entry.serialize
    assert serialize is not None
    if entry.kind == LEAF:
        return _leaf(value, serialize)
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__iter__"):
        raise Decline("not a list")
    out: list[Any] = []
    for item in value:
        if item is None:
            if entry.item_non_null:
                raise Decline("null item")
            out.append(None)
        else:
            out.append(_leaf(item, serialize))
    return out


async def _nested(entry: FieldPlan, outs: list[dict[str, Any]], values: list[Any],
                  request: Request) -> None:
    assert entry.plan is not None
    key = entry.key
    if entry.kind == OBJECT:
        present = [(out, value) for out, value in zip(outs, values, strict=True)
                   if value is not None]
        if entry.non_null and len(present) != len(outs):
            raise Decline("null object in a non-null field")
        completed = await complete(entry.plan, [value for _, value in present], request)
        for (out, _), done in zip(present, completed, strict=True):
            out[key] = done
        return
    flat: list[Any] = []
    for value in values:
        if value is None:
            if entry.non_null:
                raise Decline("null list")
            continue
        if not isinstance(value, list | tuple):
            raise Decline("not a list")
        if any(item is None for item in value):
            raise Decline("null item in an object list")
        flat.extend(value)
    completed = await complete(entry.plan, flat, request)
    start = 0
    for out, value in zip(outs, values, strict=True):
        if value is not None:
            out[key] = completed[start:start + len(value)]
            start += len(value)
