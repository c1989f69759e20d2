"""The HTTP and WebSocket edge: tokens, limits, masking, health."""

from __future__ import annotations

import asyncio
import json
import uuid

import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from domain.auth import tokens
from domain.users.models import Role
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.asyncio

VIEWER = "query Viewer { viewer { id email name role tenant { id name } } }"


class TestHttpAuth:
    async def test_missing_token_is_401_with_a_json_body(self, gql) -> None:
        response = await gql.raw(VIEWER)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    @pytest.mark.parametrize("header", ["Bearer", "Bearer not-a-jwt", "Basic abc", "token"])
    async def test_malformed_headers_are_401(self, http, header) -> None:
        response = await http.post("/graphql", json={"query": VIEWER},
                                   headers={"Authorization": header})
        assert response.status_code == 401

    async def test_expired_token_is_401(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        expired = tokens.mint(secret=settings.jwt_secret, tenant_id=tenant.id,
                              user_id=tenant.admin_id, role=Role.ADMIN, ttl=-10)
        assert (await gql.raw(VIEWER, token=expired)).status_code == 401

    async def test_token_signed_with_another_secret_is_401(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        forged = tokens.mint(secret="another-secret-long-enough-for-hs256-keys",
                             tenant_id=tenant.id, user_id=tenant.admin_id, role=Role.ADMIN)
        assert (await gql.raw(VIEWER, token=forged)).status_code == 401

    async def test_unsigned_token_is_401(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        claims = {"sub": str(tenant.admin_id), "tenant_id": str(tenant.id), "role": "admin",
                  "exp": 4102444800}
        unsigned = jwt.encode(claims, key=None, algorithm="none")
        assert (await gql.raw(VIEWER, token=unsigned)).status_code == 401

    async def test_unknown_role_claim_is_401(self, gql, settings) -> None:
        claims = {"sub": str(uuid.uuid4()), "tenant_id": str(uuid.uuid4()), "role": "root",
                  "exp": 4102444800}
        token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
        assert (await gql.raw(VIEWER, token=token)).status_code == 401

    async def test_get_with_a_query_needs_a_token(self, http) -> None:
        response = await http.get("/graphql", params={"query": "{ viewer { id } }"})
        assert response.status_code == 401

    async def test_graphiql_page_is_served_on_get(self, http) -> None:
        response = await http.get("/graphql", headers={"Accept": "text/html"})
        assert response.status_code == 200
        assert "graphiql" in response.text.lower()


class TestViewer:
    async def test_viewer_operation_of_the_contract(self, gql, settings) -> None:
        tenant = await make_tenant(settings, name="Viewer Co")
        data = await gql(VIEWER, token=tenant.token)
        assert data["viewer"]["id"] == str(tenant.admin_id)
        assert data["viewer"]["role"] == "ADMIN"
        assert data["viewer"]["tenant"] == {"id": str(tenant.id), "name": "Viewer Co"}

    async def test_a_token_for_a_user_of_another_tenant_is_refused(self, gql, settings) -> None:
        a = await make_tenant(settings)
        b = await make_tenant(settings)
        # A valid signature, but the claims pair B's tenant with A's user: RLS finds no one.
        mixed = tokens.mint(secret=settings.jwt_secret, tenant_id=b.id, user_id=a.admin_id,
                            role=Role.ADMIN)
        response = await gql.raw(VIEWER, token=mixed)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.json()["data"] is None


class TestTheDatabaseDecidesTheRole:
    CREATE_USER = """mutation CreateUser($input: CreateUserInput!) {
      createUser(input: $input) { user { id } errors { code message path } } }"""

    async def test_a_demoted_user_loses_admin_rights_before_the_token_expires(
        self, gql, settings
    ) -> None:
        tenant = await make_tenant(settings)
        user = await make_user(tenant, role=Role.VIEWER)
        stale_admin = tenant.token_for(user, Role.ADMIN)  # minted before a demotion
        data = await gql(self.CREATE_USER, {"input": {
            "email": f"n-{uuid.uuid4().hex[:6]}@x.test", "name": "New", "role": "VIEWER"}},
            token=stale_admin)
        assert data["createUser"]["user"] is None
        assert data["createUser"]["errors"][0]["code"] == "FORBIDDEN"
        viewer = await gql("{ viewer { role } }", token=stale_admin)
        assert viewer["viewer"]["role"] == "VIEWER"

    async def test_a_deleted_user_is_refused(self, gql, settings, app_connection_factory) -> None:
        tenant = await make_tenant(settings)
        user = await make_user(tenant, role=Role.EDITOR)
        token = tenant.token_for(user, Role.EDITOR)
        conn = await app_connection_factory()
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant.id))
            await conn.execute("DELETE FROM users WHERE id = $1", user)
        assert (await gql.raw(VIEWER, token=token)).status_code == 401

    async def test_request_id_is_echoed(self, http, settings) -> None:
        tenant = await make_tenant(settings)
        response = await http.post("/graphql", json={"query": VIEWER},
                                   headers={"Authorization": f"Bearer {tenant.token}",
                                            "X-Request-Id": "req-123"})
        assert response.headers["x-request-id"] == "req-123"


class TestLimits:
    async def test_query_depth_is_limited(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        deep = "{ viewer { " + "manager { " * 14 + "id" + " }" * 14 + " } }"
        payload = (await gql.raw(deep, token=tenant.token)).json()
        assert "exceeds maximum operation depth" in payload["errors"][0]["message"]

    async def test_aliases_are_limited(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        many = "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(40)) + " }"
        payload = (await gql.raw(many, token=tenant.token)).json()
        assert "aliases" in payload["errors"][0]["message"].lower()

    async def test_tokens_are_limited(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        huge = "{ viewer { " + " ".join(["id"] * 5000) + " } }"
        payload = (await gql.raw(huge, token=tenant.token)).json()
        assert "token" in payload["errors"][0]["message"].lower()
        assert payload["errors"][0]["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}

    async def test_syntax_errors_are_reported_without_internals(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        payload = (await gql.raw("{ viewer { ", token=tenant.token)).json()
        assert payload["errors"][0]["message"].startswith("Syntax Error")
        assert payload["errors"][0]["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
        assert payload["errors"][0]["locations"]  # where in the document
        assert "Traceback" not in json.dumps(payload)

    @pytest.mark.parametrize(("query", "variables", "code"), [
        ("{ viewer { nope } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ('{ workflows(first: "x") { totalCount } }', {}, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int!) { workflows(first: $n) { totalCount } }", {"n": "x"},
         "BAD_USER_INPUT"),
        ("query($n: Int!) { workflows(first: $n) { totalCount } }", {}, "BAD_USER_INPUT"),
    ])
    async def test_documents_and_variables_graphql_refuses_have_a_code(
            self, gql, settings, query, variables, code) -> None:
        tenant = await make_tenant(settings)
        payload = (await gql.raw(query, variables, token=tenant.token)).json()
        assert payload["data"] is None
        [error] = payload["errors"]
        assert error["extensions"] == {"code": code}
        assert error["locations"]  # where in the document


class TestHealth:
    async def test_healthz(self, http) -> None:
        assert (await http.get("/healthz")).json() == {"status": "ok"}

    async def test_readyz_reports_migrations_at_head(self, http) -> None:
        from domain.shared.migrate import head_revision

        response = await http.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "migrations": head_revision()}


async def _ws(live_server: str, protocol: str = "graphql-transport-ws"):  # type: ignore[no-untyped-def]
    return await websockets.connect(f"ws://{live_server}/graphql", subprotocols=[protocol])


class TestWebSocketAuth:
    async def test_bad_token_closes_before_anything_runs(self, live_server) -> None:
        ws = await _ws(live_server)
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": "Bearer nope"}}))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4403

    async def test_missing_token_closes(self, live_server) -> None:
        ws = await _ws(live_server)
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4403

    async def test_subscribe_before_init_closes_4401(self, live_server) -> None:
        ws = await _ws(live_server)
        await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                  "payload": {"query": "{ viewer { id } }"}}))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401

    async def test_valid_token_runs_operations_in_the_tenant(self, live_server, settings) -> None:
        tenant = await make_tenant(settings, name="Socket Co")
        async with await _ws(live_server) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {tenant.token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                      "payload": {"query": "{ viewer { tenant { name } } }"}}))
            message = json.loads(await ws.recv())
            assert message["type"] == "next"
            assert message["payload"]["data"]["viewer"]["tenant"]["name"] == "Socket Co"

    async def test_legacy_protocol_is_accepted(self, live_server, settings) -> None:
        tenant = await make_tenant(settings)
        async with await _ws(live_server, "graphql-ws") as ws:
            assert ws.subprotocol == "graphql-ws"
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {tenant.token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"


class TestWebSocketOperations:
    async def test_concurrent_operations_on_one_socket_do_not_share_a_transaction(
        self, live_server, settings
    ) -> None:
        tenant = await make_tenant(settings, name="Busy Socket")
        create = TestTheDatabaseDecidesTheRole.CREATE_USER
        async with await _ws(live_server) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {tenant.token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for i in range(12):
                if i % 3 == 0:
                    payload = {"query": create, "variables": {"input": {
                        "email": f"ws{i}-{uuid.uuid4().hex[:6]}@x.test", "name": f"W{i}",
                        "role": "VIEWER"}}}
                else:
                    payload = {"query": "{ viewer { tenant { name } } }"}
                await ws.send(json.dumps({"type": "subscribe", "id": str(i), "payload": payload}))
            results: dict[str, dict] = {}
            while len(results) < 12:
                message = json.loads(await ws.recv())
                if message["type"] == "next":
                    results[message["id"]] = message["payload"]
        assert all("errors" not in r for r in results.values()), results
        created = [r["data"]["createUser"] for i, r in results.items() if int(i) % 3 == 0]
        assert all(c["errors"] == [] and c["user"] for c in created)
        names = {r["data"]["viewer"]["tenant"]["name"] for i, r in results.items() if int(i) % 3}
        assert names == {"Busy Socket"}

    async def test_operations_stop_when_the_token_expires(self, live_server, settings) -> None:
        tenant = await make_tenant(settings)
        short = tokens.mint(secret=settings.jwt_secret, tenant_id=tenant.id,
                            user_id=tenant.admin_id, role=Role.ADMIN, ttl=1)
        async with await _ws(live_server) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {short}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await asyncio.sleep(1.2)
            await ws.send(json.dumps({"type": "subscribe", "id": "1",
                                      "payload": {"query": "{ viewer { id } }"}}))
            message = json.loads(await ws.recv())
        assert message["type"] in ("next", "error")
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
