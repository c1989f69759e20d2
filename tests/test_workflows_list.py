"""WorkflowList: search, filters, orderings, Relay cursors, totalCount, stable pages."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from tests.factories import make_tenant
from tests.factories_workflows import make_workflow, op, seed_core

pytestmark = pytest.mark.asyncio


def keys(data: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["node"]["key"] for e in data["workflows"]["edges"]]


@pytest_asyncio.fixture
async def tenant(settings, gql):  # type: ignore[no-untyped-def]
    await seed_core(settings)
    handle = await make_tenant(settings)
    await make_workflow(gql, handle, key="alpha", name="Alpha renewal",
                        description="Quarterly business review", tags=["qbr", "renewal"])
    await make_workflow(gql, handle, key="bravo", name="Bravo onboarding",
                        description="First 90 days", tags=["onboarding"], is_template=True)
    await make_workflow(gql, handle, key="charlie", name="charlie churn save",
                        description="Save a renewal at risk", tags=["renewal"])
    return handle


class TestFilters:
    async def test_default_lists_own_and_core_newest_first(self, gql, tenant) -> None:
        data = await op(gql, "WorkflowList", {}, token=tenant.token)
        assert data["workflows"]["totalCount"] == 6
        assert keys(data)[:3] == ["charlie", "bravo", "alpha"]
        assert set(keys(data)[3:]) == {"critical", "emergency", "overdue"}

    async def test_search_matches_name_and_description_case_insensitively(
            self, gql, tenant) -> None:
        data = await op(gql, "WorkflowList", {"filter": {"search": "RENEWAL"}}, token=tenant.token)
        assert {"alpha", "charlie", "critical", "emergency", "overdue"} == set(keys(data))
        data = await op(gql, "WorkflowList", {"filter": {"search": "90 days"}}, token=tenant.token)
        assert keys(data) == ["bravo"]

    async def test_search_treats_wildcards_literally(self, gql, tenant) -> None:
        data = await op(gql, "WorkflowList", {"filter": {"search": "%"}}, token=tenant.token)
        assert data["workflows"]["totalCount"] == 0

    async def test_tags_must_all_match(self, gql, tenant) -> None:
        data = await op(gql, "WorkflowList", {"filter": {"tags": ["renewal", "qbr"]}},
                        token=tenant.token)
        assert keys(data) == ["alpha"]

    async def test_core_and_template_filters(self, gql, tenant) -> None:
        core = await op(gql, "WorkflowList", {"filter": {"isCore": True}}, token=tenant.token)
        assert set(keys(core)) == {"critical", "emergency", "overdue"}
        own = await op(gql, "WorkflowList", {"filter": {"isCore": False}}, token=tenant.token)
        assert set(keys(own)) == {"alpha", "bravo", "charlie"}
        templates = await op(gql, "WorkflowList", {"filter": {"isTemplate": True, "isCore": False}},
                             token=tenant.token)
        assert keys(templates) == ["bravo"]

    async def test_name_orderings(self, gql, tenant) -> None:
        filt = {"isCore": False}
        asc = await op(gql, "WorkflowList", {"filter": filt, "orderBy": "NAME_ASC"},
                       token=tenant.token)
        desc = await op(gql, "WorkflowList", {"filter": filt, "orderBy": "NAME_DESC"},
                        token=tenant.token)
        assert keys(asc) == list(reversed(keys(desc)))
        created = await op(gql, "WorkflowList", {"filter": filt, "orderBy": "CREATED_AT_DESC"},
                           token=tenant.token)
        assert keys(created) == ["charlie", "bravo", "alpha"]
        oldest = await op(gql, "WorkflowList", {"filter": filt, "orderBy": "UPDATED_AT_ASC"},
                          token=tenant.token)
        assert keys(oldest) == ["alpha", "bravo", "charlie"]

    async def test_latest_version_comes_with_the_row(self, gql, tenant) -> None:
        data = await op(gql, "WorkflowList", {"first": 1}, token=tenant.token)
        node = data["workflows"]["edges"][0]["node"]
        assert node["latestVersion"]["number"] == 1
        assert node["latestVersion"]["changedAt"]


class TestPagination:
    @pytest.mark.parametrize("order", ["UPDATED_AT_DESC", "UPDATED_AT_ASC", "NAME_ASC",
                                       "NAME_DESC", "CREATED_AT_DESC"])
    async def test_pages_cover_every_row_once_while_rows_are_added(
            self, gql, settings, order: str) -> None:
        handle = await make_tenant(settings)
        for i in range(12):
            await make_workflow(gql, handle, key=f"w{i:02d}", name=f"Same name {i % 3}")
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            data = await op(gql, "WorkflowList", {"first": 5, "after": after, "orderBy": order,
                                                  "filter": {"isCore": False}},
                            token=handle.token)
            conn = data["workflows"]
            assert conn["totalCount"] == 12 + min(pages, 1)
            seen += keys(data)
            if pages == 0:
                # A row created mid-walk must not push an already-seen row onto the next page.
                await make_workflow(gql, handle, key="late", name="Same name 1")
            pages += 1
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert len(seen) == len(set(seen))
        assert {f"w{i:02d}" for i in range(12)} <= set(seen)

    async def test_edges_carry_cursors_that_resume_after_them(self, gql, tenant) -> None:
        first = await op(gql, "WorkflowList", {"first": 2}, token=tenant.token)
        cursor = first["workflows"]["edges"][0]["cursor"]
        resumed = await op(gql, "WorkflowList", {"first": 1, "after": cursor}, token=tenant.token)
        assert keys(resumed) == keys(first)[1:2]

    async def test_a_foreign_or_garbage_cursor_is_a_clear_error(self, gql, tenant) -> None:
        page = await op(gql, "WorkflowList", {"first": 1, "orderBy": "NAME_ASC"},
                        token=tenant.token)
        cursor = page["workflows"]["pageInfo"]["endCursor"]
        from tests.factories_workflows import operation

        for bad, variables in (("garbage", {"after": "!!not-a-cursor"}),
                               ("other order", {"after": cursor, "orderBy": "UPDATED_AT_DESC"})):
            response = await gql.raw(operation("WorkflowList"), variables, token=tenant.token)
            errors = response.json()["errors"]
            assert errors[0]["extensions"]["code"] == "INVALID_CURSOR", bad

    async def test_page_size_is_bounded(self, gql, tenant) -> None:
        from tests.factories_workflows import operation

        response = await gql.raw(operation("WorkflowList"), {"first": 1000}, token=tenant.token)
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"

    async def test_an_empty_page_still_counts(self, gql, tenant) -> None:
        data = await op(gql, "WorkflowList", {"first": 0}, token=tenant.token)
        assert data["workflows"]["edges"] == []
        assert data["workflows"]["totalCount"] == 6

    async def test_another_tenants_rows_are_never_listed(self, gql, tenant, settings) -> None:
        other = await make_tenant(settings)
        await make_workflow(gql, other, key=f"theirs-{uuid.uuid4().hex[:6]}")
        data = await op(gql, "WorkflowList", {"first": 100}, token=tenant.token)
        assert not any(k.startswith("theirs") for k in keys(data))


class TestForgedCursors:
    @pytest.mark.parametrize("values", [["NAME_ASC", 42, str(uuid.uuid4())],
                                        ["UPDATED_AT_DESC", "yesterday", str(uuid.uuid4())],
                                        ["NAME_ASC", "a", "not-a-uuid"],
                                        ["NAME_ASC", "a"]])
    async def test_a_well_encoded_but_wrong_cursor_is_a_clear_error(
            self, gql, tenant, values: list) -> None:  # type: ignore[type-arg]
        from domain.shared.pagination import encode_cursor
        from tests.factories_workflows import operation

        order = values[0]
        response = await gql.raw(operation("WorkflowList"),
                                 {"after": encode_cursor(values), "orderBy": order},
                                 token=tenant.token)
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"
