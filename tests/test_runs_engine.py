"""Runs through GraphQL, without the worker: the steps the engine finishes in the transaction."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.factories_runs import act, make_customer, make_team, run, start
from tests.factories_workflows import seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


class TestCritical:
    async def test_low_arr_with_a_plan_goes_straight_to_resolution(self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=90000, plan=True)
        started = await start(gql, team, "critical", customer["id"])
        assert started["errors"] == []
        detail = await run(gql, team, started["run"]["id"])
        print(detail)
        assert detail["steps"][0]["stepId"] == "critical-status-assessment"
        assert [e["seq"] for e in detail["events"]] == list(range(1, len(detail["events"]) + 1))

    async def test_executive_escalation_waits_then_a_fixed_branch_moves_on(
            self, gql, settings) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        started = await start(gql, team, "critical", customer["id"])
        run_id = started["run"]["id"]
        assert started["run"]["status"] == "waiting"
        assert started["run"]["currentStepId"] == "executive-escalation"
        chosen = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                           branchId="activate-war-room")
        assert chosen["errors"] == [], chosen
        detail = await run(gql, team, run_id)
        print(detail)
        kinds = [n["notificationId"] for n in detail["notifications"]]
        assert "war-room-activation" in kinds
