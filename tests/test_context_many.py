"""build_many: the same contexts as one-by-one builds, for the run engine's scans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.context import builder
from domain.customers import repository as customers_repository
from domain.shared import clock as shared_clock
from domain.shared.db import owner_transaction
from tests.factories import make_tenant, make_user
from tests.factories_customers import set_contacts, upsert_customer

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


async def test_build_many_equals_building_each(gql, settings) -> None:
    tenant = await make_tenant(settings, time_zone="America/New_York")
    manager = await make_user(tenant, email="boss@acme.test")
    csm = await make_user(tenant, email="csm@acme.test", manager_id=manager)
    lone = await make_user(tenant, email="lone@acme.test")
    await set_contacts(gql, tenant, ceo="ceo@acme.test")
    ids = [uuid.UUID((await upsert_customer(gql, tenant, renewalDate=day, csmId=csm_id,
                                            accountTeam={"ae": "ae@acme.test"}))["id"])
           for day, csm_id in (("2026-12-11", str(csm)), ("2026-12-04", str(lone)),
                               ("2026-11-23", None))]
    async with owner_transaction(settings.database_url, tenant_id=tenant.id) as session:
        rows = await customers_repository.get_many(session, ids)
        many = await builder.build_many(session, rows, now=NOW)
        one_by_one = {i: await builder.build(session, i, now=NOW) for i in ids}
        loaded = {row.id: await builder.build_for(session, row, now=NOW) for row in rows}
    assert many == one_by_one == loaded
    assert [many[i]["workflow"]["daysUntilRenewal"] for i in ids] == [10, 3, -8]
    assert [many[i]["csm"]["manager"] for i in ids] == ["boss@acme.test", None, None]
    assert all(c["company"]["ceo"] == "ceo@acme.test" for c in many.values())


async def test_build_many_refuses_to_mix_tenants(gql, settings) -> None:
    a, b = await make_tenant(settings), await make_tenant(settings)
    first = await upsert_customer(gql, a)
    second = await upsert_customer(gql, b)
    rows = []
    for tenant, made in ((a, first), (b, second)):
        async with owner_transaction(settings.database_url, tenant_id=tenant.id) as session:
            rows += await customers_repository.get_many(session, [uuid.UUID(made["id"])])
    async with owner_transaction(settings.database_url, tenant_id=a.id) as session:
        with pytest.raises(ValueError, match="one tenant"):
            await builder.build_many(session, rows, now=NOW)
        assert await builder.build_many(session, [], now=NOW) == {}


async def test_one_clock_reading_per_batch(gql, settings, monkeypatch) -> None:
    tenant = await make_tenant(settings)
    ids = [uuid.UUID((await upsert_customer(gql, tenant, renewalDate="2026-05-02"))["id"])
           for _ in range(3)]
    # Each reading is a day later than the one before: one reading serves every customer.
    readings = iter(datetime(2026, 4, day, 12, tzinfo=UTC) for day in range(1, 30))

    class Ticking(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return next(readings)

    monkeypatch.setattr(shared_clock, "datetime", Ticking)
    async with owner_transaction(settings.database_url, tenant_id=tenant.id) as session:
        many = await builder.build_many(
            session, await customers_repository.get_many(session, ids))
    assert [many[i]["workflow"]["daysUntilRenewal"] for i in ids] == [31, 31, 31]
