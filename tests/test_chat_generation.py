"""generateWorkflow: the model proposes through a tool whose input schema is the served
config schema; a valid answer comes back as is, an invalid one is sent back for repairs (two
at most) and what is still wrong is returned; nothing is saved either way."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import pytest_asyncio

from tests.factories import contract_operation as contract
from tests.factories import make_tenant
from tests.factories_workflows import config, seed_core

pytestmark = pytest.mark.asyncio
COUNT = "{ workflows(first: 100) { totalCount } }"


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


async def _generate(gql: Any, token: str, description: str) -> dict[str, Any]:
    data = await gql(contract("GenerateWorkflow"), {"description": description}, token=token)
    payload: dict[str, Any] = data["generateWorkflow"]
    return payload


def _proposal(description: str, proposed: Any, text: str) -> dict[str, Any]:
    return {"match": description, "text": text,
            "tool_use": {"name": "propose_workflow", "input": proposed}}


class TestGenerateWorkflow:
    async def test_a_valid_proposal_is_returned_and_nothing_saved(
            self, gql, settings, fake_llm) -> None:
        tenant = await make_tenant(settings)
        before = (await gql(COUNT, token=tenant.token))["workflows"]["totalCount"]
        description = "A playbook for renewals 30 days out with an executive check-in"
        proposed = config("renewal-30")
        await fake_llm.script(_proposal(description, proposed, "Three steps: assess, ..."))
        payload = await _generate(gql, tenant.token, description)
        assert payload["errors"] == []
        assert payload["config"] == proposed
        assert payload["explanation"] == "Three steps: assess, ..."
        [call] = [c for c in await fake_llm.calls() if description in json.dumps(c)]
        served = (await gql("{ workflowConfigSchema }", token=tenant.token))[
            "workflowConfigSchema"]
        assert call["tools"][0]["input_schema"] == served
        assert call["tool_choice"] == {"type": "tool", "name": "propose_workflow"}
        assert (await gql(COUNT, token=tenant.token))["workflows"]["totalCount"] == before
        usage = await gql("{ usage { calls } }", token=tenant.token)
        assert usage["usage"]["calls"] == 1

    async def test_problems_go_back_for_a_repair(self, gql, settings, fake_llm) -> None:
        tenant = await make_tenant(settings)
        description = "Repairable playbook please"
        broken = config("fixable")
        broken["steps"][0]["id"] = "bad id with spaces"
        await fake_llm.script(_proposal(description, broken, "First try."),
                              _proposal(description, config("fixable"), "Fixed the id."))
        payload = await _generate(gql, tenant.token, description)
        assert payload["errors"] == []
        assert payload["config"] == config("fixable")
        assert payload["explanation"] == "First try.\n\nFixed the id."
        calls = [c for c in await fake_llm.calls() if description in json.dumps(c)]
        assert len(calls) == 2
        result = calls[1]["messages"][-1]["content"][0]
        assert result["type"] == "tool_result"
        assert result["is_error"] is True
        assert "$.steps[0]" in result["content"]

    async def test_an_unrepairable_proposal_returns_its_problems_after_two_repairs(
            self, gql, settings, fake_llm) -> None:
        tenant = await make_tenant(settings)
        before = (await gql(COUNT, token=tenant.token))["workflows"]["totalCount"]
        description = "A playbook the model keeps getting wrong"
        broken = {"id": "oops", "name": "Oops", "steps": "not a list"}
        await fake_llm.script({**_proposal(description, broken, "Trying."), "times": 5})
        payload = await _generate(gql, tenant.token, description)
        assert payload["config"] == broken
        assert payload["errors"]
        assert all(e["code"] and e["path"].startswith("$") for e in payload["errors"])
        calls = [c for c in await fake_llm.calls() if description in json.dumps(c)]
        assert len(calls) == 3  # the proposal and two repairs, no more
        assert (await gql(COUNT, token=tenant.token))["workflows"]["totalCount"] == before

    async def test_bad_input_and_viewers_are_refused_without_a_model_call(
            self, gql, settings, fake_llm) -> None:
        from domain.shared.actor import Role
        from tests.factories import make_user

        tenant = await make_tenant(settings)
        for description in ("   ", "x" * 4001):
            payload = await _generate(gql, tenant.token, description)
            assert payload["config"] is None
            assert payload["errors"][0]["path"] == "description"
        viewer = await make_user(tenant, role=Role.VIEWER)
        refused = await _generate(gql, tenant.token_for(viewer, Role.VIEWER), "A playbook")
        assert refused["errors"][0]["code"] == "FORBIDDEN"
        assert await fake_llm.calls() == []

    async def test_no_transaction_stays_open_while_the_model_answers(
            self, gql, settings, fake_llm, app_connection_factory) -> None:
        tenant = await make_tenant(settings)
        description = "A slow model's playbook"
        await fake_llm.script({**_proposal(description, config("slow-one"), "Done."),
                               "delay": 1.0})
        watcher = await app_connection_factory()
        try:
            pending = asyncio.ensure_future(_generate(gql, tenant.token, description))
            while not any(description in json.dumps(c) for c in await fake_llm.calls()):
                await asyncio.sleep(0.02)  # the model has the question
            # While the fake holds its answer back (1 s from now at most; watched for 0.7 s,
            # before the ledger's own short settling transaction), no connection of the app
            # role to this database sits inside a transaction.
            seen: list[int] = []
            until = asyncio.get_running_loop().time() + 0.7
            while asyncio.get_running_loop().time() < until:
                seen.append(await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND usename = current_user AND pid <> pg_backend_pid()"
                    " AND state LIKE 'idle in transaction%'"))
                await asyncio.sleep(0.05)
            payload = await pending
        finally:
            await watcher.close()
        assert payload["errors"] == []
        assert payload["config"] == config("slow-one")
        assert len(seen) >= 5  # it was watched through the model's second
        assert max(seen) == 0
