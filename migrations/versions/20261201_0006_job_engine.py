"""The durable job engine (procrastinate) in its own schema, and the ways into it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

procrastinate's tables live in schema `jobs`, which the app role cannot even see: job
arguments carry tenant and run ids, and no tenant may learn another's. The worker reaches
them as `stepwise_jobs` (LOGIN, no bypass, owns nothing). The app role defers jobs only
through `stepwise_defer_job`, a SECURITY DEFINER function called inside the tenant
transaction that changes the state: the job commits with the change or not at all, so a
crash between commit and defer cannot lose work. Cross-tenant discovery for the worker's
periodic tick (due timers, due scheduled notifications, tenants to scan) returns ids only
and is granted to `stepwise_jobs` alone.
"""

from collections.abc import Sequence
from importlib import resources

from alembic import op

from domain.shared.settings import APP_ROLE, JOBS_ROLE, JOBS_SCHEMA

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _jobs_password() -> str | None:
    import os

    return os.environ.get("STEPWISE_JOBS_PASSWORD") or None


def _run_script(sql: str) -> None:
    """A multi-statement script in one simple-protocol call (prepared statements allow one)."""
    connection = op.get_bind().connection.dbapi_connection
    connection.run_async(lambda driver: driver.execute(sql))  # type: ignore[union-attr]


DEFER = f"""
CREATE FUNCTION stepwise_defer_job(p_task text, p_args jsonb, p_scheduled_at timestamptz,
                                   p_lock text, p_queueing_lock text, p_priority integer,
                                   p_queue text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {JOBS_SCHEMA}, pg_temp AS $$
DECLARE
  ids bigint[];
BEGIN
  -- A queueing lock allows one queued job per key: a second nudge is simply not needed.
  IF p_queueing_lock IS NOT NULL AND EXISTS (
      SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = p_queueing_lock
      AND status = 'todo') THEN
    RETURN NULL;
  END IF;
  ids := procrastinate_defer_jobs_v1(ARRAY[ROW(p_queue, p_task, p_priority, p_lock,
      p_queueing_lock, p_args, p_scheduled_at)::procrastinate_job_to_defer_v1]);
  RETURN ids[1];
END $$;
"""

# Many jobs in one round trip (a scan starts hundreds of runs); same rules as one.
DEFER_MANY = f"""
CREATE FUNCTION stepwise_defer_jobs(p_jobs jsonb)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {JOBS_SCHEMA}, pg_temp AS $$
DECLARE
  ids bigint[];
BEGIN
  ids := procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW(w.queue, w.task, coalesce(w.priority, 0), NULL, w.queueing_lock, w.args,
               w.scheduled_at)::procrastinate_job_to_defer_v1
    FROM (SELECT DISTINCT ON (coalesce(j.queueing_lock, gen_random_uuid()::text)) j.*
          FROM jsonb_to_recordset(p_jobs) AS j(task text, args jsonb,
               scheduled_at timestamptz, queueing_lock text, priority integer, queue text)
          WHERE j.queueing_lock IS NULL OR NOT EXISTS (
            SELECT 1 FROM procrastinate_jobs p
            WHERE p.queueing_lock = j.queueing_lock AND p.status = 'todo')) AS w));
  RETURN coalesce(array_length(ids, 1), 0);
END $$;
"""

DISCOVERY = """
CREATE FUNCTION stepwise_due_timers(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, id uuid) LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
  SELECT t.tenant_id, t.id FROM run_timers t
  WHERE t.status = 'pending' AND t.fire_at <= p_now ORDER BY t.fire_at LIMIT p_limit
$$;

CREATE FUNCTION stepwise_due_notifications(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, id uuid) LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
  SELECT n.tenant_id, n.id FROM notifications n
  WHERE n.status = 'scheduled' AND n.deliver_at <= p_now ORDER BY n.deliver_at LIMIT p_limit
$$;

CREATE FUNCTION stepwise_tenant_ids()
RETURNS SETOF uuid LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
  SELECT id FROM tenants ORDER BY id
$$;
"""
DISCOVERY_FUNCTIONS = ("stepwise_due_timers(timestamptz, integer)",
                       "stepwise_due_notifications(timestamptz, integer)",
                       "stepwise_tenant_ids()")
DEFER_SIGNATURE = "stepwise_defer_job(text, jsonb, timestamptz, text, text, integer, text)"
DEFER_MANY_SIGNATURE = "stepwise_defer_jobs(jsonb)"


def upgrade() -> None:
    op.execute(f"""
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{JOBS_ROLE}') THEN
        BEGIN
          CREATE ROLE {JOBS_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
      END IF;
    END $$;
    """)
    password = _jobs_password()
    if password is not None:
        literal = password.replace("'", "''")
        op.execute(f"ALTER ROLE {JOBS_ROLE} PASSWORD '{literal}'")
    op.execute(f"CREATE SCHEMA {JOBS_SCHEMA}")
    schema_sql = (resources.files("procrastinate") / "sql" / "schema.sql").read_text()
    _run_script(f"SET LOCAL search_path = {JOBS_SCHEMA};\n{schema_sql}\n"
                "SET LOCAL search_path = public;")
    op.execute(f"GRANT USAGE ON SCHEMA {JOBS_SCHEMA} TO {JOBS_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {JOBS_SCHEMA} "
               f"TO {JOBS_ROLE}")
    op.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {JOBS_SCHEMA} "
               f"TO {JOBS_ROLE}")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {JOBS_SCHEMA} TO {JOBS_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {JOBS_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {JOBS_ROLE}")

    op.execute(DEFER)
    op.execute(DEFER_MANY)
    _run_script(DISCOVERY)
    for function in (DEFER_SIGNATURE, DEFER_MANY_SIGNATURE, *DISCOVERY_FUNCTIONS):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    for function in (DEFER_SIGNATURE, DEFER_MANY_SIGNATURE):
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {APP_ROLE}, {JOBS_ROLE}")
    for function in DISCOVERY_FUNCTIONS:
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {JOBS_ROLE}")


def downgrade() -> None:
    for function in (DEFER_SIGNATURE, DEFER_MANY_SIGNATURE, *DISCOVERY_FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.execute(f"DROP SCHEMA IF EXISTS {JOBS_SCHEMA} CASCADE")
    op.execute(f"REVOKE SELECT ON alembic_version FROM {JOBS_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {JOBS_ROLE}")
    op.execute(f"""
    DO $$
    BEGIN
      DROP ROLE IF EXISTS {JOBS_ROLE};
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use THEN
      RAISE NOTICE '{JOBS_ROLE} still used by another database; kept';
    END $$;
    """)
