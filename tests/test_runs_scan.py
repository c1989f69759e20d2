"""The renewal scan: the right workflow per customer, once per renewal, tenant by tenant."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
import pytest_asyncio

from domain.runs import scan, work
from domain.shared.settings import PROJECT_ROOT
from tests.factories_runs import Team, make_customer, make_team
from tests.factories_workflows import config, make_workflow, seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _runs(gql, team: Team) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    data = await gql("{ runs(first: 100) { edges { node { id status trigger workflowKey "
                     "customer { name } } } } }", token=team.tenant.token)
    return {e["node"]["customer"]["name"]: (e["node"]["workflowKey"], e["node"]["status"])
            for e in data["runs"]["edges"]}


async def _named(gql, team: Team, name: str, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    customer = await make_customer(gql, team, **fields)
    await gql("mutation($i: CustomerInput!) { upsertCustomer(input: $i) { errors { code } } }",
              {"i": {"externalId": customer["externalId"], "name": name}},
              token=team.tenant.token)
    return customer


class TestScan:
    async def test_windows_early_triggers_and_idempotence(self, gql, settings, app_db) -> None:
        team = await make_team(gql, settings)
        await _named(gql, team, "in-critical", days=10)
        await _named(gql, team, "in-emergency", days=3)
        await _named(gql, team, "overdue", days=-8)
        await _named(gql, team, "far", days=120)
        await _named(gql, team, "low-health-early", days=20, health=30)
        await _named(gql, team, "healthy-early", days=20, health=90)
        other = await make_team(gql, settings)
        await _named(gql, other, "other-tenant", days=10)

        [report] = await scan.scan_all(app_db, [team.tenant.id])
        assert report.customers == 6
        assert dict(report.started) == {"critical": 2, "emergency": 1, "overdue": 1}
        found = await _runs(gql, team)
        assert found == {"in-critical": ("critical", "pending"),
                         "in-emergency": ("emergency", "pending"),
                         "overdue": ("overdue", "pending"),
                         "low-health-early": ("critical", "pending")}
        assert await _runs(gql, other) == {}  # another tenant is untouched

        [again] = await scan.scan_all(app_db, [team.tenant.id])
        assert dict(again.started) == {}
        assert again.already == 4

    async def test_the_worker_starts_what_the_scan_created(self, gql, settings, app_db) -> None:
        team = await make_team(gql, settings)
        await _named(gql, team, "in-critical", days=10, arr=300000)
        await scan.scan_all(app_db, [team.tenant.id])
        data = await gql("{ runs { edges { node { id } } } }", token=team.tenant.token)
        run_id = data["runs"]["edges"][0]["node"]["id"]
        import uuid

        assert await work.begin_pending(app_db, team.tenant.id, uuid.UUID(run_id)) == "started"
        assert await work.begin_pending(app_db, team.tenant.id, uuid.UUID(run_id)) == "stale"
        assert (await _runs(gql, team))["in-critical"] == ("critical", "waiting")

    async def test_a_tenant_workflow_shadows_the_core_one(self, gql, settings, app_db) -> None:
        team = await make_team(gql, settings)
        own = config("critical")
        own["trigger"] = {"daysUntilRenewal": {"min": 20, "max": 30}}
        await make_workflow(gql, team.tenant, key="critical", config_=own)
        await _named(gql, team, "core-window", days=10)
        await _named(gql, team, "own-window", days=25)
        [report] = await scan.scan_all(app_db, [team.tenant.id])
        assert dict(report.started) == {"critical": 1}
        assert set(await _runs(gql, team)) == {"own-window"}

    async def test_the_cli_scans_once(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        await _named(gql, team, "in-critical", days=10)
        env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": settings.database_url,
               "STEPWISE_JWT_SECRET": settings.jwt_secret}
        command = [sys.executable, "-m", "scripts.cli", "runs", "scan", "--tenant",
                   str(team.tenant.id)]
        def scan_once() -> subprocess.CompletedProcess[str]:
            return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True,
                                  text=True, timeout=120, check=True)

        first = await asyncio.to_thread(scan_once)
        second = await asyncio.to_thread(scan_once)
        assert json.loads(first.stdout)["started"] == {"critical": 1}
        assert json.loads(second.stdout)["started"] == {}
