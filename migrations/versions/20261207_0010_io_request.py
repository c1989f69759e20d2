"""stepwise_io_request(tenant, run, step): the worker's read before an I/O step, in one round trip.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Before it calls the model for a started step, the worker reads the step's request and checks
that the run still wants it (status, current step, attempt). As a transaction that was three
round trips (BEGIN with the tenant, the read, COMMIT) on every llm step's path. This function
sets the tenant locally and then reads, in that order, as the invoker, so RLS binds the read
with the tenant just set; called alone, it is its own implicit transaction, so the setting
ends with it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
    CREATE FUNCTION stepwise_io_request(p_tenant uuid, p_run uuid, p_step text)
    RETURNS TABLE (run_status text, current_step_id text, step_type text, status text,
                   attempts integer, input jsonb)
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
    BEGIN
      PERFORM set_config('app.tenant_id', p_tenant::text, true);
      RETURN QUERY SELECT r.status, r.current_step_id, s.step_type, s.status, s.attempts,
                          s.input
        FROM runs r JOIN run_steps s ON s.tenant_id = r.tenant_id AND s.run_id = r.id
                                     AND s.step_id = p_step
        WHERE r.tenant_id = p_tenant AND r.id = p_run;
    END
    $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS stepwise_io_request(uuid, uuid, text)")
