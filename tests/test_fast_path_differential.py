"""The fast path gives exactly the reference's JSON, errors included.

Three answers to every request, from one database:
- the reference: a second app with `reference_execution` (graphql-core's own executor
  behind Strawberry's view, no fast path);
- the first answer of the app under test (Strawberry's view with `PlannedExecutor`), which
  also prepares the document;
- its second answer (the prepared query on `schema.fast`, counted so the test knows it ran).

Every contract query runs with ordinary and with failing variables, then a generated set of
documents over the builder's types (aliases, fragments, `@skip`/`@include` on variables,
`__typename`, failing nested connections under lists for null propagation).
Only the request id in masked errors differs between answers and is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql import OperationDefinitionNode, OperationType, parse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from domain.shared.settings import PROJECT_ROOT
from schema.app import create_app
from tests.factories import contract_operation
from tests.factories_runs import Team, make_customer, make_team, start
from tests.factories_workflows import config, make_workflow, op, seed_core

pytestmark = pytest.mark.asyncio



def _contract_queries() -> set[str]:
    """Every query operation of the contract documents (the repo copy)."""
    names = set()
    for path in (PROJECT_ROOT / "tests" / "contract").glob("*.graphql"):
        for definition in parse(path.read_text()).definitions:
            if (isinstance(definition, OperationDefinitionNode) and definition.name
                    and definition.operation == OperationType.QUERY):
                names.add(definition.name.value)
    return names


@pytest_asyncio.fixture(scope="module")
async def reference(settings) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    application = create_app(dataclasses.replace(settings, reference_execution=True))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ref.test") as client:
            yield client


@dataclasses.dataclass
class World:
    team: Team
    workflow_id: str
    cursor: str
    customer_id: str
    run_id: str


@pytest_asyncio.fixture(scope="module")
async def world(gql, settings) -> World:  # type: ignore[no-untyped-def]
    await seed_core(settings)
    team = await make_team(gql, settings)
    token = team.tenant.token
    made = [await make_workflow(gql, team.tenant, key=f"diff-{n}", tags=["diff", f"t{n % 2}"],
                                description=None if n % 2 else f"Workflow number {n}")
            for n in range(4)]
    changed = config("diff-0", description="second version")
    await op(gql, "UpdateWorkflow", {"input": {"id": made[0]["id"], "config": changed}},
             token=token)
    page = await gql(contract_operation("WorkflowList"), {"first": 2}, token=token)
    customer = await make_customer(gql, team, days=20, health=30)
    started = await start(gql, team, "critical", customer["id"])
    assert started["errors"] == [], started["errors"]
    return World(team, made[0]["id"], page["workflows"]["pageInfo"]["endCursor"],
                 customer["id"], started["run"]["id"])


def _cases(world: World) -> list[tuple[str, dict[str, Any]]]:
    w, c = world.workflow_id, world.customer_id
    return [
        ("Viewer", {}),
        ("WorkflowList", {"first": 2}),
        ("WorkflowList", {"first": 2, "after": world.cursor}),
        ("WorkflowList", {"filter": {"tags": ["t1"]}, "orderBy": "NAME_ASC"}),
        ("WorkflowList", {"filter": {"search": "number", "isCore": False}}),
        ("WorkflowList", {"after": "not a cursor"}),
        ("WorkflowList", {"first": -1}),
        ("WorkflowByKey", {"key": "diff-1"}),
        ("WorkflowByKey", {"key": "critical"}),
        ("WorkflowByKey", {"key": "missing"}),
        ("WorkflowHistory", {"id": w, "first": 1}),
        ("WorkflowHistory", {"id": w, "after": "garbage"}),
        ("WorkflowHistory", {"id": str(uuid.uuid4())}),
        ("CompareVersions", {"id": w, "from": 1, "to": 2}),
        ("CompareVersions", {"id": w, "from": 1, "to": 99}),
        ("ConfigSchema", {}),
        ("ValidateConfig", {"config": config("valid")}),
        ("ValidateConfig", {"config": {"id": "x", "steps": [{"id": 1}]}}),
        ("ExportWorkflow", {"id": w}),
        ("ExportWorkflow", {"id": "not-an-id"}),
        ("SavedActions", {}),
        ("StepBranches", {"key": "critical", "stepId": "critical-status-assessment"}),
        ("StepBranches", {"key": "critical", "stepId": "nope"}),
        ("Customers", {"first": 5}),
        ("Customers", {"search": "zzz-nobody"}),
        ("Customers", {"after": "garbage"}),
        ("CustomerContext", {"customerId": c}),
        ("CustomerContext", {"customerId": str(uuid.uuid4())}),
        ("RenderTemplate", {"template": "Hi {{customer.name}} {{#each x}}", "customerId": c}),
        ("RenderTemplate", {"template": "Hi {{customer.name}}", "customerId": c}),
        ("PreviewNotifications", {"key": "critical", "customerId": c}),
        ("Run", {"id": world.run_id}),
        ("Run", {"id": "garbage"}),
        ("Runs", {"first": 5}),
        ("Runs", {"after": "garbage"}),
        ("ChatThread", {"id": str(uuid.uuid4())}),
    ]


def _normal(payload: dict[str, Any]) -> str:
    """The answer with request ids dropped and errors in a stable order."""
    for error in payload.get("errors") or []:
        (error.get("extensions") or {}).pop("requestId", None)
    if payload.get("errors"):
        payload["errors"] = sorted(payload["errors"], key=lambda e: json.dumps(e, sort_keys=True))
    return json.dumps(payload, sort_keys=True)


async def _three(http: httpx.AsyncClient, reference: httpx.AsyncClient, app: Starlette,
                 body: dict[str, Any], token: str, *, must_execute: bool = False
                 ) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    served = app.state.fast.served
    answers = []
    for client in (reference, http, http):
        response = await client.post("/graphql", json=body, headers=headers)
        answers.append(f"{response.status_code} {_normal(response.json())}")
    payload = json.loads(answers[0].split(" ", 1)[1])
    executed = payload.get("data") is not None or any(
        "path" in error for error in payload.get("errors") or [])
    assert executed or not must_execute, answers[0]
    if executed:  # invalid documents and variables that do not coerce stay with Strawberry
        assert app.state.fast.served >= served + 1, body  # at least the second answer
    return answers


async def test_every_contract_query_answers_as_the_reference(  # type: ignore[no-untyped-def]
        http, reference, app, world) -> None:
    names = {name for name, _ in _cases(world)}
    assert names == _contract_queries()  # every query operation of the contract is exercised
    compiled_cases = []
    for name, variables in _cases(world):
        body = {"query": contract_operation(name), "operationName": name,
                "variables": variables}
        before = app.state.fast.compiled_served
        reference_answer, first, fast = await _three(http, reference, app, body,
                                                     world.team.tenant.token)
        assert first == reference_answer, (name, variables)
        assert fast == reference_answer, (name, variables)
        if app.state.fast.compiled_served > before:
            compiled_cases.append((name, variables))
    # The builder's reads are compiled (schema.compiled); their failing variables are not
    # (the reference answers those), nor is anything the compiler does not cover.
    assert {name for name, _ in compiled_cases} == {"Viewer", "WorkflowList", "WorkflowByKey",
                                                     "Run"}
    assert ("WorkflowList", {"after": "not a cursor"}) not in compiled_cases
    assert ("WorkflowList", {"first": -1}) not in compiled_cases
    assert len(compiled_cases) == 10, compiled_cases
    assert app.state.fast.compiled_failed == 0


async def test_a_viewer_answers_as_the_reference(http, reference, app, world) -> None:  # type: ignore[no-untyped-def]
    body = {"query": "{ viewer { id role __typename tenant { name } } }"}
    for token in (world.team.tenant.token, world.team.csm_token):
        answers = await _three(http, reference, app, body, token)
        assert answers[0] == answers[1] == answers[2]


# Generated documents over the builder's Workflow type.
LEAVES = ["id", "key", "name", "description", "version", "tags", "isCore", "isTemplate",
          "createdAt", "updatedAt", "deletedAt", "__typename"]
NESTED = ["latestVersion { number changedAt __typename }",
          "createdBy { id email }",
          "versions(first: 1) { totalCount edges { node { number } } }",
          "versions(after: $bad) { totalCount }",  # a user error under a list: null + path
          "versionByNumber(number: 1) { number }"]


@st.composite
def _selection(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A Workflow selection and the fragment definitions it uses."""
    fields = draw(st.lists(st.sampled_from(LEAVES + NESTED), min_size=1, max_size=7))
    parts: list[str] = []
    fragments: list[str] = []
    for index, field in enumerate(fields):
        # Fields with arguments are always aliased: the same field with other arguments
        # elsewhere in the selection would not merge (an invalid document proves nothing).
        alias = f"n{index}: " if "(" in field else draw(st.sampled_from(["", f"a{index}: "]))
        directive = draw(st.sampled_from(["", " @include(if: $flag)", " @skip(if: $flag)",
                                          " @skip(if: false)"]))
        head = field.split(" {", 1)[0]
        text = f"{alias}{head}{directive}{field[len(head):]}"
        wrap = draw(st.sampled_from(["plain", "inline", "named"]))
        if wrap == "inline":
            text = f"... on Workflow {{ {text} }}"
        elif wrap == "named":
            fragments.append(f"fragment F{index} on Workflow {{ {text} }}")
            text = f"...F{index}"
        parts.append(text)
    return " ".join(parts), fragments


