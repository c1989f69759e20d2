"""Property-based fuzzing of the GraphQL API: hypothesis-graphql over the live schema.

Shared by tests/test_fuzz_api.py (a short, seeded run in CI) and scripts/fuzz_api.py (a long
run that prints figures). Documents come from hypothesis-graphql, with strategies for the
schema's scalars that lean on what a seeded tenant really has (its ids, keys, step ids,
cursors), so operations reach the resolvers instead of stopping at "not found". Each
document is sent either as written (literals) or with its arguments hoisted into variables,
the way clients send JSON configs. The app runs in-process (httpx's ASGI transport) on an
event loop of the fuzzer's own, so hypothesis can drive it from plain synchronous code.

An operation fails when the server answers 5xx, raises, reports INTERNAL_SERVER_ERROR or
"Unexpected error", or lets a traceback or SQL reach the response.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import random
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import graphql
import httpx
from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLSchema,
    NameNode,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    parse_type,
    print_ast,
    visit,
)
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, mutations, queries

from domain.seeding import service as seeding
from domain.shared.settings import Settings
from schema.app import create_app
from schema.schema import build_schema
from tests.factories import GraphQLClient, TenantHandle, make_tenant
from tests.factories_workflows import EXAMPLE

# --- failures ----------------------------------------------------------------------------

# What must never reach a client: Python tracebacks and frames, driver/ORM names, SQL.
LEAK_MARKERS = ("Traceback", 'File "', "asyncpg", "sqlalchemy", "SELECT ", "psycopg",
                "Unexpected error")


@dataclass(frozen=True)
class Outcome:
    """What one operation came back as: `kind` for the figures, `failure` when it is a bug."""

    kind: str
    failure: str | None = None
    codes: tuple[str, ...] = ()


def _user_error_codes(data: Any) -> list[str]:
    """Codes of payload `errors: [UserError]` anywhere in `data`."""
    found: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            errors = item.get("errors")
            if isinstance(errors, list):
                found.extend(e["code"] for e in errors if isinstance(e, dict)
                             and isinstance(e.get("code"), str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def classify(status: int, text: str, sent: str) -> Outcome:
    """The outcome of one response; `sent` is the request body (a marker the client sent
    itself and the server echoes back, e.g. in a name, is not a leak)."""
    if status >= 500:
        return Outcome(f"http {status}", f"HTTP {status}")
    try:
        body = json.loads(text)
    except ValueError:
        return Outcome(f"http {status}", f"HTTP {status} with a body that is not JSON")
    if not isinstance(body, dict):
        return Outcome(f"http {status}", "the response is not a JSON object")
    errors = body.get("errors") or []
    codes = tuple(sorted({str((e.get("extensions") or {}).get("code") or "no code")
                          for e in errors if isinstance(e, dict)}))
    if "INTERNAL_SERVER_ERROR" in codes:
        return Outcome("internal", "INTERNAL_SERVER_ERROR", codes)
    for marker in LEAK_MARKERS:
        if marker in text and marker not in sent:
            return Outcome("leak", f"the response contains {marker!r}")
    if status >= 400:
        return Outcome(f"http {status}", None, codes)
    user_codes = tuple(sorted(set(_user_error_codes(body.get("data")))))
    if errors:
        return Outcome("error " + ",".join(codes), None, codes + user_codes)
    if user_codes:
        return Outcome("user " + ",".join(user_codes), None, user_codes)
    return Outcome("data")


# --- the seeded tenant -------------------------------------------------------------------


@dataclass
class World:
    """A seeded tenant seen by its admin: what the strategies pick ids and names from."""

    tenant: TenantHandle
    ids: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)
    configs: list[Any] = field(default_factory=list)
    # Real values by what they name ("customer", "run", "workflow", "step", ...): arguments
    # with those names mostly get one of these (see `aimed`), so operations go past
    # NOT_FOUND into the domain.
    pools: dict[str, list[Any]] = field(default_factory=dict)


def _collect(data: Any, ids: set[str], cursors: set[str]) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in ("id", "channelId", "deletedId") and isinstance(value, str):
                    ids.add(value)
                elif key in ("cursor", "endCursor", "startCursor") and isinstance(value, str):
                    cursors.add(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


_SEED_MUTATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("""mutation($i: CompanyContactsInput!) { updateCompanyContacts(input: $i) {
         errors { code } } }""",
     {"i": {"vpCustomerSuccess": "vp@fuzz.test", "ceo": "ceo@fuzz.test",
            "other": {"cfo": "cfo@fuzz.test"}}}),
    ("""mutation($i: CreateUserInput!) { createUser(input: $i) { user { id } errors { code } } }""",
     {"i": {"email": "manager@fuzz.test", "name": "Morgan Manager", "role": "EDITOR"}}),
    ("""mutation($i: CreateUserInput!) { createUser(input: $i) { user { id } errors { code } } }""",
     {"i": {"email": "viewer@fuzz.test", "name": "Val Viewer", "role": "VIEWER"}}),
    ("""mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) {
         workflow { id } errors { code } } }""",
     {"i": {"key": "playbook", "name": "Playbook", "config": {**EXAMPLE, "id": "playbook"},
            "tags": ["fuzz", "renewal"], "description": "seeded"}}),
    ("""mutation($i: CreateSavedActionInput!) { createSavedAction(input: $i) {
         savedAction { id } errors { code } } }""",
     {"i": {"actionId": "snooze-3-days", "name": "Snooze 3 days", "type": "snooze",
            "config": {"days": 3}}}),
    ("""mutation($i: NotificationChannelInput!) { createNotificationChannel(input: $i) {
         channel { id } errors { code } } }""",
     {"i": {"type": "webhook", "name": "Hook", "config": {"url": "http://127.0.0.1:9/hook"},
            "secret": "s3cret"}}),
    ("""mutation($i: NotificationChannelInput!) { createNotificationChannel(input: $i) {
         channel { id } errors { code } } }""",
     {"i": {"type": "email", "name": "Mail", "config": {"host": "127.0.0.1", "port": 2525,
                                                        "from": "cs@fuzz.test"}}}),
    ("""mutation($i: LlmBudgetInput!) { setLlmBudget(input: $i) { errors { code } } }""",
     {"i": {"monthlyTokens": 1000000, "monthlyCostUsd": 50.0}}),
)

_SEED_QUERIES = """
query {
  customers(first: 50) { edges { cursor node { id } } pageInfo { endCursor } }
  workflows(first: 50) { edges { cursor node { id key config
    versions(first: 5) { edges { cursor } } } } }
  runs(first: 50) { edges { cursor node { id } } }
  savedActions { id actionId }
  notificationChannels { id }
  viewer { id manager { id } }
  inbox(first: 20) { id }
}
"""


async def _ok(gql: GraphQLClient, token: str, query: str, variables: dict[str, Any]
              ) -> dict[str, Any]:
    data = await gql(query, variables, token=token)
    codes = _user_error_codes(data)
    assert not codes, (query, codes)
    return data


def _config_words(config: Any, words: set[str]) -> None:
    """Step ids, branch ids, action ids, notification ids: the names arguments refer to."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("id", "next", "savedAction", "returnToStep", "defaultRoute",
                        "triggersAction", "actionTriggered", "name"):
                value = item.get(key)
                if isinstance(value, str):
                    words.add(value)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def seed_world(http: httpx.AsyncClient, settings: Settings) -> World:
    """A tenant with users, contacts, customers, own and cloned workflows, a saved action,
    channels, a budget and runs; its admin's token, and every id, key and cursor in it."""
    await seeding.seed_core(settings.database_url)
    tenant = await make_tenant(settings, name="Fuzz Co")
    gql = GraphQLClient(http)
    token = tenant.token
    users = [str(tenant.admin_id)]
    for query, variables in _SEED_MUTATIONS:
        made = await _ok(gql, token, query, variables)
        if "createUser" in made:
            users.append(made["createUser"]["user"]["id"])
    core = await gql('{ workflow(key: "critical") { id } }', token=token)
    await _ok(gql, token, """mutation($i: CloneWorkflowInput!) { cloneWorkflow(input: $i) {
        workflow { id } errors { code } } }""", {"i": {
        "sourceId": core["workflow"]["id"], "key": "critical-own", "name": "Own critical"}})
    today = date.today()
    customer_ids = []
    for n, days in enumerate((10, 3, -8, 40)):
        data = await _ok(gql, token, """mutation($i: CustomerInput!) { upsertCustomer(input: $i) {
            customer { id } errors { code } } }""", {"i": {
            "externalId": f"ext-{n}", "name": f"Customer {n}", "arr": 100000.0 * (n + 1),
            "renewalDate": (today + timedelta(days=days)).isoformat(), "hasAccountPlan": n % 2 == 0,
            "healthScore": 30 + 10 * n, "accountTeam": {"ae": f"ae{n}@fuzz.test"}}})
        customer_ids.append(data["upsertCustomer"]["customer"]["id"])
    for key, customer in (("playbook", customer_ids[0]), ("critical", customer_ids[1]),
                          ("emergency", customer_ids[2])):
        await _ok(gql, token, """mutation($i: StartRunInput!) { startRun(input: $i) {
            run { id } errors { code } } }""",
                  {"i": {"workflowKey": key, "customerId": customer}})
    data = await gql(_SEED_QUERIES, token=token)
    ids: set[str] = {str(tenant.id), str(tenant.admin_id)}
    cursors: set[str] = set()
    _collect(data, ids, cursors)
    words: set[str] = {"playbook", "critical", "emergency", "overdue", "critical-own",
                       "snooze-3-days", "fuzz", "renewal", "core", "ext-0", "ext-1",
                       "v1", "stable", "UTC", "Europe/Berlin", "America/New_York",
                       "email", "slack", "webhook", "in_app", "snooze", "skip", "escalation",
                       "script", "code:snooze", "code:skip", "code:escalate", "code:script",
                       "pending", "running", "waiting", "completed", "failed", "cancelled",
                       "fixed", "llm", "rag", "saved_action", "admin@fuzz.test",
                       "manager@fuzz.test", "{{customer.name}}",
                       "{{workflow.daysUntilRenewal}} days", "{{#if customer.arr}}big{{/if}}",
                       "{{lt customer.healthScore 40}}", "{{", "{{/each}}", "{{> nope}}",
                       "{{customer.name", "Hello"}
    configs: list[Any] = []
    for edge in data["workflows"]["edges"]:
        node = edge["node"]
        words.add(node["key"])
        _config_words(node["config"], words)
        configs.append(node["config"])
        _collect(node["versions"], ids, cursors)
    for action in data["savedActions"]:
        words.add(action["actionId"])
    steps: set[str] = set()
    branches: set[str] = set()
    for config in configs:
        for step in config.get("steps") or []:
            steps.add(step["id"])
            branches.update(b["id"] for b in step.get("chatBranches") or [])
    pools = {
        "customer": [e["node"]["id"] for e in data["customers"]["edges"]],
        "run": [e["node"]["id"] for e in data["runs"]["edges"]],
        "workflow": [e["node"]["id"] for e in data["workflows"]["edges"]],
        "key": sorted({e["node"]["key"] for e in data["workflows"]["edges"]}),
        "step": sorted(steps),
        "branch": sorted(branches),
        "action": sorted(a["actionId"] for a in data["savedActions"]),
        "channel": [c["id"] for c in data["notificationChannels"]],
        "notification": [n["id"] for n in data["inbox"]],
        "user": users,
        "cursor": sorted(cursors),
        "version": [1, 2, 3],
        "size": [1, 2, 5, 20, 50, 100],
        "new_key": [f"new-{n}" for n in range(40)],
        "external_id": [f"ext-{n}" for n in range(4)] + [f"ext-new-{n}" for n in range(20)],
        "email": [f"person-{n}@fuzz.test" for n in range(20)] + ["manager@fuzz.test"],
        "time_zone": ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                      "Pacific/Kiritimati", "Etc/GMT+12"],
        "action_type": ["snooze", "skip", "escalation", "script"],
        "handler": ["code:snooze", "code:skip", "code:escalate", "code:script"],
        "channel_type": ["email", "slack", "webhook"],
        "branch_type": ["fixed", "llm", "rag", "saved_action"],
        "channel_config": [{"url": "http://127.0.0.1:9/hook"},
                           {"url": "https://hooks.slack.com/services/T/B/x"},
                           {"host": "127.0.0.1", "port": 2525, "from": "cs@fuzz.test"},
                           {"host": "127.0.0.1", "port": 25, "from": "cs@fuzz.test",
                            "username": "u", "starttls": True}],
        "action_config": [{"days": 3}, {}, {"workflowKey": "emergency",
                                            "recipients": ["{{csm.manager}}"]},
                          {"url": "http://127.0.0.1:9/act"}],
        "config": configs,
        "tags": [["fuzz"], [], ["renewal", "q3"]],
        "template": ["{{customer.name}}", "Renews in {{workflow.daysUntilRenewal}} days",
                     "{{#if customer.hasAccountPlan}}plan{{else}}none{{/if}}",
                     "{{#each customer.accountTeam}}{{this}} {{/each}}",
                     "{{lt customer.healthScore 40}}", "{{csm.email}}", "{{"],
    }
    return World(tenant=tenant, ids=sorted(ids), words=sorted(words), cursors=sorted(cursors),
                 configs=configs, pools={k: v for k, v in pools.items() if v})


