"""STEPWISE_CORS_ORIGINS governs browser HTTP (CORS, preflight) and WebSocket origins alike."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from schema.app import create_app
from tests.conftest import serving
from tests.factories import make_tenant

pytestmark = pytest.mark.asyncio
BUILDER = "http://localhost:5173"


@pytest.fixture(scope="module")
def cors_settings(settings):  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, cors_origins=[BUILDER])


async def test_preflight_allows_the_configured_origin(cors_settings) -> None:
    app = create_app(cors_settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        allowed = await client.options("/graphql", headers={
            "Origin": BUILDER, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == BUILDER
        denied = await client.options("/graphql", headers={
            "Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in denied.headers


async def test_websocket_origin_is_checked(cors_settings) -> None:
    tenant = await make_tenant(cors_settings)
    async with serving(create_app(cors_settings)) as address:
        url = f"ws://{address}/graphql"
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                     origin="http://evil.test")
        assert refused.value.response.status_code == 403
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"],
                                      origin=BUILDER) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {tenant.token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
