"""Bodies of unexpected shapes get a 400 JSON error with code BAD_REQUEST, never a 500."""

from __future__ import annotations

import json

import pytest

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