# --- strategies --------------------------------------------------------------------------


class PyValue(graphql.StringValueNode):
    """A value node that carries a Python value to be sent as a variable (JSON with keys
    that are not GraphQL names, e.g. "$.steps" or "a-b"). Always hoisted into variables."""

    python: Any


PyValue.kind = "string_value"  # visitors treat it as a string literal until it is hoisted


def _py(value: Any) -> PyValue:
    node = PyValue(value=json.dumps(value))
    node.python = value
    return node


def to_node(value: Any) -> graphql.ValueNode:
    """A GraphQL literal for a JSON value whose keys are names; otherwise a PyValue."""
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return graphql.BooleanValueNode(value=value)
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    if isinstance(value, float):
        return graphql.FloatValueNode(value=repr(value))
    if isinstance(value, str):
        return graphql.StringValueNode(value=value)
    if isinstance(value, list):
        items = [to_node(v) for v in value]
        if any(isinstance(i, PyValue) for i in items):
            return _py(value)
        return graphql.ListValueNode(values=tuple(items))
    if isinstance(value, dict):
        if not all(isinstance(k, str) and _NAME.fullmatch(k) for k in value):
            return _py(value)
        fields = [graphql.ObjectFieldNode(name=NameNode(value=k), value=to_node(v))
                  for k, v in value.items()]
        if any(isinstance(f.value, PyValue) for f in fields):
            return _py(value)
        return graphql.ObjectValueNode(fields=tuple(fields))
    raise TypeError(type(value))


