"""Query steps: the curated views NL->SQL may read, and the role that reads them; the token
and cost ledger with per-tenant monthly budgets.

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

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from domain.shared.settings import APP_ROLE, OWNER_ROLE, QUERY_ROLE
from migrations import rls
from migrations.rls import CURRENT_TENANT

revision: str = "0008"
down_revision: str | None = "0007"
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


NOW = sa.text("now()")


def _ledger() -> None:
    # One row per LLM call: a reservation (worst case) first, reconciled to what the call
    # used. Costs are integer micro-USD from a versioned price table (domain/usage/prices.py).
    op.create_table(
        "llm_usage",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("status", sa.Text, nullable=False, server_default="reserved"),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("price_version", sa.Text, nullable=False),
        sa.Column("run_id", pg.UUID, nullable=True),
        sa.Column("step_id", sa.Text, nullable=True),
        sa.Column("workflow_key", sa.Text, nullable=True),
        sa.Column("customer_id", pg.UUID, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cache_creation_input_tokens", sa.BigInteger, nullable=False,
                  server_default="0"),
        sa.Column("cache_read_input_tokens", sa.BigInteger, nullable=False,
                  server_default="0"),
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_micros", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_llm_usage"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_llm_usage_tenant"),
        sa.ForeignKeyConstraint(["tenant_id", "run_id"], ["runs.tenant_id", "runs.id"],
                                ondelete="SET NULL (run_id)", name="fk_llm_usage_run"),
        sa.CheckConstraint("status IN ('reserved', 'settled', 'released')",
                           name="status_known"),
        sa.CheckConstraint("tokens >= 0 AND cost_micros >= 0", name="amounts_positive"),
    )
    op.create_index("ix_llm_usage_month", "llm_usage", ["tenant_id", "created_at"])
    op.create_index("ix_llm_usage_run", "llm_usage", ["tenant_id", "run_id"])
    rls.tenant_rls("llm_usage")
    rls.grant_dml("llm_usage", privileges="SELECT, INSERT, UPDATE")
    op.create_table(
        "tenant_budgets",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("monthly_tokens", sa.BigInteger, nullable=True),
        sa.Column("monthly_cost_micros", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_budgets"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_tenant_budgets_tenant"),
        sa.CheckConstraint("monthly_tokens IS NULL OR monthly_tokens >= 0",
                           name="tokens_positive"),
        sa.CheckConstraint("monthly_cost_micros IS NULL OR monthly_cost_micros >= 0",
                           name="cost_positive"),
    )
    rls.tenant_rls("tenant_budgets")
    rls.grant_dml("tenant_budgets", privileges="SELECT, INSERT, UPDATE")


def _chat() -> None:
    # Threads per run and step; messages with a gapless per-thread seq (threads.next_seq,
    # taken under the thread's row lock); every tool call the model makes.
    op.create_table(
        "chat_threads",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("run_id", pg.UUID, nullable=False),
        sa.Column("step_id", sa.Text, nullable=False),
        sa.Column("branch_id", sa.Text, nullable=True),
        sa.Column("thread_type", sa.Text, nullable=False, server_default="llm"),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("return_to_step", sa.Text, nullable=True),
        sa.Column("system_prompt", sa.Text, nullable=False, server_default=""),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("max_tokens", sa.Integer, nullable=False, server_default="1024"),
        sa.Column("total_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("next_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_chat_threads"),
        sa.ForeignKeyConstraint(["tenant_id", "run_id"], ["runs.tenant_id", "runs.id"],
                                ondelete="CASCADE", name="fk_chat_threads_run"),
        sa.CheckConstraint("thread_type IN ('llm', 'rag', 'analysis', 'custom')",
                           name="type_known"),
        sa.CheckConstraint("status IN ('active', 'completed', 'abandoned')",
                           name="status_known"),
    )
    op.create_index("ix_chat_threads_run", "chat_threads", ["tenant_id", "run_id", "step_id"])
    rls.tenant_rls("chat_threads")
    rls.grant_dml("chat_threads", privileges="SELECT, INSERT, UPDATE")
    op.create_table(
        "chat_messages",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("thread_id", pg.UUID, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("message_type", sa.Text, nullable=False, server_default="text"),
        sa.Column("metadata", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("tokens_used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_chat_messages"),
        sa.UniqueConstraint("tenant_id", "thread_id", "seq", name="uq_chat_messages_seq"),
        sa.ForeignKeyConstraint(["tenant_id", "thread_id"],
                                ["chat_threads.tenant_id", "chat_threads.id"],
                                ondelete="CASCADE", name="fk_chat_messages_thread"),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="role_known"),
        sa.CheckConstraint("message_type IN ('text', 'chart', 'table', 'code')",
                           name="type_known"),
    )
    rls.tenant_rls("chat_messages")
    rls.grant_dml("chat_messages", privileges="SELECT, INSERT")
    op.create_table(
        "chat_tool_calls",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("thread_id", pg.UUID, nullable=False),
        sa.Column("message_id", pg.UUID, nullable=True),
        sa.Column("tool_name", sa.Text, nullable=False),
        sa.Column("input", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("output", pg.JSONB, nullable=True),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_chat_tool_calls"),
        sa.ForeignKeyConstraint(["tenant_id", "thread_id"],
                                ["chat_threads.tenant_id", "chat_threads.id"],
                                ondelete="CASCADE", name="fk_chat_tool_calls_thread"),
        sa.ForeignKeyConstraint(["tenant_id", "message_id"],
                                ["chat_messages.tenant_id", "chat_messages.id"],
                                ondelete="SET NULL (message_id)",
                                name="fk_chat_tool_calls_message"),
    )
    rls.tenant_rls("chat_tool_calls")
    rls.grant_dml("chat_tool_calls", privileges="SELECT, INSERT")


def upgrade() -> None:
    _ledger()
    _chat()
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
    for table in ("chat_tool_calls", "chat_messages", "chat_threads"):
        rls.drop_table(table)
    rls.drop_table("tenant_budgets")
    rls.drop_table("llm_usage")
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