@hypothesis_settings(max_examples=40, derandomize=True, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
@given(selection=_selection(), flag=st.booleans(), root=st.sampled_from(["list", "key"]))
async def test_generated_documents_answer_as_the_reference(  # type: ignore[no-untyped-def]
        http, reference, app, world, selection, flag, root) -> None:
    fields, fragments = selection
    if root == "list":
        top = (f"workflows(first: 3, filter: {{tags: [\"diff\"]}}) {{ totalCount edges "
               f"{{ cursor node {{ {fields} }} }} }}")
    else:
        top = f"workflow(key: \"diff-0\") {{ {fields} }}"
    text = f"{top} {' '.join(fragments)}"
    declared = {"flag": ("$flag: Boolean!", flag), "bad": ("$bad: String", "garbage")}
    used = {name: value for name, value in declared.items() if f"${name}" in text}
    signature = ", ".join(declared[name][0] for name in used)
    query = f"query G{f'({signature})' if used else ''} {{ {top} }} {' '.join(fragments)}"
    body = {"query": query, "variables": {name: value[1] for name, value in used.items()}}
    before = app.state.fast.compiled_served
    answers = await _three(http, reference, app, body, world.team.tenant.token,
                           must_execute=True)
    assert answers[0] == answers[1] == answers[2], query
    # Compiled whenever the selection stays within what the compiler covers (`versions` may
    # be compiled too when a directive leaves it out).
    if "versions" not in query and "versionByNumber" not in query:
        assert app.state.fast.compiled_served > before, query
    assert app.state.fast.compiled_failed == 0


async def test_what_the_compiler_does_not_cover_runs_on_graphql_core(  # type: ignore[no-untyped-def]
        http, reference, app, world) -> None:
    query = ("query V($flag: Boolean!) { workflow(key: \"diff-0\") { key "
             "versions(first: 1) @skip(if: $flag) { totalCount } } }")
    for flag, compiled in ((True, True), (False, False)):
        before = app.state.fast.compiled_served
        answers = await _three(http, reference, app, {"query": query,
                                                      "variables": {"flag": flag}},
                               world.team.tenant.token, must_execute=True)
        assert answers[0] == answers[1] == answers[2]
        assert (app.state.fast.compiled_served > before) == compiled, flag


async def test_compiled_reads_take_few_statements(  # type: ignore[no-untyped-def]
        http, app, world) -> None:
    headers = {"Authorization": f"Bearer {world.team.tenant.token}"}
    sent: list[str] = []
    for name, variables in (("Viewer", {}), ("WorkflowList", {"first": 2}),
                            ("Run", {"id": world.run_id})):
        body = {"query": contract_operation(name), "operationName": name,
                "variables": variables}
        assert (await http.post("/graphql", json=body, headers=headers)).status_code == 200
        before = app.state.fast.compiled_served
        app.state.db.listeners.append(sent.append)
        try:
            response = await http.post("/graphql", json=body, headers=headers)
        finally:
            app.state.db.listeners.remove(sent.append)
        assert response.status_code == 200
        assert "errors" not in response.json()
        assert app.state.fast.compiled_served == before + 1
        if name == "Viewer":
            # the caller's re-read (with the tenant) answers it: no BEGIN, no COMMIT
            assert len(sent) == 1, sent
            assert "stepwise_enter" in sent[0], sent
        else:
            # the run with its steps, events, notifications, workflow and customer is one
            # statement too (domain.runs.repository.view)
            assert "stepwise_enter" in sent[0], sent
            assert sent[1].startswith("BEGIN READ ONLY; SELECT set_config('app.tenant_id'")
            assert len(sent) == 4, sent
            assert sent[3] == "COMMIT", sent
        if name == "Run":
            run = response.json()["data"]["run"]
            assert run["steps"], run
            assert run["events"], run
            assert run["workflow"]["key"] == "critical"
            assert run["customer"]["id"] == world.customer_id
        sent.clear()


async def test_run_selections_answer_as_the_reference(  # type: ignore[no-untyped-def]
        http, reference, app, world) -> None:
    """The run's parts read beside it (one statement) or by their loaders (a part asked for
    twice, events with other arguments) give the reference's JSON."""
    documents = [
        "query R($id: ID!) { run(id: $id) { id a: events(afterSeq: 0) { seq type } "
        "b: events(afterSeq: 2, first: 2) { seq } steps { stepId } } }",
        "query R($id: ID!) { run(id: $id) { s1: steps { stepId status } s2: steps { attempts } "
        "workflow { key __typename } customer { name } notifications { id title } } }",
        "query R($id: ID!, $after: Int!) { run(id: $id) { events(afterSeq: $after, first: 1) "
        "{ seq at payload } ... on Run { customer { id } } } }",
    ]
    for query in documents:
        variables = {"id": world.run_id, "after": 1}
        if "$after" not in query:
            variables.pop("after")
        before = app.state.fast.compiled_served
        answers = await _three(http, reference, app, {"query": query, "variables": variables},
                               world.team.tenant.token, must_execute=True)
        assert answers[0] == answers[1] == answers[2], query
        assert app.state.fast.compiled_served > before, query
        run = json.loads(answers[0].split(" ", 1)[1])["data"]["run"]
        assert run.get("a") or run.get("s1") or run.get("events"), run  # not vacuous
    assert app.state.fast.compiled_failed == 0