_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")

# Text: mostly short and printable, sometimes anything the JSON encoder can carry (the
# edge refuses NUL and lone surrogates with a 400, which is a fine answer too).
_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.@{}#/ 0123456789", max_size=30),
    st.sampled_from(["", " ", "null", "undefined", "-1", "0", "1e309", "NaN", "../../etc",
                     "'; DROP TABLE customers; --", "<script>alert(1)</script>", "\u202e",
                     "é" * 3, "😀", "a" * 300, "$.steps[0]",
                     "00000000-0000-0000-0000-000000000000"]),
)


def _json_leaf() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                     st.sampled_from([2**63, -(2**63) - 1, 10**30, 2**31, -1, 0]),
                     st.floats(allow_nan=False, allow_infinity=False), _TEXT)


def json_values(world: World | None = None) -> st.SearchStrategy[Any]:
    """JSON values a few levels deep (deep nesting is its own family), and near-valid
    workflow configs: a seeded config with one part replaced or removed."""
    keys = st.one_of(_TEXT, st.sampled_from(_CONFIG_KEYS))
    anything = st.recursive(
        _json_leaf(),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(keys, inner, max_size=4)),
        max_leaves=12,
    )
    if world is None or not world.configs:
        return anything
    configs = st.sampled_from(world.configs)
    return st.one_of(anything, configs, st.builds(_mutate_config, configs, st.lists(
        st.tuples(st.integers(0, 10**6), anything, st.booleans()), min_size=1, max_size=3)))


