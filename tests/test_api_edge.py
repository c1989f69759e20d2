"""The HTTP and WebSocket edge: tokens, limits, masking, health."""

from __future__ import annotations

import json
import uuid

import jwt
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from domain.auth import tokens
from domain.users.models import Role
from tests.factories import make_tenant

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

    async def test_a_token_for_a_user_of_another_tenant_sees_nobody(self, gql, settings) -> None:
        a = await make_tenant(settings)
        b = await make_tenant(settings)
        # A valid signature, but the claims pair B's tenant with A's user: RLS finds no one.
        mixed = tokens.mint(secret=settings.jwt_secret, tenant_id=b.id, user_id=a.admin_id,
                            role=Role.ADMIN)
        assert (await gql(VIEWER, token=mixed))["viewer"] is None

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

    async def test_syntax_errors_are_reported_without_internals(self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        payload = (await gql.raw("{ viewer { ", token=tenant.token)).json()
        assert payload["errors"][0]["message"].startswith("Syntax Error")
        assert "Traceback" not in json.dumps(payload)


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
