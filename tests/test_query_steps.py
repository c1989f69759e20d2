"""Query steps (M12): the guard refuses hostile SQL, the query role reads only the tenant's
rows of the query_api views whatever the SQL says, and a run's query step goes from the
fake LLM's SQL to a stored CSV that the next step receives."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import pytest_asyncio

from domain.queries import guard, repository
from domain.queries import service as queries
from domain.queries.errors import QueryFailed, QueryRefused
from domain.shared.errors import DomainError
from tests.factories_runs import Team, make_customer, make_team, start
from tests.factories_workflows import config, make_workflow
from tests.workerlib import run_in_status

C = "query_api.customers"
OTHER = "00000000-0000-0000-0000-000000000001"

# Every one must be refused by the guard (and, below, be harmless end to end).
ATTACKS = [
    # writes and DDL
    f"INSERT INTO {C} (name) VALUES ('x')",
    f"UPDATE {C} SET name = 'x'",
    f"DELETE FROM {C}",
    "DELETE FROM public.customers",
    "TRUNCATE public.customers",
    "DROP TABLE public.customers",
    "CREATE TABLE t AS SELECT 1",
    "ALTER TABLE public.customers DISABLE ROW LEVEL SECURITY",
    f"MERGE INTO {C} c USING {C} d ON c.id = d.id WHEN MATCHED THEN DELETE",
    "GRANT ALL ON public.customers TO PUBLIC",
    "COPY public.customers TO '/tmp/x'",
    f"COPY (SELECT * FROM {C}) TO PROGRAM 'sh'",
    # multiple statements
    f"SELECT * FROM {C}; DELETE FROM public.customers",
    f"SELECT * FROM {C}; SELECT * FROM public.customers",
    f"SELECT 1 FROM {C}; COMMIT; DELETE FROM public.customers",
    f"SELECT * FROM {C};; SET ROLE postgres",
    # tenant switching and session settings
    f"SELECT set_config('app.tenant_id', '{OTHER}', true), * FROM {C}",
    f"SELECT pg_catalog.set_config('app.tenant_id', '{OTHER}', false) FROM {C}",
    f"SELECT * FROM {C} WHERE set_config('app.tenant_id', '{OTHER}', true) IS NOT NULL",
    f"SELECT * FROM {C} WHERE id IN (SELECT id FROM {C} WHERE "
    f"set_config('role', 'postgres', true) = '')",
    "SET app.tenant_id = '00000000-0000-0000-0000-000000000001'",
    "SET ROLE postgres",
    "RESET ROLE",
    f"SELECT current_setting('app.tenant_id') FROM {C}",
    "BEGIN",
    "COMMIT",
    # other tenants' rows through the base tables, catalogs and other schemas
    "SELECT * FROM public.customers",
    "SELECT * FROM customers",
    "SELECT * FROM runs",
    "SELECT * FROM users",
    "SELECT * FROM public.tenants",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM pg_user",
    "SELECT * FROM pg_stat_activity",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM pg_catalog.pg_stats",
    "SELECT * FROM jobs.procrastinate_jobs",
    f"SELECT * FROM {C} JOIN public.users u ON true",
    f"SELECT * FROM {C} WHERE id IN (SELECT customer_id FROM public.runs)",
    "SELECT * FROM otherdb.query_api.customers",
    "SELECT * FROM query_api.secrets",
    f"SELECT * FROM {C} UNION SELECT * FROM public.customers",
    # sleeps, notifications, locks, files, large objects, remote
    f"SELECT pg_sleep(30) FROM {C}",
    f"SELECT pg_sleep_for('1 hour') FROM {C}",
    f"SELECT pg_notify('runs', 'x') FROM {C}",
    f"SELECT pg_advisory_lock(1) FROM {C}",
    f"SELECT pg_try_advisory_xact_lock(1) FROM {C}",
    f"SELECT pg_read_file('/etc/passwd') FROM {C}",
    f"SELECT pg_ls_dir('.') FROM {C}",
    f"SELECT lo_import('/etc/passwd') FROM {C}",
    f"SELECT lo_export(1, '/tmp/x') FROM {C}",
    f"SELECT dblink('dbname=x', 'select 1') FROM {C}",
    f"SELECT pg_terminate_backend(1) FROM {C}",
    f"SELECT pg_cancel_backend(1) FROM {C}",
    f"SELECT pg_reload_conf() FROM {C}",
    f"SELECT nextval('x') FROM {C}",
    f"SELECT txid_current() FROM {C}",
    f"SELECT version() FROM {C}",
    f"SELECT current_user, session_user FROM {C}",
    f"SELECT inet_server_addr() FROM {C}",
    # SQL from strings
    f"SELECT query_to_xml('select * from public.customers', true, true, '') FROM {C}",
    f"SELECT query_to_xml_and_xmlschema('select 1', true, true, '') FROM {C}",
    f"SELECT table_to_xml('public.customers', true, true, '') FROM {C}",
    f"SELECT xpath('/a', '<a/>') FROM {C}",
    f"SELECT * FROM {C}, LATERAL (SELECT query_to_xml('select 1', true, true, '')) x",
    # CTE tricks
    f"WITH d AS (DELETE FROM {C} RETURNING *) SELECT * FROM d",
    f"WITH u AS (UPDATE {C} SET name = 'x' RETURNING *) SELECT * FROM u",
    f"WITH i AS (INSERT INTO {C} (name) VALUES ('x') RETURNING *) SELECT * FROM i",
    "WITH c AS (SELECT * FROM public.customers) SELECT * FROM c",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r",
    "WITH customers AS (SELECT * FROM public.customers) SELECT * FROM customers",
    # INTO and locking
    f"SELECT * INTO stolen FROM {C}",
    f"SELECT * INTO TEMP stolen FROM {C}",
    f"SELECT * FROM {C} FOR UPDATE",
    f"SELECT * FROM {C} FOR SHARE",
    f"SELECT * FROM {C} FOR NO KEY UPDATE SKIP LOCKED",
    f"SELECT * FROM {C} FOR KEY SHARE NOWAIT",
    # comments and quoting tricks
    f"SELECT * FROM {C} /* */; DELETE FROM public.customers",
    f"SELECT * FROM {C} -- \n; DELETE FROM public.customers",
    'SELECT * FROM "public"."customers"',
    'SELECT * FROM "query_api"."Customers"',
    "SELECT * FROM public . customers",
    f"SELECT \"set_config\"('app.tenant_id', '{OTHER}', true) FROM {C}",
    f"SELECT $$x$$; DELETE FROM public.customers; SELECT * FROM {C}",
    f"SELECT U&\"\\0070g_sleep\"(10) FROM {C}",
    # table functions, parameters, generated volume
    "SELECT * FROM generate_series(1, 100000000)",
    f"SELECT * FROM {C}, generate_series(1, 100000000)",
    f"SELECT repeat('x', 100000000) FROM {C}",
    f"SELECT * FROM {C} WHERE id = $1",
    f"SELECT pg_catalog.count(*) FROM {C}",
    # not a query at all
    "EXPLAIN ANALYZE SELECT * FROM public.customers",
    "VACUUM",
    "LISTEN runs",
    "NOTIFY runs, 'x'",
    "PREPARE p AS SELECT 1",
    "DO $$ BEGIN PERFORM pg_sleep(10); END $$",
    "CALL something()",
    "",
    "   ;  ",
    "not sql at all",
    "SELECT 1",
]

# Accepted, and harmless: each runs as one SELECT of the caller's own rows.
HARMLESS = [
    f"SELECT * FROM {C} WHERE name = E'\\'; DELETE FROM public.customers; --'",
    f"TABLE {C}",
    f"SELECT name FROM {C} /* /* nested */ DELETE FROM public.customers */",
    f"SELECT * FROM {C} WHERE name = 'x''; DELETE FROM public.customers; --'",
    f"SELECT a.name FROM {C} a, {C} b, {C} c, {C} d",
]

ACCEPTED = [
    f"SELECT name, arr FROM {C} ORDER BY arr DESC LIMIT 5",
    f"SELECT count(*) AS n, sum(arr) FROM {C} WHERE days_until_renewal BETWEEN 0 AND 30",
    "SELECT c.name, count(r.id) FROM query_api.customers c LEFT JOIN query_api.runs r "
    "ON r.customer_id = c.id GROUP BY c.name",
    f"WITH big AS (SELECT * FROM {C} WHERE arr > 100000) SELECT name FROM big",
    f"SELECT date_trunc('month', renewal_date) AS m, count(*) FROM {C} GROUP BY 1",
    f"SELECT name, row_number() OVER (ORDER BY arr DESC) FROM {C}",
    f"SELECT coalesce(health_score, 0), CASE WHEN arr > 1 THEN 'big' END FROM {C};",
]


class TestGuard:
    def test_the_corpus_is_large(self) -> None:
        assert len(ATTACKS) >= 60

    @pytest.mark.parametrize("sql", ATTACKS)
    def test_refuses_each_attack(self, sql: str) -> None:
        with pytest.raises(QueryRefused) as refused:
            guard.check(sql)
        assert refused.value.code == "QUERY_REFUSED"
        assert refused.value.message.startswith("the generated SQL was refused: ")

    @pytest.mark.parametrize("sql", HARMLESS)
    def test_quoting_tricks_become_one_plain_select(self, sql: str) -> None:
        checked = guard.check(sql)
        assert guard.check(checked.sql) == checked  # one statement, stable
        assert "/*" not in checked.sql

    @pytest.mark.parametrize("sql", ACCEPTED)
    def test_accepts_plain_reports(self, sql: str) -> None:
        checked = guard.check(sql)
        assert guard.check(checked.sql) == checked  # the regenerated SQL checks the same

    def test_says_why(self) -> None:
        with pytest.raises(QueryRefused, match="function pg_sleep is not allowed"):
            guard.check(f"SELECT pg_sleep(1) FROM {C}")
        with pytest.raises(QueryRefused, match=r"relation public\.customers is not allowed"):
            guard.check("SELECT * FROM public.customers")
        with pytest.raises(QueryRefused, match="exactly one statement"):
            guard.check(f"SELECT * FROM {C}; SELECT 1")

    def test_a_model_answer_in_a_fence_is_its_sql(self) -> None:
        assert queries.extract_sql("```sql\nSELECT 1\n```") == "SELECT 1"


@pytest_asyncio.fixture
async def two(gql, settings) -> tuple[Team, Team, dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    a, b = await make_team(gql, settings), await make_team(gql, settings)
    return a, b, await make_customer(gql, a, days=10, arr=300000), \
        await make_customer(gql, b, days=20, arr=50000)


@pytest.mark.asyncio
class TestTenantIsolation:
    async def test_a_query_sees_only_its_tenants_customers(self, two, app_db) -> None:
        a, _b, mine, theirs = two
        result = await queries.run(app_db, a.tenant.id, f"SELECT id, name FROM {C}")
        assert result.row_count == 1
        assert mine["name"] in result.csv
        assert theirs["name"] not in result.csv
        assert result.csv.splitlines()[0] == "id,name"

    async def test_naming_the_other_tenants_rows_finds_nothing(self, two, app_db) -> None:
        a, _b, _, theirs = two
        for sql in (f"SELECT * FROM {C} WHERE id = '{theirs['id']}'",
                    f"SELECT * FROM {C} WHERE name = '{theirs['name']}' OR true",
                    "SELECT * FROM query_api.runs WHERE customer_id = "
                    f"'{theirs['id']}'"):
            result = await queries.run(app_db, a.tenant.id, sql)
            assert theirs["name"] not in result.csv
            assert result.row_count == (1 if "OR true" in sql else 0)

    async def test_the_tenant_column_is_not_even_there(self, two, app_db) -> None:
        a, b, _, _ = two
        with pytest.raises(QueryFailed, match="tenant_id"):
            await queries.run(app_db, a.tenant.id,
                              f"SELECT * FROM {C} WHERE tenant_id = '{b.tenant.id}'")

    @pytest.mark.parametrize("sql", ATTACKS + HARMLESS)
    async def test_every_attack_is_harmless_end_to_end(self, sql, two, app_db) -> None:
        a, _b, _, theirs = two
        outcome: Any
        try:
            outcome = await queries.run(app_db, a.tenant.id, sql)
        except DomainError as error:
            outcome = error
        if isinstance(outcome, DomainError):
            assert outcome.code in ("QUERY_REFUSED", "QUERY_FAILED")
        else:
            assert theirs["name"] not in outcome.csv


@pytest.mark.asyncio
class TestTheRoleIsTheBoundary:
    """SQL that skips the guard, straight into the query role's READ ONLY transaction."""

    async def _run(self, app_db, tenant: uuid.UUID, sql: str) -> repository.Rows:  # type: ignore[no-untyped-def]
        return await repository.run_read_only(app_db, tenant, sql, row_limit=10,
                                              statement_timeout_ms=500, lock_timeout_ms=100)

    async def test_the_base_tables_are_out_of_reach(self, two, app_db) -> None:
        a, _, _, _ = two
        for sql in ("SELECT * FROM public.customers", "SELECT * FROM public.users",
                    "SELECT * FROM public.runs", "SELECT * FROM jobs.procrastinate_jobs"):
            with pytest.raises(QueryFailed, match="may not"):
                await self._run(app_db, a.tenant.id, sql)

    async def test_writes_fail_read_only(self, two, app_db) -> None:
        a, _, _, _ = two
        with pytest.raises(QueryFailed):
            await self._run(app_db, a.tenant.id, f"DELETE FROM {C}")

    async def test_switching_tenant_is_caught(self, two, app_db) -> None:
        a, b, _, _theirs = two
        with pytest.raises(QueryFailed, match="tenant setting"):
            await self._run(app_db, a.tenant.id,
                            f"SELECT set_config('app.tenant_id', '{b.tenant.id}', true)")

    async def test_the_timeout_stops_a_sleep(self, two, app_db) -> None:
        a, _, _, _ = two
        with pytest.raises(QueryFailed, match="ran out of time"):
            await self._run(app_db, a.tenant.id, "SELECT pg_sleep(5)")

    async def test_two_statements_never_run(self, two, app_db) -> None:
        a, _, _, _ = two
        with pytest.raises(QueryFailed):
            await self._run(app_db, a.tenant.id, f"SELECT 1 FROM {C}; SELECT 2")

    async def test_the_row_limit_holds(self, two, app_db) -> None:
        a, _, _, _ = two
        rows = await self._run(app_db, a.tenant.id,
                               f"SELECT n FROM {C}, (VALUES (1),(2),(3),(4),(5),(6),(7),"
                               "(8),(9),(10),(11),(12)) v(n)")
        assert len(rows.rows) == 10
        assert rows.truncated