_CONFIG_KEYS = ("id", "name", "version", "steps", "type", "next", "routing", "routes",
                "condition", "defaultRoute", "execution", "llmPrompt", "notifications",
                "chatBranches", "trigger", "variables", "context", "url", "host", "port",
                "from", "days", "workflowKey", "recipients", "schemaVersion", "config",
                "key", "exportedAt", "approval", "query", "schedule", "daysOverdue")


def _mutate_config(config: Any, edits: list[tuple[int, Any, bool]]) -> Any:
    """The config with nodes picked by index replaced (or deleted from their parent)."""
    made = copy.deepcopy(config)
    for pick, replacement, delete in edits:
        spots: list[tuple[Any, Any]] = []
        stack = [made]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                spots.extend((item, k) for k in item)
                stack.extend(item.values())
            elif isinstance(item, list):
                spots.extend((item, i) for i in range(len(item)))
                stack.extend(item)
        if not spots:
            return replacement
        parent, key = spots[pick % len(spots)]
        if delete:
            del parent[key]
        else:
            parent[key] = replacement
    return made


_SANE_DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31))
_NEAR_DATES = st.integers(-400, 400).map(lambda n: date.today() + timedelta(days=n))


def _dates() -> st.SearchStrategy[str]:
    return st.one_of(
        _NEAR_DATES.map(date.isoformat), _NEAR_DATES.map(date.isoformat),
        _SANE_DATES.map(date.isoformat), st.dates().map(date.isoformat),
        st.sampled_from(["9999-12-31", "0001-01-01", "2026-02-29", "2024-02-29", "2026-13-01",
                         "2026-00-10", "20260101", "2026-1-1", "", "today", "2026-01-01T00:00:00",
                         "+10000-01-01", "-0001-01-01"]),
        _TEXT,
    )


