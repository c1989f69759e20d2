"""procrastinate's job-status event log off: two row inserts per job that nothing reads.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

procrastinate's schema (3.10) writes a `procrastinate_events` row when a job is deferred and
again on every status change, by trigger. Only its admin shell's job listing and the
`started_at`-based stall query read them; Stepwise reads neither: stalled jobs are found by
worker heartbeat (worker/ticker.py), and finished jobs are deleted. Measured with
pg_stat_statements under bench_runs, the rows cost each llm step about 0.25 ms of database
time (two inserts with their foreign-key checks, and the cascade that deletes them with the
job), about 5% of what the database spends per ChooseBranch commit.

The triggers for scheduled jobs and abort requests (rare) stay, as does every other part of
procrastinate's schema. An upgrade of procrastinate (pinned below 3.11) re-checks this.
"""

from collections.abc import Sequence

from alembic import op

from domain.shared.settings import JOBS_SCHEMA

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOBS = f"{JOBS_SCHEMA}.procrastinate_jobs"


def upgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS procrastinate_trigger_status_events_insert_v1 ON {JOBS}")
    op.execute(f"DROP TRIGGER IF EXISTS procrastinate_trigger_status_events_update_v1 ON {JOBS}")


def downgrade() -> None:  # procrastinate's own definitions (schema.sql, 3.10)
    op.execute(f"""
    CREATE TRIGGER procrastinate_trigger_status_events_update_v1
        AFTER UPDATE OF status ON {JOBS}
        FOR EACH ROW
        EXECUTE PROCEDURE {JOBS_SCHEMA}.procrastinate_trigger_function_status_events_update_v1()
    """)
    op.execute(f"""
    CREATE TRIGGER procrastinate_trigger_status_events_insert_v1
        AFTER INSERT ON {JOBS}
        FOR EACH ROW WHEN ((new.status = 'todo'::{JOBS_SCHEMA}.procrastinate_job_status))
        EXECUTE PROCEDURE {JOBS_SCHEMA}.procrastinate_trigger_function_status_events_insert_v1()
    """)