# ---- a run with a query step, through the worker ----------------------------------------


def _query_config(key: str) -> dict[str, Any]:
    return config(key, steps=[
        {"id": "big-accounts", "name": "Big accounts", "type": "query",
         "execution": {"llmPrompt": "List {{customer.name}} and its ARR"},
         "routing": {"defaultRoute": "summary"}},
        {"id": "summary", "name": "Summary", "type": "llm",
         "execution": {"llmPrompt": "Summarise for {{customer.name}}: "
                                    "{{{steps.big-accounts.output.csv}}}"}},
    ])


@pytest.mark.asyncio
class TestQueryStepRuns:
    async def test_the_csv_is_stored_and_passed_to_the_next_step(
            self, gql, settings, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        await make_workflow(gql, team.tenant, key="big-accounts",
                            config_=_query_config("big-accounts"))
        customer = await make_customer(gql, team, days=30, arr=420000)
        other = await make_team(gql, settings)
        hidden = await make_customer(gql, other, days=30, arr=999999)
        await fake_llm.script(
            {"match": f"List {customer['name']}",
             "text": f"```sql\nSELECT name, arr FROM {C} ORDER BY arr DESC\n```"},
            {"match": f"Summarise for {customer['name']}", "text": "One big account."})
        run_id = (await start(gql, team, "big-accounts", customer["id"]))["run"]["id"]
        detail = await run_in_status(gql, team, run_id, "completed")
        steps = {s["stepId"]: s for s in detail["steps"]}
        output = steps["big-accounts"]["output"]
        if isinstance(output, str):
            output = json.loads(output)
        assert output["sql"] == f"SELECT name, arr FROM {C} ORDER BY arr DESC"
        assert output["rowCount"] == 1
        assert output["truncated"] is False
        assert output["csv"] == f"name,arr\n{customer['name']},420000.00\n"
        assert output["durationMs"] >= 0
        assert hidden["name"] not in json.dumps(detail)
        assert steps["summary"]["output"] == "One big account."
        calls = [c for c in await fake_llm.calls() if customer["name"] in json.dumps(c)]
        assert f"{customer['name']},420000.00" in json.dumps(calls[-1]["messages"])

    async def test_refused_sql_fails_the_step_with_the_reason(
            self, gql, settings, worker, fake_llm) -> None:
        team = await make_team(gql, settings)
        await make_workflow(gql, team.tenant, key="bad-query",
                            config_=_query_config("bad-query"))
        customer = await make_customer(gql, team, days=30)
        await fake_llm.script({"match": f"List {customer['name']}",
                               "text": "SELECT * FROM public.customers"})
        run_id = (await start(gql, team, "bad-query", customer["id"]))["run"]["id"]
        detail = await run_in_status(gql, team, run_id, "failed")
        step = next(s for s in detail["steps"] if s["stepId"] == "big-accounts")
        assert step["status"] == "failed"
        assert "relation public.customers is not allowed" in step["error"]