def _datetimes() -> st.SearchStrategy[str]:
    sane = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2999, 12, 30))
    near = st.integers(-400 * 24, 400 * 24).map(
        lambda h: (datetime.now(UTC) + timedelta(hours=h)).isoformat())
    edges = st.sampled_from([  # hypothesis favours the first ones
        "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00",
        "9999-12-31T23:59:59.999999", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
        "1900-01-01T00:00:00+01:00", "2999-12-31T23:59:59-01:00", "2026-06-01T12:00:00Z",
        "2026-06-01", "2026-06-01T25:00:00", "2026-06-01T12:00:00+24:00", "", "now", "1e10"])
    return st.one_of(
        near, near, sane.map(lambda d: d.isoformat()),
        sane.map(lambda d: d.replace(tzinfo=UTC).isoformat()),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        edges, edges, _TEXT,
    )


def _boundary_ints() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, 1, 2, 3, -1, 5, 20, 50, 100, 101, 1000, 10**6,
                                      2**31 - 1, -(2**31)]),
                     st.integers(-(2**31), 2**31 - 1))


def scalar_strategies(world: World) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Value nodes for every scalar: the custom ones (JSON, Date, DateTime) and the built-in
    ones too, so IDs and names are mostly the tenant's own."""
    real_ids = st.sampled_from(world.ids)
    words = st.sampled_from(world.words)
    cursors = st.sampled_from(world.cursors) if world.cursors else _TEXT
    ids = st.one_of(real_ids, real_ids, real_ids, st.uuids().map(str), cursors, _TEXT)
    strings = st.one_of(words, words, words, cursors, _TEXT)
    return {
        "ID": ids.map(lambda v: graphql.StringValueNode(value=v)),
        "String": strings.map(lambda v: graphql.StringValueNode(value=v)),
        "Int": _boundary_ints().map(lambda v: graphql.IntValueNode(value=str(v))),
        "Float": st.one_of(
            st.sampled_from([0.0, -0.0, 1.5, -1.0, 1e6, 1e15, 1e308, -1e308, 5e-324]),
            st.floats(allow_nan=False, allow_infinity=False),
        ).map(lambda v: graphql.FloatValueNode(value=repr(v))),
        "JSON": json_values(world).map(to_node),
        "Date": _dates().map(lambda v: graphql.StringValueNode(value=v)),
        "DateTime": _datetimes().map(lambda v: graphql.StringValueNode(value=v)),
    }


def live_schema() -> GraphQLSchema:
    """The schema the app serves (not the exported SDL file): what is fuzzed."""
    return build_schema()._schema


