"""Loading a run for work reads its steps in the statement that locks it: a load that waited
for the lock still sees what the lock holder committed (domain/runs/repository.lock_with_steps);
and an llm step's two transactions stay a handful of statements."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import pytest_asyncio

from domain.runs import engine, repository, work
from domain.runs.models import StepStatus
from domain.shared.db import Database
from domain.shared.settings import Settings
from tests.factories import GraphQLClient
from tests.factories_runs import act, make_customer, make_team, start
from tests.factories_workflows import seed_core

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


class TestLockWithSteps:
    async def test_a_load_that_waited_for_the_lock_sees_the_holders_commit(
            self, gql: GraphQLClient, settings: Settings, app_db: Database) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        run_id = uuid.UUID((await start(gql, team, "critical", customer["id"]))["run"]["id"])
        holder = await app_db.begin(team.tenant.id)
        waiter = await app_db.begin(team.tenant.id)
        try:
            work = await engine.load(holder.session, holder.acting, run_id)
            current = work.run.current_step_id
            assert current is not None
            assert current in work.steps
            work.steps[current].status = StepStatus.SKIPPED.value
            work.dirty.add(current)
            await work.record("added-meanwhile", "task")
            work.emit("step_started", "added-meanwhile")
            await engine.save(work)
            waiting = asyncio.create_task(repository.lock_with_steps(waiter.session, run_id))
            await asyncio.sleep(0.3)  # its statement has its snapshot and waits for the lock
            assert not waiting.done()
            await holder.commit()
            locked = await asyncio.wait_for(waiting, 10)
            assert locked is not None
            assert locked.run.next_seq == work.run.next_seq
            assert "added-meanwhile" in locked.known
            assert locked.steps[current].status == StepStatus.SKIPPED
        finally:
            await holder.rollback()
            await waiter.rollback()

    async def test_a_load_reads_only_the_records_it_works_on(
            self, gql: GraphQLClient, settings: Settings, app_db: Database) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=300000)
        run_id = uuid.UUID((await start(gql, team, "critical", customer["id"]))["run"]["id"])
        async with app_db.transaction(team.tenant.id) as tx:
            work = await engine.load(tx.session, tx.acting, run_id)
            assert set(work.steps) == {work.run.current_step_id}
            assert len(work.known) > 1  # the routing step before it has a record too
            earlier = next(s for s in work.known if s != work.run.current_step_id)
            again = await work.record(earlier, "conditional_routing")
            assert again.attempts == 1  # read from the database, not made anew


class TestRoundTrips:
    async def test_an_llm_step_takes_two_transactions_of_few_statements(
            self, gql: GraphQLClient, settings: Settings, app_db: Database,
            fake_llm: Any) -> None:
        team = await make_team(gql, settings)
        customer = await make_customer(gql, team, days=10, arr=90000)
        run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
        await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                  branchId="needs-alternatives")
        statements: list[str] = []
        app_db.listeners.append(statements.append)
        try:
            outcome = await work.execute_step(app_db, team.tenant.id, uuid.UUID(run_id),
                                              "alternative-options", 1)
        finally:
            app_db.listeners.remove(statements.append)
        assert outcome == "done"
        # prepare: enter the tenant, lock the run with its step, the customer's context,
        # the reservation, one save, commit; finish: enter, lock, save (settling the call),
        # commit
        kinds = [" ".join(s.split()[:2]) for s in statements]
        assert kinds == ["BEGIN; SELECT", "SELECT r.tenant_id,", "SELECT c.tenant_id",
                         "WITH budget", "WITH run", "COMMIT",
                         "BEGIN; SELECT", "SELECT r.tenant_id,", "WITH run", "COMMIT"]
        assert "UPDATE llm_usage" in statements[-2]

    async def test_a_choice_into_an_llm_step_and_its_job_take_few_round_trips(
            self, gql: GraphQLClient, settings: Settings, app: Any, app_db: Database,
            database_url: str, fake_llm: Any) -> None:
        import json

        from tests.test_runs_engine import _as_owner, _execute, _ledger

        team = await make_team(gql, settings)
        for _ in range(2):  # the first choice reads the pinned version (cached after it)
            customer = await make_customer(gql, team, days=10, arr=90000)
            run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
            if _ == 0:
                await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                          branchId="needs-alternatives")
        server: list[str] = []
        app.state.db.listeners.append(server.append)
        try:
            moved = await act(gql, team, "ChooseBranch", "chooseBranch", runId=run_id,
                              branchId="needs-alternatives")
        finally:
            app.state.db.listeners.remove(server.append)
        assert moved["run"]["currentStepId"] == "alternative-options"
        # enter as the caller; lock the run with its step and its customer's context; reserve
        # the model call; save the run with its job; commit
        assert [" ".join(s.split()[:2]) for s in server] == [
            "BEGIN", "SELECT e.tenant_id,", "SELECT r.tenant_id,", "WITH budget", "WITH run",
            "COMMIT"]
        assert "LEFT JOIN LATERAL" in server[2]
        rows = await _as_owner(database_url, "SELECT args FROM jobs.procrastinate_jobs "
                               "WHERE task_name = 'execute_step' AND args->>'run_id' = $1",
                               run_id)
        args = json.loads(rows[0]["args"])
        worker: list[str] = []
        app_db.listeners.append(worker.append)
        try:
            assert await _execute(app_db, team, args) == "done"
        finally:
            app_db.listeners.remove(worker.append)
        # read the request (one statement, no transaction block); then enter, lock, save
        # (settling the call in the ledger), commit
        assert [" ".join(s.split()[:2]) for s in worker] == [
            "SELECT *", "BEGIN; SELECT", "SELECT r.tenant_id,", "WITH run", "COMMIT"]
        assert "stepwise_io_request" in worker[0]
        assert "UPDATE llm_usage" in worker[3]
        assert await _ledger(database_url, run_id) == ["settled"]
        assert len(await fake_llm.calls()) == 1
