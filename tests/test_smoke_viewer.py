import pytest

from tests.factories import make_tenant

pytestmark = pytest.mark.asyncio


async def test_viewer_returns_the_caller(gql, settings) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(settings, name="Acme")
    data = await gql("{ viewer { id role tenant { name } } }", token=tenant.token)
    assert data["viewer"] == {"id": str(tenant.admin_id), "role": "ADMIN",
                              "tenant": {"name": "Acme"}}