@dataclass(frozen=True)
class Operation:
    """One request: a document, whether its arguments go as variables, and the seed that
    aims its naming arguments at the tenant's real ids (None: left as generated)."""

    document: DocumentNode
    hoist: bool
    aim: int | None
    repeat: int = 1  # root fields written this many times under aliases (run side by side)
    pools: dict[str, list[Any]] = field(repr=False, compare=False, default_factory=dict)

    def __repr__(self) -> str:
        text = " ".join(print_ast(self.document).split())
        return (f"Operation({text[:1500]!r}, hoist={self.hoist}, aim={self.aim}, "
                f"repeat={self.repeat})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))

    def body(self, schema: GraphQLSchema) -> dict[str, Any]:
        document = repeated(self.document, self.repeat)
        if self.aim is not None:
            document = aimed(document, schema, self.pools, random.Random(self.aim))  # noqa: S311
        query, variables = hoisted(document, schema, everything=self.hoist)
        return {"query": query, "variables": variables}


def operations(world: World, schema: GraphQLSchema,
               exclude: Callable[[DocumentNode], bool] | None = None
               ) -> st.SearchStrategy[Operation]:
    """Documents over the live schema: mostly one root field each (every query and mutation
    field equally likely), sometimes several, sometimes one with a schema violation."""
    scalars = scalar_strategies(world)
    options: dict[str, Any] = {"custom_scalars": scalars, "print_ast": _identity}
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    per_field = [queries(schema, fields=[name], **options) for name in schema.query_type.fields]
    per_field += [mutations(schema, fields=[name], **options)
                  for name in schema.mutation_type.fields]
    documents = st.one_of(
        st.one_of(per_field), st.one_of(per_field), st.one_of(per_field), st.one_of(per_field),
        st.one_of(per_field), st.one_of(per_field), st.one_of(per_field),
        from_schema(schema, **options),
        from_schema(schema, mode=Mode.NEGATIVE, **options),
    )
    if exclude is not None:
        documents = documents.filter(lambda d: not exclude(d))
    aims = st.one_of(st.none(), *[st.integers(0, 2**32)] * 3)
    repeats = st.sampled_from([1, 1, 1, 1, 2, 3])
    pools = world.pools
    return st.builds(Operation, documents, st.booleans(), aims, repeats).map(
        lambda operation: dataclasses.replace(operation, pools=pools))


def known_families(document: DocumentNode) -> bool:
    """Documents of bug families being fixed elsewhere, left out until the fix lands.

    None now: "values out of range" (`arr` of 1e15 or more) landed with the input limits.
    """
    return False


# Which pool an argument or input field draws from: by (root field, argument) or
# (input type, field) first, then by name alone.
_AIM_BY_PLACE = {
    ("ChatBranchInput", "id"): "branch", ("UpdateWorkflowInput", "id"): "workflow",
    ("workflow", "id"): "workflow", ("workflowDiff", "id"): "workflow",
    ("rollbackWorkflow", "id"): "workflow", ("tagWorkflowVersion", "id"): "workflow",
    ("deleteWorkflow", "id"): "workflow", ("restoreWorkflow", "id"): "workflow",
    ("run", "id"): "run", ("customer", "id"): "customer",
    ("updateNotificationChannel", "id"): "channel", ("deleteNotificationChannel", "id"): "channel",
    ("markNotificationRead", "id"): "notification",
    ("workflow", "key"): "key", ("CreateWorkflowInput", "key"): "new_key",
    ("CloneWorkflowInput", "key"): "new_key", ("importWorkflow", "key"): "new_key",
    ("CreateSavedActionInput", "actionId"): "new_key",
    ("CreateSavedActionInput", "type"): "action_type",
    ("NotificationChannelInput", "type"): "channel_type",
    ("NotificationChannelInput", "config"): "channel_config",
    ("CreateSavedActionInput", "config"): "action_config",
    ("UpdateSavedActionInput", "config"): "action_config",
    ("ChatBranchInput", "type"): "branch_type",
    ("CustomerInput", "externalId"): "external_id",
    ("CreateUserInput", "email"): "email",
    ("CompanyContactsInput", "vpCustomerSuccess"): "email",
    ("CompanyContactsInput", "ceo"): "email",
    ("TenantSettingsInput", "timeZone"): "time_zone",
    ("renderTemplate", "template"): "template",
    ("CreateWorkflowInput", "config"): "config", ("UpdateWorkflowInput", "config"): "config",
    ("validateWorkflowConfig", "config"): "config",
    ("CreateWorkflowInput", "tags"): "tags", ("UpdateWorkflowInput", "tags"): "tags",
}
_AIM_BY_NAME = {
    "customerId": "customer", "runId": "run", "workflowId": "workflow", "sourceId": "workflow",
    "workflowKey": "key", "stepId": "step", "fromStepId": "step", "branchId": "branch",
    "next": "step", "returnToStep": "step", "savedAction": "action", "actionId": "action",
    "triggersAction": "action", "channelId": "channel", "managerId": "user", "csmId": "user",
    "number": "version", "toVersion": "version", "fromVersion": "version",
    "after": "cursor", "first": "size", "handler": "handler",
}


def aimed(document: DocumentNode, schema: GraphQLSchema, world_pools: dict[str, list[Any]],
          pick: random.Random) -> DocumentNode:
    """The document with most arguments and input fields that name something (customerId,
    stepId, a workflow's id...) set to a real one of the tenant's, chosen by `pick`."""
    type_info = TypeInfo(schema)
    root: list[str] = []

    def value_for(place: tuple[str, str]) -> graphql.ValueNode | None:
        pool_name = _AIM_BY_PLACE.get(place) or _AIM_BY_NAME.get(place[1])
        pool = world_pools.get(pool_name or "")
        if not pool or pick.random() < 0.25:
            return None
        return to_node(pick.choice(pool))

    class Aim(Visitor):
        def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
            if type_info.get_parent_type() in (schema.query_type, schema.mutation_type):
                root[:] = [node.name.value]

        def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
            if isinstance(node.value, graphql.NullValueNode) or not root:
                return None
            value = value_for((root[0], node.name.value))
            return None if value is None else ArgumentNode(name=node.name, value=value)

        def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
            parent = graphql.get_named_type(type_info.get_parent_input_type())
            if parent is None or isinstance(node.value, graphql.NullValueNode) \
                    or not isinstance(parent, graphql.GraphQLInputObjectType):
                return None
            value = value_for((parent.name, node.name.value))
            return None if value is None else graphql.ObjectFieldNode(name=node.name,
                                                                      value=value)

    result: DocumentNode = visit(document, TypeInfoVisitor(type_info, Aim()))
    return result


def repeated(document: DocumentNode, times: int) -> DocumentNode:
    """Each root field `times` times, aliased r0_, r1_...: sibling queries resolve
    concurrently and sibling mutations one after the other in the same transaction."""
    if times <= 1:
        return document
    definitions = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            selections = [
                graphql.FieldNode(alias=NameNode(value=f"r{n}_{s.name.value}"), name=s.name,
                                  arguments=s.arguments, directives=s.directives,
                                  selection_set=s.selection_set)
                for s in definition.selection_set.selections if isinstance(s, graphql.FieldNode)
                for n in range(times)]
            definition = OperationDefinitionNode(
                operation=definition.operation, name=definition.name,
                variable_definitions=definition.variable_definitions,
                directives=definition.directives,
                selection_set=graphql.SelectionSetNode(selections=tuple(selections)))
        definitions.append(definition)
    return DocumentNode(definitions=tuple(definitions))


def _identity(document: DocumentNode) -> DocumentNode:
    return document


# --- hoisting arguments into variables ---------------------------------------------------


def _has_py(node: Any) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, PyValue):
            return True
        if isinstance(item, graphql.ListValueNode):
            stack.extend(item.values)
        elif isinstance(item, graphql.ObjectValueNode):
            stack.extend(f.value for f in item.fields)
    return False


