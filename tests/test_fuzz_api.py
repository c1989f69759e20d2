"""Property-based: generated queries and mutations never reach INTERNAL, a 5xx or a leak.

hypothesis-graphql writes documents over the live schema with strategies for every scalar
(JSON, Date, DateTime and the built-in ones, leaning on the seeded tenant's own ids, keys
and cursors); the tenant's admin sends them to the app in-process. The run is derandomized
(the same documents every time) with a budget of FUZZ_OPERATIONS; scripts/fuzz_api.py is
the long run. A failure prints the first failing document, shrunk by hypothesis.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from domain.shared.settings import Settings
from tests.factories import make_tenant
from tests.fuzzlib import Fuzzer, Operation, describe, known_families, operations

FUZZ_OPERATIONS = int(os.environ.get("STEPWISE_FUZZ_OPERATIONS", "1000"))


def test_generated_operations_never_fail_inside_the_server(settings: Settings) -> None:
    fuzzer = Fuzzer(settings)
    with fuzzer.running():

        @hypothesis_settings(max_examples=FUZZ_OPERATIONS, derandomize=True, database=None,
                             deadline=None, phases=[Phase.generate, Phase.shrink],
                             suppress_health_check=list(HealthCheck), print_blob=False)
        @given(operation=operations(fuzzer.world, fuzzer.schema, exclude=known_families))
        def never_fails(operation: Operation) -> None:
            if fuzzer.check(operation).failure:
                raise AssertionError(describe(fuzzer.tally.failures[-1]))

        never_fails()

    tally = fuzzer.tally
    assert tally.operations >= FUZZ_OPERATIONS
    # The budget is spent inside the server, not on documents refused at the door: most
    # operations run a resolver, and nearly every root field does so at least once.
    reached = sum(n for kind, n in tally.by_kind.items() if kind in ("data", "user"))
    assert reached >= tally.operations // 2, tally.by_kind
    assert len(tally.reached) >= 45, sorted(set(tally.by_field) - set(tally.reached))


# What the fuzzer found, pinned as examples (each was INTERNAL_SERVER_ERROR before its fix).

USAGE_SINCE = "query($since: DateTime) { usage(since: $since) { calls } }"
CONTEXT_AT = "query($id: ID!, $at: DateTime) { workflowContext(customerId: $id, asOf: $at) }"
BUDGET = """mutation($cost: Float) { setLlmBudget(input: {monthlyCostUsd: $cost}) {
  budget { monthlyCostUsd } errors { code message path } } }"""


@pytest.mark.asyncio
@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                    "0999-12-31T23:59:59Z", "9000-01-01T00:00:00"])
async def test_a_moment_outside_the_accepted_years_is_a_typed_argument_error(
        gql, settings, moment: str) -> None:
    tenant = await make_tenant(settings)
    for query, variables in ((USAGE_SINCE, {"since": moment}),
                             (CONTEXT_AT, {"id": str(tenant.id), "at": moment})):
        response = await gql.raw(query, variables, token=tenant.token)
        assert response.status_code == 200
        (error,) = response.json()["errors"]
        assert "out of range (years 1000 to 8999)" in error["message"], error
        assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR"


@pytest.mark.asyncio
async def test_an_offset_moment_is_read_in_utc_and_naive_means_utc(gql, settings) -> None:
    tenant = await make_tenant(settings)
    for moment in ("1000-01-01T00:00:00Z", "8999-12-31T23:59:59", "2026-06-01T12:00:00+02:00"):
        data = await gql(USAGE_SINCE, {"since": moment}, token=tenant.token)
        assert data["usage"]["calls"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "0999-12-31"])
async def test_a_date_outside_the_accepted_years_is_a_typed_argument_error(
        gql, settings, day: str) -> None:
    tenant = await make_tenant(settings)
    response = await gql.raw(
        "mutation($d: Date) { upsertCustomer(input: {externalId: \"x\", name: \"X\", "
        "renewalDate: $d}) { errors { code } } }", {"d": day}, token=tenant.token)
    (error,) = response.json()["errors"]
    assert "out of range (years 1000 to 8999)" in error["message"], error


@pytest.mark.asyncio
async def test_a_budget_beyond_what_the_ledger_can_count_is_out_of_range(gql, settings) -> None:
    tenant = await make_tenant(settings)
    data = await gql(BUDGET, {"cost": 9007199254740992.0}, token=tenant.token)
    assert data["setLlmBudget"]["budget"] is None
    assert data["setLlmBudget"]["errors"] == [{
        "code": "OUT_OF_RANGE", "message": "must be at most 1,000,000,000",
        "path": "monthlyCostUsd"}]
    data = await gql(BUDGET, {"cost": 1e9}, token=tenant.token)
    assert data["setLlmBudget"]["budget"] == {"monthlyCostUsd": 1e9}


CREATE_CHANNEL = """mutation($input: NotificationChannelInput!) {
  createNotificationChannel(input: $input) { channel { id } errors { code message path } } }"""
UPDATE_CHANNEL = """mutation($id: ID!, $input: NotificationChannelInput!) {
  updateNotificationChannel(id: $id, input: $input) {
    channel { id config } errors { code message path } } }"""


@pytest.mark.asyncio
@pytest.mark.parametrize("config", [["url"], "http://127.0.0.1/hook", 7, True])
async def test_a_channel_config_that_is_not_an_object_is_refused_with_its_path(
        gql, settings, config: object) -> None:
    tenant = await make_tenant(settings)
    for kind in ("webhook", "email"):
        data = await gql(CREATE_CHANNEL, {"input": {"type": kind, "name": "N", "config": config}},
                         token=tenant.token)
        assert data["createNotificationChannel"] == {"channel": None, "errors": [{
            "code": "INVALID", "message": "the config must be an object",
            "path": "input.config"}]}
    made = await gql(CREATE_CHANNEL, {"input": {"type": "webhook", "name": "N",
                                                "config": {"url": "http://127.0.0.1:9/h"}}},
                     token=tenant.token)
    channel_id = made["createNotificationChannel"]["channel"]["id"]
    data = await gql(UPDATE_CHANNEL, {"id": channel_id, "input": {"config": config}},
                     token=tenant.token)
    assert data["updateNotificationChannel"]["errors"][0]["path"] == "input.config"
