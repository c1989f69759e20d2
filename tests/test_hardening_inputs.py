"""Input families that used to end as INTERNAL_SERVER_ERROR, each through GraphQL over HTTP.

Each family is tried with a set of members, not one instance: configs that are deep, long or
wide (validate and create must give the same verdict), values out of range or too long,
forged cursors for every connection, unknown keys in a config, and the `core` tag on clones.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import pytest_asyncio
from websockets.exceptions import ConnectionClosed

from domain.shared.limits import MAX_JSON_DEPTH
from domain.shared.settings import PROJECT_ROOT
from tests.factories import GraphQLClient, TenantHandle, make_tenant
from tests.factories import contract_operation as contract
from tests.factories_workflows import config, make_workflow, seed_core
from tests.test_hardening_edge import _next, _socket

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def tenant(settings) -> TenantHandle:  # type: ignore[no-untyped-def]
    await seed_core(settings)
    return await make_tenant(settings)


def no_internal(body: dict[str, Any]) -> None:
    for error in body.get("errors") or []:
        assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR", body
        assert "Traceback" not in json.dumps(error)


async def post(gql: GraphQLClient, query: str, variables: dict[str, Any] | None, *,
               token: str) -> dict[str, Any]:
    response = await gql.raw(query, variables, token=token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    no_internal(body)
    return body


# --- family 1: recursion bounded, validate and create agree ------------------------------

def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def _with_metadata(metadata: Any) -> dict[str, Any]:
    made = config("probe")
    made["steps"][0]["notifications"] = [{
        "type": "in_app", "title": "t", "recipients": ["{{csm.email}}"], "metadata": metadata}]
    return made


def _chain(length: int, *, loop: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(length):
        step: dict[str, Any] = {"id": f"s{i}", "name": "s", "type": "task"}
        if i + 1 < length:
            step["routing"] = {"defaultRoute": f"s{i + 1}"}
        elif loop:
            step["routing"] = {"defaultRoute": "s0"}
        steps.append(step)
    return {"id": "probe", "name": "Chain", "description": "", "version": "1.0.0",
            "trigger": {}, "context": {}, "steps": steps}


def _wide(keys: int) -> dict[str, Any]:
    return _with_metadata({f"k{i}": i for i in range(keys)})


def _branchy(width: int) -> dict[str, Any]:
    """Every step routes to every later one: many edges, no loop."""
    made = _chain(width)
    for i, step in enumerate(made["steps"]):
        step["routing"] = {"routes": [{"condition": "{{customer.arr}}", "next": f"s{j}"}
                                      for j in range(i + 1, width)]}
        if i + 1 < width:
            step["routing"]["defaultRoute"] = f"s{i + 1}"
    return made


# Metadata sits 5 levels inside the config: (config, steps, [0], notifications, [0]).
CONFIGS = {
    "deep-ok": _with_metadata(_nested(MAX_JSON_DEPTH - 6)),
    "deep-at-limit": _with_metadata(_nested(MAX_JSON_DEPTH - 5)),
    "deep-over": _with_metadata(_nested(MAX_JSON_DEPTH)),
    "deep-48": _with_metadata(_nested(48)),
    "chain-1000": _chain(1000),
    "chain-1000-loop": _chain(1000, loop=True),
    "chain-1001": _chain(1001),
    "fan-60": _branchy(60),
    "wide-5000": _wide(5000),
    "too-large": _with_metadata({"text": "x" * 300_000}),
    "deep-list-of-steps": {**_chain(3), "steps": _nested(40)},
    # Generated around each limit: depth (metadata starts 5 levels in), chain length, width.
    **{f"depth-{d}": _with_metadata(_nested(d)) for d in range(MAX_JSON_DEPTH - 8,
                                                              MAX_JSON_DEPTH + 3)},
    **{f"chain-{n}": _chain(n) for n in (1, 2, 10, 300, 2500)},
    **{f"loop-{n}": _chain(n, loop=True) for n in (1, 2, 999)},
    **{f"wide-{n}": _wide(n) for n in (0, 100, 12_000)},
}


class TestValidateAndCreateAgree:
    @pytest.mark.parametrize("name", list(CONFIGS))
    async def test_the_same_verdict_from_validate_create_and_update(
            self, gql, tenant, name) -> None:
        candidate = CONFIGS[name]
        checked = (await post(gql, contract("ValidateConfig"), {"config": candidate},
                              token=tenant.token))["data"]["validateWorkflowConfig"]
        key = f"agree-{name}"
        created = (await post(gql, contract("CreateWorkflow"), {"input": {
            "key": key, "name": "Agree", "config": candidate}},
            token=tenant.token))["data"]["createWorkflow"]
        assert checked["valid"] is (created["errors"] == []), (checked, created["errors"])
        if not checked["valid"]:
            assert {(e["code"], e["path"]) for e in checked["errors"]} == \
                {(e["code"], e["path"]) for e in created["errors"]}
        base = await make_workflow(gql, tenant, key=f"base-{name}")
        updated = (await post(gql, contract("UpdateWorkflow"), {"input": {
            "id": base["id"], "config": candidate}},
            token=tenant.token))["data"]["updateWorkflow"]
        assert checked["valid"] is (updated["errors"] == [])

    async def test_depth_is_reported_with_a_code_and_the_path_where_it_goes_too_deep(
            self, gql, tenant) -> None:
        checked = (await post(gql, contract("ValidateConfig"), {"config": CONFIGS["deep-over"]},
                              token=tenant.token))["data"]["validateWorkflowConfig"]
        [error] = checked["errors"]
        assert error["code"] == "TOO_DEEP"
        assert error["path"].startswith("$.steps[0].notifications[0].metadata")

    async def test_a_thousand_step_chain_is_valid_and_a_loop_through_it_is_one_cycle(
            self, gql, tenant) -> None:
        long = (await post(gql, contract("ValidateConfig"), {"config": CONFIGS["chain-1000"]},
                           token=tenant.token))["data"]["validateWorkflowConfig"]
        assert long == {"valid": True, "errors": []}
        loop = (await post(gql, contract("ValidateConfig"),
                           {"config": CONFIGS["chain-1000-loop"]},
                           token=tenant.token))["data"]["validateWorkflowConfig"]
        assert [e["code"] for e in loop["errors"]] == ["CYCLE"]

    @pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN"])
    async def test_non_finite_numbers_are_not_json_over_http_or_websocket(
            self, http, settings, tenant, live_server, number) -> None:
        raw = json.dumps({"query": contract("CreateWorkflow"), "variables": {"input": {
            "key": "nan", "name": "N", "config": _with_metadata({"n": 0})}}})
        raw = raw.replace('{"n": 0}', f'{{"n": {number}}}')
        response = await http.post("/graphql", content=raw.encode(), headers={
            "Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"})
        assert response.status_code == 400  # RFC 8259 has no NaN or Infinity
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        ws = await _socket(live_server, settings, "graphql-transport-ws")
        try:
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": json.loads(raw)}))
            with pytest.raises(ConnectionClosed):
                await _next(ws)
            assert ws.close_code == 4400
        finally:
            await ws.close()

    @pytest.mark.parametrize(("name", "expected"), [
        ("nan", "OUT_OF_RANGE"), ("deep-over", "TOO_DEEP"), ("chain-1000", None),
        ("json-5000-deep", "TOO_DEEP"), ("chain-1000-loop", "CYCLE"),
        ("chain-1001", "TOO_MANY_STEPS")])
    async def test_stepwise_validate_reads_files_python_json_accepts(
            self, tmp_path, settings, name, expected) -> None:
        path = tmp_path / f"{name}.json"
        if name == "nan":
            path.write_text(json.dumps(_with_metadata({"n": float("nan")})))
        elif name == "json-5000-deep":
            path.write_text("[" * 5000 + "]" * 5000)
        else:
            path.write_text(json.dumps(CONFIGS[name]))
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "scripts.cli", "validate", str(path)],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                                check=False, env={**os.environ, "DATABASE_URL":
                                                  settings.database_url})
        assert "Traceback" not in result.stderr, result.stderr
        if expected is None:
            assert result.returncode == 0, result.stdout
        else:
            assert result.returncode == 1
            assert expected in result.stdout

    async def test_a_deep_document_to_import_is_refused_with_a_path(self, gql, tenant) -> None:
        document = {"format": "stepwise.workflow", "config": CONFIGS["deep-over"]}
        body = await post(gql, contract("ImportWorkflow"), {"document": document, "key": "deep"},
                          token=tenant.token)
        [error] = body["data"]["importWorkflow"]["errors"]
        assert error["code"] == "TOO_DEEP"

    async def test_a_deep_literal_in_the_query_text_is_a_clean_error(self, gql, tenant) -> None:
        literal = "{a: " * 600 + "1" + "}" * 600
        response = await gql.raw(
            f"query {{ validateWorkflowConfig(config: {literal}) {{ valid }} }}",
            token=tenant.token)
        assert response.status_code in (200, 400)
        body = response.json()
        no_internal(body)
        assert body["errors"]


# --- family 2: values out of range, lengths -----------------------------------------------

UPSERT = contract("UpsertCustomer")
LONG_EMAIL = "a" * 1_000_000 + "@example.test"


class TestValuesOutOfRange:
    @pytest.mark.parametrize("arr", [1e27, 1e308, 1e13, -1e27, 5e-324])
    async def test_arr_of_any_magnitude_is_checked_before_rounding(
            self, gql, tenant, arr) -> None:
        body = await post(gql, UPSERT, {"input": {"externalId": "arr", "name": "A", "arr": arr}},
                          token=tenant.token)
        payload = body["data"]["upsertCustomer"]
        if 0 <= arr <= 999_999_999_999.99:
            assert payload["errors"] == []
        else:
            assert [(e["code"], e["path"]) for e in payload["errors"]] == [
                ("OUT_OF_RANGE", "input.arr")]

    @pytest.mark.parametrize("zone", ["America", "Europe", "a" * 256, "../../etc/passwd",
                                      "Etc/", "", "Europe/Berlin\u0000"])
    async def test_time_zones_that_are_folders_or_too_long_are_unknown(
            self, gql, tenant, zone) -> None:
        body = await post(gql, "mutation($z: String) { updateTenantSettings(input: "
                          "{timeZone: $z}) { errors { code path } } }", {"z": zone},
                          token=tenant.token) if "\u0000" not in zone else None
        if body is None:  # NUL is refused at the edge (test_hardening_edge)
            return
        assert body["data"]["updateTenantSettings"]["errors"] == [
            {"code": "INVALID_TIME_ZONE", "path": "input.timeZone"}]

    async def test_a_one_megabyte_email_is_refused_everywhere_an_email_goes(
            self, gql, tenant) -> None:
        user = await post(gql, contract("CreateUser"), {"input": {
            "email": LONG_EMAIL, "name": "Long", "role": "EDITOR"}}, token=tenant.token)
        assert [(e["code"], e["path"]) for e in user["data"]["createUser"]["errors"]] == [
            ("INVALID_EMAIL", "input.email")]
        team = await post(gql, UPSERT, {"input": {"externalId": "t", "name": "T",
                                                  "accountTeam": {"ae": LONG_EMAIL}}},
                          token=tenant.token)
        assert [(e["code"], e["path"]) for e in team["data"]["upsertCustomer"]["errors"]] == [
            ("INVALID_EMAIL", "input.accountTeam.ae")]
        for contact, path in (({"ceo": LONG_EMAIL}, "input.ceo"),
                              ({"other": {"cfo": LONG_EMAIL}}, "input.other.cfo")):
            contacts = await post(gql, contract("UpdateCompanyContacts"), {"input": contact},
                                  token=tenant.token)
            assert [(e["code"], e["path"])
                    for e in contacts["data"]["updateCompanyContacts"]["errors"]] == [
                ("INVALID_EMAIL", path)]

    async def test_a_254_character_email_is_still_an_email(self, gql, tenant) -> None:
        email = "a" * (254 - len("@example.test")) + "@example.test"
        user = await post(gql, contract("CreateUser"), {"input": {
            "email": email, "name": "Long", "role": "EDITOR"}}, token=tenant.token)
        assert user["data"]["createUser"]["errors"] == []

    @pytest.mark.parametrize(("operation", "variables", "path"), [
        ("CreateUser", {"input": {"email": "n@example.test", "name": "n" * 201,
                                  "role": "EDITOR"}}, "input.name"),
        ("UpsertCustomer", {"input": {"externalId": "x" * 201, "name": "C"}},
         "input.externalId"),
        ("UpsertCustomer", {"input": {"externalId": "c", "name": "n" * 301}}, "input.name"),
        ("CreateWorkflow", {"input": {"key": "long", "name": "n" * 201,
                                      "config": config("long")}}, "input.name"),
        ("CreateWorkflow", {"input": {"key": "long", "name": "L", "description": "d" * 2001,
                                      "config": config("long")}}, "input.description"),
        ("CreateSavedAction", {"input": {"actionId": "long", "name": "n" * 201,
                                         "type": "snooze"}}, "input.name"),
    ], ids=["user-name", "external-id", "customer-name", "workflow-name", "description",
            "saved-action-name"])
    async def test_long_text_is_too_long_with_its_path(self, gql, tenant, operation, variables,
                                                       path) -> None:
        body = await post(gql, contract(operation), variables, token=tenant.token)
        [payload] = body["data"].values()
        assert ("TOO_LONG", path) in {(e["code"], e["path"]) for e in payload["errors"]}

    @pytest.mark.parametrize(("tags", "code"), [
        (["t" * 51], "INVALID_TAG"), ([f"t{i}" for i in range(21)], "TOO_MANY_TAGS"),
        (["x" * 100_000], "INVALID_TAG")])
    async def test_tags_are_bounded(self, gql, tenant, tags, code) -> None:
        body = await post(gql, contract("CreateWorkflow"), {"input": {
            "key": "tags", "name": "T", "config": config("tags"), "tags": tags}},
            token=tenant.token)
        errors = body["data"]["createWorkflow"]["errors"]
        assert code in {e["code"] for e in errors}
        assert all(len(e["message"]) < 200 for e in errors)

    async def test_too_many_or_too_long_contact_keys(self, gql, tenant) -> None:
        many = {f"role{i}": f"r{i}@example.test" for i in range(31)}
        body = await post(gql, contract("UpdateCompanyContacts"), {"input": {"other": many}},
                          token=tenant.token)
        assert [(e["code"], e["path"]) for e in
                body["data"]["updateCompanyContacts"]["errors"]] == [("TOO_LONG", "input.other")]
        long_key = await post(gql, contract("UpdateCompanyContacts"), {"input": {
            "other": {"k" * 100_000: "a@example.test"}}}, token=tenant.token)
        [error] = long_key["data"]["updateCompanyContacts"]["errors"]
        assert error["code"] == "INVALID_KEY"
        assert len(error["path"]) < 100


# --- family 3: forged cursors --------------------------------------------------------------

def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


UUID0 = "00000000-0000-0000-0000-000000000000"
FORGED = {
    "not-base64": "%%%not base64%%%",
    "base64-not-json": base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "json-object": _cursor({"a": 1}),
    "json-null": _cursor(None),
    "nested": _cursor(json.loads("[" * 300 + "]" * 300)),
    "very-long": "A" * 100_000,
    "huge-int": _cursor([10**40, UUID0]),
    "huge-int-alone": _cursor([10**40]),
    "negative": _cursor([-1]),
    "bool": _cursor([True]),
    "float": _cursor([1.5, UUID0]),
    "nul-text": _cursor(["a\u0000b", UUID0]),
    "lone-surrogate": base64.urlsafe_b64encode(b'["\\ud800", "' + UUID0.encode() + b'"]'
                                               ).decode(),
    "bad-uuid": _cursor(["x", "not-a-uuid"]),
    "year-1-east": _cursor(["0001-01-01T00:00:00+14:00", UUID0]),
    "year-9999-west": _cursor(["9999-12-31T23:59:59-14:00", UUID0]),
    "not-a-date": _cursor(["yesterday", UUID0]),
    "wrong-arity": _cursor(["a", "b", "c", "d"]),
    "wrong-order": _cursor(["NOT_AN_ORDER", "x", UUID0]),
    "name-order-date": _cursor(["UPDATED_AT_DESC", "not-a-date", UUID0]),
    "date-order-far": _cursor(["CREATED_AT_DESC", "0001-01-01T00:00:00+14:00", UUID0]),
    "nested-values": _cursor([["x"], {"y": 1}]),
}

VALID_FOR = {"customers": {"year-1-east", "year-9999-west", "not-a-date"}}


class TestForgedCursors:
    @pytest.mark.parametrize("connection", ["workflows", "customers", "runs", "versions"])
    @pytest.mark.parametrize("forged", list(FORGED))
    async def test_every_forged_cursor_is_invalid_cursor_at_after(
            self, gql, tenant, connection, forged) -> None:
        if connection == "versions":
            made = await make_workflow(gql, tenant, key=f"cur-{abs(hash(forged)) % 10**8}")
            query = ("query($id: ID!, $after: String) { workflow(id: $id) { "
                     "versions(after: $after) { totalCount } } }")
            variables = {"id": made["id"], "after": FORGED[forged]}
        else:
            query = f"query($after: String) {{ {connection}(after: $after) {{ totalCount }} }}"
            variables = {"after": FORGED[forged]}
        body = await post(gql, query, variables, token=tenant.token)
        if forged in VALID_FOR.get(connection, ()):  # any text is a name to page after
            assert "errors" not in body
            return
        [error] = body["errors"]
        assert error["extensions"]["code"] == "INVALID_CURSOR"
        assert error["extensions"]["path"] == "after"

    async def test_real_cursors_still_page(self, gql, tenant) -> None:
        for key in ("page-a", "page-b", "page-c"):
            await make_workflow(gql, tenant, key=key)
        for order in ("UPDATED_AT_DESC", "NAME_ASC", "CREATED_AT_DESC"):
            first = (await post(gql, contract("WorkflowList"), {"first": 1, "orderBy": order},
                                token=tenant.token))["data"]["workflows"]
            after = first["pageInfo"]["endCursor"]
            second = (await post(gql, contract("WorkflowList"), {
                "first": 1, "orderBy": order, "after": after},
                token=tenant.token))["data"]["workflows"]
            assert second["edges"][0]["node"]["id"] != first["edges"][0]["node"]["id"]


# --- family 5: unknown keys in a config ----------------------------------------------------

class TestUnknownKeys:
    @pytest.mark.parametrize(("where", "path"), [
        (lambda c: c["steps"][0].__setitem__("nxt", "x"), "$.steps[0].nxt"),
        (lambda c: c["steps"][0]["routing"].__setitem__("defaultRoue", "x"),
         "$.steps[0].routing.defaultRoue"),
        (lambda c: c.__setitem__("varaibles", []), "$.varaibles"),
        (lambda c: c["trigger"].__setitem__("daysUntilRenwal", {}), "$.trigger.daysUntilRenwal"),
    ], ids=["step", "routing", "top-level", "trigger"])
    async def test_a_typo_is_an_unknown_field_at_its_path(self, gql, tenant, where, path) -> None:
        candidate = copy.deepcopy(config("typo"))
        where(candidate)
        checked = (await post(gql, contract("ValidateConfig"), {"config": candidate},
                              token=tenant.token))["data"]["validateWorkflowConfig"]
        assert checked["valid"] is False
        assert [(e["code"], e["path"]) for e in checked["errors"]] == [("UNKNOWN_FIELD", path)]

    async def test_notification_metadata_stays_free_form(self, gql, tenant) -> None:
        checked = (await post(gql, contract("ValidateConfig"),
                              {"config": _with_metadata({"anything": {"goes": 1}})},
                              token=tenant.token))["data"]["validateWorkflowConfig"]
        assert checked == {"valid": True, "errors": []}

    async def test_the_served_json_schema_says_steps_are_closed(self, gql, tenant) -> None:
        served = (await post(gql, contract("ConfigSchema"), {},
                             token=tenant.token))["data"]["workflowConfigSchema"]
        assert served["additionalProperties"] is False
        assert served["$defs"]["step"]["additionalProperties"] is False
        assert "UNKNOWN_FIELD" in served["description"]

    async def test_every_core_workflow_still_validates(self, gql, tenant) -> None:
        listed = (await post(gql, contract("WorkflowList"), {"filter": {"isCore": True},
                                                             "first": 100},
                             token=tenant.token))["data"]["workflows"]["edges"]
        assert listed
        for edge in listed:
            found = (await post(gql, "query($id: ID!) { workflow(id: $id) { config } }",
                                {"id": edge["node"]["id"]}, token=tenant.token))
            checked = (await post(gql, contract("ValidateConfig"),
                                  {"config": found["data"]["workflow"]["config"]},
                                  token=tenant.token))["data"]["validateWorkflowConfig"]
            assert checked == {"valid": True, "errors": []}, edge["node"]["key"]


# --- family 6: clones of core workflows are not core --------------------------------------

class TestCloneTags:
    async def test_a_clone_of_a_core_workflow_drops_the_core_tag(self, gql, tenant) -> None:
        listed = (await post(gql, contract("WorkflowList"), {"filter": {"isCore": True}},
                             token=tenant.token))["data"]["workflows"]["edges"]
        core = listed[0]["node"]
        assert "core" in core["tags"]
        cloned = (await post(gql, contract("CloneWorkflow"), {"input": {
            "sourceId": core["id"], "key": "my-copy"}},
            token=tenant.token))["data"]["cloneWorkflow"]
        assert cloned["errors"] == []
        assert cloned["workflow"]["isCore"] is False
        mine = (await post(gql, contract("WorkflowList"), {"filter": {"tags": ["core"]}},
                           token=tenant.token))["data"]["workflows"]["edges"]
        assert all(e["node"]["isCore"] for e in mine)
        found = (await post(gql, "query { workflow(key: \"my-copy\") { tags } }", {},
                            token=tenant.token))["data"]["workflow"]
        assert found["tags"] == [t for t in core["tags"] if t != "core"]

    async def test_an_exported_core_workflow_imports_without_the_core_tag(
            self, gql, tenant) -> None:
        listed = (await post(gql, contract("WorkflowList"), {"filter": {"isCore": True}},
                             token=tenant.token))["data"]["workflows"]["edges"]
        exported = (await post(gql, contract("ExportWorkflow"), {"id": listed[0]["node"]["id"]},
                               token=tenant.token))["data"]["workflow"]["exportDocument"]
        imported = (await post(gql, contract("ImportWorkflow"), {
            "document": exported, "key": "imported-core"},
            token=tenant.token))["data"]["importWorkflow"]
        assert imported["errors"] == []
        found = (await post(gql, "query { workflow(key: \"imported-core\") { tags isCore } }",
                            {}, token=tenant.token))["data"]["workflow"]
        assert "core" not in found["tags"]
        assert found["isCore"] is False

    async def test_a_tenant_cannot_tag_its_own_workflow_core(self, gql, tenant) -> None:
        body = await post(gql, contract("CreateWorkflow"), {"input": {
            "key": "fake-core", "name": "F", "config": config("fake-core"), "tags": ["core"]}},
            token=tenant.token)
        assert [(e["code"], e["path"]) for e in body["data"]["createWorkflow"]["errors"]] == [
            ("RESERVED_TAG", "input.tags[0]")]


# --- family 4: a user error beside sibling fields whose queries are in flight -------------

def _errors(body: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["extensions"]["code"], e["extensions"].get("path"),
             ".".join(map(str, e["path"]))) for e in body["errors"]}


class TestConcurrentFieldResolution:
    @pytest_asyncio.fixture
    async def workflows(self, gql, tenant) -> list[str]:  # type: ignore[no-untyped-def]
        return [(await make_workflow(gql, tenant, key=f"sib-{i}"))["id"] for i in range(6)]

    async def _healthy(self, gql: GraphQLClient, tenant: TenantHandle) -> None:
        """The pool and its connections still work: more requests than the pool has."""
        for _ in range(12):
            body = await post(gql, "{ viewer { id } workflows(first: 3) { totalCount } }", {},
                              token=tenant.token)
            assert "errors" not in body
            assert body["data"]["viewer"]["id"] == str(tenant.admin_id)

    async def test_a_bad_cursor_in_a_list_beside_export_documents(
            self, gql, tenant, workflows, caplog) -> None:
        caplog.set_level("ERROR")
        query = ("{ workflows(first: 50) { edges { node { exportDocument "
                 "versions(after: \"garbage\") { totalCount } } } } }")
        for _ in range(5):
            body = await post(gql, query, {}, token=tenant.token)
            assert body["data"] is None  # versions and the list are non-null: null bubbles up
            assert {code for code, _, _ in _errors(body)} == {"INVALID_CURSOR"}
        assert not [r for r in caplog.records if r.name.startswith("stepwise")]
        await self._healthy(gql, tenant)

    async def test_siblings_keep_their_data_when_the_failing_field_is_nullable(
            self, gql, tenant, workflows, caplog) -> None:
        caplog.set_level("ERROR")
        fields = " ".join(
            f'w{i}: workflow(id: "{wid}") {{ key exportDocument '
            + ('versions(after: "garbage") { totalCount } ' if i % 2 else
               "versions(first: 5) { totalCount } ")
            + "}" for i, wid in enumerate(workflows))
        body = await post(gql, f"{{ {fields} }}", {}, token=tenant.token)
        assert _errors(body) == {("INVALID_CURSOR", "after", f"w{i}.versions")
                                 for i in range(1, len(workflows), 2)}
        for i in range(len(workflows)):
            if i % 2:
                assert body["data"][f"w{i}"] is None
            else:
                assert body["data"][f"w{i}"]["exportDocument"]["key"] == f"sib-{i}"
                assert body["data"][f"w{i}"]["versions"]["totalCount"] == 1
        assert not [r for r in caplog.records if r.name.startswith("stepwise")]
        await self._healthy(gql, tenant)

    async def test_a_mutation_whose_payload_field_fails_writes_nothing_and_stays_clean(
            self, gql, tenant, workflows, caplog) -> None:
        caplog.set_level("ERROR")
        mutation = """mutation($a: CreateWorkflowInput!, $b: UpdateWorkflowInput!) {
          a: createWorkflow(input: $a) { workflow { key exportDocument
               versions(after: "garbage") { totalCount } } errors { code } }
          b: updateWorkflow(input: $b) { workflow { exportDocument
               versions(first: 3) { totalCount } } errors { code } }
        }"""
        for attempt in range(4):
            body = await post(gql, mutation, {
                "a": {"key": f"mut-{attempt}", "name": "M", "config": config(f"mut-{attempt}")},
                "b": {"id": workflows[0], "name": f"Renamed {attempt}"}}, token=tenant.token)
            assert _errors(body) == {("INVALID_CURSOR", "after", "a.workflow.versions")}
            assert body["data"] is None  # an operation with errors keeps nothing
            found = await post(gql, f'{{ workflow(key: "mut-{attempt}") {{ id }} }}', {},
                               token=tenant.token)
            assert found["data"]["workflow"] is None
        assert not [r for r in caplog.records if r.name.startswith("stepwise")]
        renamed = await post(gql, f'{{ workflow(id: "{workflows[0]}") {{ name }} }}', {},
                             token=tenant.token)
        assert renamed["data"]["workflow"]["name"] == "Workflow sib-0"
        ok = await post(gql, mutation.replace('after: "garbage"', "first: 2"), {
            "a": {"key": "mut-ok", "name": "M", "config": config("mut-ok")},
            "b": {"id": workflows[0], "name": "Renamed"}}, token=tenant.token)
        assert "errors" not in ok
        assert ok["data"]["a"]["workflow"]["versions"]["totalCount"] == 1
        await self._healthy(gql, tenant)

    async def test_a_failing_mutation_beside_a_savepointed_one_in_the_same_operation(
            self, gql, tenant, workflows, caplog) -> None:
        caplog.set_level("ERROR")
        mutation = """mutation($id: ID!) {
          a: updateWorkflow(input: {id: $id, name: "Kept?"}) { workflow { name
               exportDocument } errors { code path } }
          b: updateWorkflow(input: {id: $id, name: ""}) { workflow { name } errors { code path } }
          c: rollbackWorkflow(id: $id, toVersion: 99) { workflow { name } errors { code path } }
        }"""
        body = await post(gql, mutation, {"id": workflows[1]}, token=tenant.token)
        assert "errors" not in body  # user errors are payload errors, the operation commits
        assert body["data"]["a"]["errors"] == []
        assert body["data"]["b"]["errors"] == [{"code": "REQUIRED", "path": "input.name"}]
        assert body["data"]["c"]["errors"] == [{"code": "NOT_FOUND", "path": "toVersion"}]
        kept = await post(gql, f'{{ workflow(id: "{workflows[1]}") {{ name }} }}', {},
                          token=tenant.token)
        assert kept["data"]["workflow"]["name"] == "Kept?"
        assert not [r for r in caplog.records if r.name.startswith("stepwise")]
        await self._healthy(gql, tenant)


# --- family 2 (dates): moments and day counts that would overflow a date computation -----

EXTREMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00",
            "9999-12-31", "0999-12-31T23:59:59+00:00", "9000-01-01T00:00:00Z"]
MOMENT_FIELDS = [
    "query($v: DateTime) { usage(since: $v) { __typename } }",
    "query($v: DateTime, $c: ID!) { workflowContext(customerId: $c, asOf: $v) }",
    "query($v: DateTime, $c: ID!) { previewNotifications(workflowKey: \"probe\", "
    "customerId: $c, asOf: $v) { firesAt } }",
    "query($v: DateTime, $c: ID!) { renderTemplate(template: \"{{customer.name}}\", "
    "customerId: $c, asOf: $v) { __typename } }",
]


class TestDatesInRange:
    @pytest.mark.parametrize("moment", EXTREMES)
    @pytest.mark.parametrize("query", MOMENT_FIELDS, ids=["usage", "context", "preview",
                                                          "render"])
    async def test_moments_outside_years_1000_to_8999_are_invalid_arguments(
            self, gql, tenant, moment, query) -> None:
        made = await post(gql, UPSERT, {"input": {"externalId": "m", "name": "M",
                                                  "renewalDate": "2030-01-01"}},
                          token=tenant.token)
        customer = made["data"]["upsertCustomer"]["customer"]["id"]
        response = await gql.raw(query, {"v": moment, "c": customer}, token=tenant.token)
        body = response.json()
        no_internal(body)
        [error] = body["errors"]
        assert "out of range (years 1000 to 8999)" in error["message"], error

    @pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "0999-12-31", "9000-01-01"])
    async def test_renewal_dates_outside_the_range_are_invalid(self, gql, tenant, day) -> None:
        response = await gql.raw(UPSERT, {"input": {"externalId": "d", "name": "D",
                                                    "renewalDate": day}}, token=tenant.token)
        body = response.json()
        no_internal(body)
        assert "out of range" in body["errors"][0]["message"]

    async def test_the_edges_of_the_range_work_everywhere(self, gql, tenant) -> None:
        await make_workflow(gql, tenant, key="probe", config_=_with_schedule(
            {"daysOverdue": 3660}))
        for day, moment in (("1000-01-01", "1000-01-01T00:00:00+14:00"),
                            ("8999-12-31", "8999-12-31T23:59:59-14:00")):
            made = await post(gql, UPSERT, {"input": {"externalId": day, "name": "E",
                                                      "renewalDate": day}},
                              token=tenant.token)
            customer = made["data"]["upsertCustomer"]["customer"]["id"]
            for query in MOMENT_FIELDS:
                body = await post(gql, query, {"v": moment, "c": customer},
                                  token=tenant.token)
                assert "errors" not in body, (query, body)

    @pytest.mark.parametrize(("schedule", "path"), [
        ({"daysOverdue": 10**9}, "daysOverdue"), ({"daysUntilRenewal": -10**9},
                                                  "daysUntilRenewal"),
        ({"daysOverdue": 3661}, "daysOverdue")])
    async def test_schedule_day_counts_are_bounded(self, gql, tenant, schedule, path) -> None:
        checked = (await post(gql, contract("ValidateConfig"),
                              {"config": _with_schedule(schedule)},
                              token=tenant.token))["data"]["validateWorkflowConfig"]
        assert [(e["code"], e["path"]) for e in checked["errors"]] == [
            ("OUT_OF_RANGE", f"$.steps[0].notifications[0].schedule.{path}")]


def _with_schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    made = _with_metadata({})
    made["steps"][0]["notifications"][0]["schedule"] = schedule
    return made
