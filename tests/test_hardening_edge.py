"""Bodies of unexpected shapes get a 400 JSON error with code BAD_REQUEST, never a 500."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from domain.auth import tokens
from domain.users.models import Role
from tests.factories import make_tenant

pytestmark = pytest.mark.asyncio

VIEWER = "query Viewer { viewer { id } }"


async def _headers(settings) -> dict[str, str]:
    tenant = await make_tenant(settings)
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=tenant.id,
                        user_id=tenant.admin_id, role=Role.ADMIN)
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


BODIES = [
    b"null", b'"a string"', b"42", b"true", b"[1, 2]", b"\xff\xfe{", b"not json",
    json.dumps({"query": VIEWER, "variables": {"x": [[0]]}})
    .replace("[[0]]", "[" * 10_000 + "]" * 10_000).encode(),
    json.dumps({"query": VIEWER, "variables": "x"}).encode(),
    json.dumps({"query": 5}).encode(),
    json.dumps({"query": VIEWER, "variables": {"name": "a\u0000b"}}).encode(),
    json.dumps({"query": VIEWER, "variables": {"c": {"x": ["\ud800"]}}}).encode(),
    json.dumps({"query": 'query { viewer { id } } # \u0000'}).encode(),
    json.dumps({"query": 'mutation { renderTemplate(source: "a\\u0000") }'}).encode(),
    json.dumps({"query": "query A { viewer { id } } query B { viewer { id } }"}).encode(),
]


@pytest.mark.parametrize("raw", BODIES, ids=range(len(BODIES)))
async def test_unexpected_bodies_are_400_bad_request(http, settings, raw) -> None:
    response = await http.post("/graphql", content=raw, headers=await _headers(settings))
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_named_operation_of_several_runs(http, settings) -> None:
    body = {"query": "query A { viewer { id } } query B { viewer { id } }",
            "operationName": "B"}
    response = await http.post("/graphql", json=body, headers=await _headers(settings))
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["id"]


GET_PARAMS = [
    {"query": VIEWER, "variables": "not json"},
    {"query": VIEWER, "variables": "[1]"},
    {"query": VIEWER, "variables": json.dumps({"a": "x\u0000"})},
    {"query": VIEWER, "variables": "[" * 5000 + "]" * 5000},
    {"query": VIEWER, "extensions": "zzz"},
    {"query": VIEWER, "extensions": "[1]"},
    {"query": "query { viewer { id } } # \u0000"},
    {"query": 'query { workflow(key: "a\\u0000") { id } }'},
    {"query": "query A { viewer { id } } query B { viewer { id } }"},
    {"query": 'mutation { deleteWorkflow(id: "x") { deletedId } }'},
    {"query": "subscription { runEvents(runId: \"x\") { seq } }"},
    {"query": VIEWER, "operationName": "Nope"},
]


class TestGetRequests:
    @pytest.mark.parametrize("params", GET_PARAMS, ids=range(len(GET_PARAMS)))
    async def test_bad_get_queries_are_400_bad_request_json(self, http, settings,
                                                            params) -> None:
        response = await http.get("/graphql", params=params, headers=await _headers(settings))
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    async def test_a_good_get_query_runs(self, http, settings) -> None:
        response = await http.get("/graphql", params={"query": VIEWER, "operationName": "Viewer",
                                                      "variables": "{}"},
                                  headers=await _headers(settings))
        assert response.status_code == 200
        assert response.json()["data"]["viewer"]["id"]


class TestBodiesOfOtherKinds:
    @pytest.mark.parametrize("content_type", [
        "text/plain", "application/graphql", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded"])
    async def test_other_content_types_are_415_with_a_code(self, http, settings,
                                                           content_type) -> None:
        headers = {**await _headers(settings), "Content-Type": content_type}
        response = await http.post("/graphql", content=b"query=x", headers=headers)
        assert response.status_code == 415
        assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"

    async def test_an_oversized_body_is_413_before_it_is_parsed(self, http, settings) -> None:
        raw = (b'{"query": "{ viewer { id } }", "variables": {"x": "' + b"a" * 3_000_000
               + b'"}}')
        response = await http.post("/graphql", content=raw, headers=await _headers(settings))
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    async def test_an_oversized_body_without_a_length_is_413_too(self, http, settings) -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b'{"query": "{ viewer { id } }", "variables": {"x": "'
            for _ in range(30):
                yield b"a" * 100_000
            yield b'"}}'

        response = await http.post("/graphql", content=chunks(),
                                   headers=await _headers(settings))
        assert response.status_code == 413

    async def test_a_body_just_under_the_limit_runs(self, http, settings) -> None:
        raw = (b'{"query": "{ viewer { id } }", "variables": {"x": "' + b"a" * 1_900_000
               + b'"}}')
        response = await http.post("/graphql", content=raw, headers=await _headers(settings))
        assert response.status_code == 200
        assert response.json()["data"]["viewer"]["id"]


async def _socket(address: str, settings, protocol: str):  # type: ignore[no-untyped-def]
    tenant = await make_tenant(settings)
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=tenant.id,
                        user_id=tenant.admin_id, role=Role.ADMIN)
    ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=[protocol],
                                  max_size=None)
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"Authorization": f"Bearer {token}"}}))
    while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "connection_ack":
        pass
    return ws


async def _next(ws) -> dict:  # type: ignore[no-untyped-def]
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] not in ("ka", "ping", "pong"):
            return message  # type: ignore[no-any-return]


PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
BAD_PAYLOADS = [
    "not an object",
    {"query": 5},
    {"query": VIEWER, "variables": "x"},
    {"query": 'query($k: String!) { workflow(key: $k) { id } }', "variables": {"k": "a\u0000"}},
    {"query": 'query { workflow(key: "a\\u0000") { id } }'},
    {"query": "query A { viewer { id } } query B { viewer { id } }"},
    {"query": VIEWER, "variables": {"x": json.loads("[" * 100 + "]" * 100)}},
]


class TestWebSocketMessages:
    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=range(len(BAD_PAYLOADS)))
    async def test_a_bad_operation_is_its_error_and_the_socket_lives_on(
            self, live_server, settings, protocol, payload) -> None:
        ws = await _socket(live_server, settings, protocol)
        try:
            start = "subscribe" if protocol == "graphql-transport-ws" else "start"
            await ws.send(json.dumps({"type": start, "id": "bad", "payload": payload}))
            message = await _next(ws)
            assert message["type"] == "error", message
            errors = message["payload"] if isinstance(message["payload"], list) \
                else [message["payload"]]
            assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
            await ws.send(json.dumps({"type": start, "id": "good",
                                      "payload": {"query": VIEWER}}))
            answer = await _next(ws)
            assert answer["id"] == "good"
            assert answer["payload"]["data"]["viewer"]["id"]
        finally:
            await ws.close()

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    @pytest.mark.parametrize("raw", [
        "[1, 2]", "42", "null", '{"type": 5}', '{"type": "subscribe", "id": 7, "payload": {}}',
        "[" * 5000 + "]" * 5000, json.dumps({"type": "ping", "payload": "x" * 2_500_000})],
        ids=["list", "number", "null", "type", "id", "deep", "huge"])
    async def test_a_message_that_is_not_a_protocol_message_closes_4400(
            self, live_server, settings, protocol, raw) -> None:
        ws = await _socket(live_server, settings, protocol)
        try:
            await ws.send(raw)
            if protocol == "graphql-ws" and raw.startswith(("[[", '{"type": "ping"')):
                # The legacy protocol ignores what is not JSON (too deep or too large reads
                # as not JSON): the socket goes on answering.
                await ws.send(json.dumps({"type": "start", "id": "good",
                                          "payload": {"query": VIEWER}}))
                assert (await _next(ws))["payload"]["data"]["viewer"]["id"]
                return
            with pytest.raises(ConnectionClosed):
                await _next(ws)
            assert ws.close_code == 4400, (ws.close_code, ws.close_reason)
        finally:
            await ws.close()
