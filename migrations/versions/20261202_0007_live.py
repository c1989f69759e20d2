"""Live runs: every insert into run_events notifies the per-process listeners, ids only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A statement-level trigger sends one NOTIFY on channel `stepwise_live` per run touched by
the statement, in the inserting transaction (so it is delivered at commit, never for a
rolled-back event). The payload is `run:<tenant_id>:<run_id> <max seq>`: ids only, because
LISTEN ignores RLS and every listener sees every tenant's notifications. Subscribers re-read
the events themselves, in their own tenant transaction.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION stepwise_notify_run_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('stepwise_live',
                              'run:' || e.tenant_id || ':' || e.run_id || ' ' || e.last_seq)
            FROM (SELECT tenant_id, run_id, max(seq) AS last_seq FROM new_events
                  GROUP BY tenant_id, run_id) AS e;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
        REFERENCING NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION stepwise_notify_run_events()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER run_events_notify ON run_events")
    op.execute("DROP FUNCTION stepwise_notify_run_events()")
