"""Query steps: the curated views NL->SQL may read, and the role that reads them.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02

`query_api.customers` and `query_api.runs` are the only relations a generated query may
name. They filter on the tenant of the transaction themselves (and are security barriers, so
a function in the caller's WHERE never sees another tenant's row first): they hold even when
the view owner is a superuser that RLS does not bind. The role `stepwise_query` (NOLOGIN) may
only USE the schema and SELECT those views; the app role is a member, and a query step runs
under `SET LOCAL ROLE stepwise_query` inside a READ ONLY transaction.
"""

from collections.abc import Sequence

from alembic import op

from domain.shared.settings import APP_ROLE, OWNER_ROLE, QUERY_ROLE
from migrations.rls import CURRENT_TENANT

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    "customers": f"""
        SELECT c.id, c.external_id, c.name, c.arr, c.renewal_date,
               (c.renewal_date - current_date) AS days_until_renewal,
               c.has_account_plan, c.health_score, c.csm_id, c.created_at, c.updated_at
        FROM public.customers c
        WHERE c.tenant_id = {CURRENT_TENANT}""",
    "runs": f"""
        SELECT r.id, r.customer_id, r.workflow_key, r.workflow_version, r.status,
               r.current_step_id, r.trigger, r.renewal_date, r.error, r.created_at,
               r.started_at, r.finished_at
        FROM public.runs r
        WHERE r.tenant_id = {CURRENT_TENANT}""",
}


def upgrade() -> None:
    op.execute(f"""
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{QUERY_ROLE}') THEN
        BEGIN
          CREATE ROLE {QUERY_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
            NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
      END IF;
    END $$;
    """)
    op.execute(f"GRANT {QUERY_ROLE} TO {APP_ROLE}")
    op.execute("CREATE SCHEMA query_api")
    op.execute("REVOKE ALL ON SCHEMA query_api FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA query_api TO {QUERY_ROLE}")
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW query_api.{name} WITH (security_barrier = true) AS {body}")
        op.execute(f"REVOKE ALL ON query_api.{name} FROM PUBLIC")
        op.execute(f"GRANT SELECT ON query_api.{name} TO {QUERY_ROLE}")
        # The owner role reads the tables (it owns them); the views keep their own filter.
        op.execute(f"""
        DO $$
        BEGIN
          ALTER VIEW query_api.{name} OWNER TO {OWNER_ROLE};
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END $$;
        """)
    op.execute(f"""
    DO $$
    BEGIN
      ALTER SCHEMA query_api OWNER TO {OWNER_ROLE};
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END $$;
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS query_api CASCADE")
    op.execute(f"""
    DO $$
    BEGIN
      REVOKE {QUERY_ROLE} FROM {APP_ROLE};
      DROP ROLE IF EXISTS {QUERY_ROLE};
    EXCEPTION WHEN dependent_objects_still_exist OR object_in_use OR undefined_object THEN
      RAISE NOTICE '{QUERY_ROLE} still used by another database; kept';
    END $$;
    """)