def to_python(node: graphql.ValueNode) -> Any:
    if isinstance(node, PyValue):
        return node.python
    if isinstance(node, graphql.NullValueNode):
        return None
    if isinstance(node, graphql.IntValueNode):
        return int(node.value)
    if isinstance(node, graphql.FloatValueNode):
        return float(node.value)
    if isinstance(node, graphql.StringValueNode | graphql.EnumValueNode):
        return node.value
    if isinstance(node, graphql.BooleanValueNode):
        return node.value
    if isinstance(node, graphql.ListValueNode):
        return [to_python(v) for v in node.values]
    if isinstance(node, graphql.ObjectValueNode):
        return {f.name.value: to_python(f.value) for f in node.fields}
    raise TypeError(type(node))


_ERRORS = graphql.parse("{ errors { code message path } }").definitions[0] \
    .selection_set.selections[0]  # type: ignore[attr-defined]


def hoisted(document: DocumentNode, schema: GraphQLSchema, *, everything: bool
            ) -> tuple[str, dict[str, Any]]:
    """The document's text and variables: arguments that carry a PyValue (or all, when
    `everything`) become `$vN` variables of the argument's declared type."""
    type_info = TypeInfo(schema)
    variables: dict[str, Any] = {}
    definitions: list[VariableDefinitionNode] = []

    class Hoist(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
            argument = type_info.get_argument()
            if argument is None or not (everything or _has_py(node.value)):
                return None
            name = f"v{len(definitions)}"
            variables[name] = to_python(node.value)
            variable = VariableNode(name=NameNode(value=name))
            definitions.append(VariableDefinitionNode(variable=variable,
                                                      type=parse_type(str(argument.type))))
            return ArgumentNode(name=node.name, value=variable)

        def enter_field(self, node: graphql.FieldNode, *_: Any) -> Any:
            # Payloads always list their user errors: the figures count their codes.
            output = type_info.get_type()
            named = graphql.get_named_type(output) if output is not None else None
            if not isinstance(named, graphql.GraphQLObjectType) or "errors" not in named.fields \
                    or graphql.get_named_type(named.fields["errors"].type).name != "UserError":
                return None
            selections = node.selection_set.selections if node.selection_set else ()
            if any(isinstance(s, graphql.FieldNode) and s.name.value == "errors"
                   and s.alias is None for s in selections):
                return None
            return graphql.FieldNode(
                alias=node.alias, name=node.name, arguments=node.arguments,
                directives=node.directives,
                selection_set=graphql.SelectionSetNode(selections=(*selections, _ERRORS)))

    changed = visit(document, TypeInfoVisitor(type_info, Hoist()))
    operations_ = []
    for definition in changed.definitions:
        if isinstance(definition, OperationDefinitionNode) and definitions:
            definition = OperationDefinitionNode(
                operation=definition.operation, name=definition.name,
                variable_definitions=tuple(definitions), directives=definition.directives,
                selection_set=definition.selection_set)
        operations_.append(definition)
    return print_ast(DocumentNode(definitions=tuple(operations_))), variables


# --- running -----------------------------------------------------------------------------


@dataclass
class Failure:
    outcome: Outcome
    body: dict[str, Any]
    response: str
    cause: str = ""  # the server's logged exception: type, message and innermost frame


class ServerLog(logging.Handler):
    """Keeps the exception the app logged for each request id (its own log lines say
    "[request <id>]"), so a failure can be reported with its cause."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.causes: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"\[request ([^\]]+)\]", record.getMessage())
        if found is None or not record.exc_info or record.exc_info[1] is None:
            return
        error = record.exc_info[1]
        frames = traceback.extract_tb(error.__traceback__)
        own = [f for f in frames if "/site-packages/" not in f.filename] or frames
        where = f"{own[-1].filename.rsplit('/', 2)[-2:]!s}:{own[-1].lineno}" if own else "?"
        self.causes[found.group(1)] = f"{type(error).__name__}: {str(error)[:200]} at {where}"


@dataclass
class Tally:
    """Figures of a fuzzing run."""

    operations: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_field: Counter[str] = field(default_factory=Counter)
    reached: Counter[str] = field(default_factory=Counter)  # root fields that ran a resolver
    failures: list[Failure] = field(default_factory=list)

    def add(self, body: dict[str, Any], root: list[str], outcome: Outcome, text: str,
            cause: str) -> None:
        self.operations += 1
        self.by_kind[outcome.kind.split(" ")[0]] += 1
        self.by_code.update(outcome.codes)
        self.by_field.update(root)
        if outcome.kind == "data" or outcome.kind.startswith("user"):
            self.reached.update(root)
        if outcome.failure:
            self.failures.append(Failure(outcome, body, text[:2000], cause))


def root_fields(document: DocumentNode) -> list[str]:
    names = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            names += [f"{definition.operation.value}.{s.name.value}"
                      for s in definition.selection_set.selections
                      if isinstance(s, graphql.FieldNode)]
    return names


class Fuzzer:
    """The app in-process on an event loop of its own, a seeded tenant, and `check`, which
    sends one operation and returns its outcome (synchronously, for hypothesis)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.schema = live_schema()
        self.tally = Tally()
        self.log = ServerLog()
        self.world: World

    @contextmanager
    def running(self, *, quiet: bool = False) -> Iterator[Fuzzer]:
        """Start the app and seed the tenant; `quiet` keeps the app's error log (each
        failure's traceback) off stderr: the failures carry their cause."""
        stepwise_log = logging.getLogger("stepwise")
        stepwise_log.addHandler(self.log)
        propagate = stepwise_log.propagate
        stepwise_log.propagate = not quiet
        app = create_app(self.settings)
        lifespan = app.router.lifespan_context(app)
        self.loop.run_until_complete(lifespan.__aenter__())
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://stepwise.test",
                                      timeout=60)
        try:
            self.world = self.loop.run_until_complete(seed_world(self.http, self.settings))
            yield self
        finally:
            self.loop.run_until_complete(self.http.aclose())
            self.loop.run_until_complete(lifespan.__aexit__(None, None, None))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            stepwise_log.removeHandler(self.log)
            stepwise_log.propagate = propagate

    def send(self, body: dict[str, Any], request_id: str) -> tuple[int, str]:
        async def post() -> tuple[int, str]:
            response = await self.http.post("/graphql", json=body, headers={
                "Authorization": f"Bearer {self.world.tenant.token}", "X-Request-Id": request_id})
            return response.status_code, response.text

        return self.loop.run_until_complete(post())

    def check(self, operation: Operation) -> Outcome:
        body = operation.body(self.schema)
        request_id = f"fuzz-{self.tally.operations}"
        try:
            status, text = self.send(body, request_id)
        except Exception as exc:  # the transport raised: as bad as a 500
            status, text = 599, f"{type(exc).__name__}: {exc}"
        outcome = classify(status, text, json.dumps(body))
        self.tally.add(body, root_fields(operation.document), outcome, text,
                       self.log.causes.pop(request_id, ""))
        return outcome


def describe(failure: Failure) -> str:
    return (f"{failure.outcome.failure} {failure.cause}\n--- document\n{failure.body['query']}\n"
            f"--- variables\n{json.dumps(failure.body['variables'], indent=1)[:2000]}\n"
            f"--- response\n{failure.response}")


__all__ = ["Fuzzer", "Operation", "World", "classify", "describe", "operations", "seed_world"]
