"""Runs: per-step records, the event log, timers, the notification outbox and channels.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Every table is tenant-owned with forced RLS and composite keys (tenant_id, ...), so a
reference to another tenant's row cannot even be expressed. A run pins a workflow version
(FK to workflow_versions) and may run a core workflow (tenant_id NULL): a trigger checks the
workflow is the tenant's own or core, since foreign keys ignore RLS. The event log is
append-only for the app role; its per-run sequence comes from runs.next_seq, incremented
under the run's row lock, so commit order is seq order and a rolled-back step leaves no hole.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
EMPTY = sa.text("'{}'::jsonb")
RUN_STATUSES = "('pending', 'running', 'waiting', 'paused', 'completed', 'failed', 'cancelled')"
ACTIVE = "('pending', 'running', 'waiting', 'paused')"
STEP_STATUSES = "('queued', 'running', 'waiting', 'completed', 'failed', 'skipped', 'cancelled')"
CHANNELS = "('in_app', 'email', 'slack', 'webhook')"

# Foreign keys ignore RLS: without this a tenant could run another tenant's workflow by id.
RUN_WORKFLOW_VISIBLE = """
CREATE FUNCTION runs_workflow_visible() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = NEW.workflow_id
                 AND (w.tenant_id IS NULL OR w.tenant_id = NEW.tenant_id)) THEN
    RAISE EXCEPTION 'no such workflow' USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END $$;
"""


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                   name=f"fk_{table}_tenant")


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id", "run_id"], ["runs.tenant_id", "runs.id"],
                                   ondelete="CASCADE", name=f"fk_{table}_run")


def _times() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    ]


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("workflow_id", pg.UUID, nullable=False),
        sa.Column("workflow_key", sa.Text, nullable=False),
        sa.Column("workflow_version", sa.Integer, nullable=False),
        sa.Column("customer_id", pg.UUID, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("current_step_id", sa.Text, nullable=True),
        sa.Column("variables", pg.JSONB, nullable=False, server_default=EMPTY),
        sa.Column("context", pg.JSONB, nullable=False, server_default=EMPTY),
        sa.Column("trigger", sa.Text, nullable=False, server_default="manual"),
        sa.Column("started_by", pg.UUID, nullable=True),
        sa.Column("parent_run_id", pg.UUID, nullable=True),
        sa.Column("renewal_date", sa.Date, nullable=True),
        sa.Column("paused_status", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("next_seq", sa.Integer, nullable=False, server_default="0"),
        *_times(),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_runs"),
        _tenant_fk("runs"),
        sa.ForeignKeyConstraint(["tenant_id", "customer_id"],
                                ["customers.tenant_id", "customers.id"],
                                ondelete="CASCADE", name="fk_runs_customer"),
        # The pinned version: workflows are soft-deleted, versions never go away under a run.
        sa.ForeignKeyConstraint(["workflow_id", "workflow_version"],
                                ["workflow_versions.workflow_id", "workflow_versions.number"],
                                ondelete="RESTRICT", name="fk_runs_version"),
        sa.ForeignKeyConstraint(["tenant_id", "started_by"], ["users.tenant_id", "users.id"],
                                ondelete="SET NULL (started_by)", name="fk_runs_started_by"),
        sa.ForeignKeyConstraint(["tenant_id", "parent_run_id"], ["runs.tenant_id", "runs.id"],
                                ondelete="SET NULL (parent_run_id)", name="fk_runs_parent"),
        sa.CheckConstraint(f"status IN {RUN_STATUSES}", name="status_known"),
        sa.CheckConstraint("paused_status IS NULL OR paused_status IN "
                           "('pending', 'running', 'waiting')", name="paused_status_known"),
        sa.CheckConstraint("trigger IN ('manual', 'scan', 'escalation')", name="trigger_known"),
        sa.CheckConstraint("jsonb_typeof(variables) = 'object'", name="variables_object"),
        sa.CheckConstraint("jsonb_typeof(context) = 'object'", name="context_object"),
        sa.CheckConstraint("next_seq >= 0", name="next_seq_positive"),
    )
    # At most one active run per customer and workflow key, whoever starts it.
    op.execute(f"CREATE UNIQUE INDEX uq_runs_one_active ON runs "
               f"(tenant_id, customer_id, workflow_key) WHERE status IN {ACTIVE}")
    # The renewal scan starts a workflow once per customer and renewal date.
    op.execute("CREATE UNIQUE INDEX uq_runs_scan_once ON runs "
               "(tenant_id, customer_id, workflow_key, renewal_date) WHERE trigger = 'scan'")
    op.create_index("ix_runs_created", "runs", ["tenant_id", "created_at", "id"])
    op.create_index("ix_runs_status", "runs", ["tenant_id", "status"])
    op.create_index("ix_runs_customer", "runs", ["tenant_id", "customer_id"])
    op.execute(RUN_WORKFLOW_VISIBLE)
    op.execute("CREATE TRIGGER runs_workflow_visible BEFORE INSERT OR UPDATE OF workflow_id "
               "ON runs FOR EACH ROW EXECUTE FUNCTION runs_workflow_visible()")
    rls.tenant_rls("runs")
    rls.grant_dml("runs", privileges="SELECT, INSERT, UPDATE")

    op.create_table(
        "run_steps",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("run_id", pg.UUID, nullable=False),
        sa.Column("step_id", sa.Text, nullable=False),
        sa.Column("step_type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("input", pg.JSONB, nullable=True),
        sa.Column("output", pg.JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_times(),
        sa.PrimaryKeyConstraint("tenant_id", "run_id", "step_id", name="pk_run_steps"),
        _run_fk("run_steps"),
        sa.CheckConstraint(f"status IN {STEP_STATUSES}", name="status_known"),
        sa.CheckConstraint("attempts >= 0", name="attempts_positive"),
    )
    rls.tenant_rls("run_steps")
    rls.grant_dml("run_steps", privileges="SELECT, INSERT, UPDATE")

    op.create_table(
        "run_events",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("run_id", pg.UUID, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("step_id", sa.Text, nullable=True),
        sa.Column("payload", pg.JSONB, nullable=False, server_default=EMPTY),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "run_id", "seq", name="pk_run_events"),
        _run_fk("run_events"),
        sa.CheckConstraint("seq >= 1", name="seq_positive"),
        sa.CheckConstraint("jsonb_typeof(payload) = 'object'", name="payload_object"),
    )
    rls.tenant_rls("run_events")
    # Append-only: the app role may read and add events, never change or remove one.
    rls.grant_dml("run_events", privileges="SELECT, INSERT")

    op.create_table(
        "run_timers",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("run_id", pg.UUID, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False, server_default=EMPTY),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        *_times(),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_run_timers"),
        _run_fk("run_timers"),
        sa.CheckConstraint("kind IN ('resume')", name="kind_known"),
        sa.CheckConstraint("status IN ('pending', 'fired', 'cancelled')", name="status_known"),
    )
    op.execute("CREATE INDEX ix_run_timers_due ON run_timers (fire_at) WHERE status = 'pending'")
    op.create_index("ix_run_timers_run", "run_timers", ["tenant_id", "run_id"])
    rls.tenant_rls("run_timers")
    rls.grant_dml("run_timers", privileges="SELECT, INSERT, UPDATE")

    op.create_table(
        "notification_channels",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("config", pg.JSONB, nullable=False, server_default=EMPTY),
        sa.Column("secret", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        *_times(),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_notification_channels"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_notification_channels_name"),
        _tenant_fk("notification_channels"),
        sa.CheckConstraint(f"type IN {CHANNELS}", name="type_known"),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
        sa.CheckConstraint("jsonb_typeof(config) = 'object'", name="config_object"),
    )
    rls.tenant_rls("notification_channels")
    rls.grant_dml("notification_channels")

    op.create_table(
        "workflow_channels",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("workflow_key", sa.Text, nullable=False),
        sa.Column("channel_id", pg.UUID, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        *_times(),
        sa.PrimaryKeyConstraint("tenant_id", "workflow_key", "channel_id",
                                name="pk_workflow_channels"),
        sa.ForeignKeyConstraint(["tenant_id", "channel_id"],
                                ["notification_channels.tenant_id", "notification_channels.id"],
                                ondelete="CASCADE", name="fk_workflow_channels_channel"),
        sa.CheckConstraint("priority BETWEEN -100 AND 100", name="priority_range"),
    )
    rls.tenant_rls("workflow_channels")
    rls.grant_dml("workflow_channels")

    op.create_table(
        "notifications",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("run_id", pg.UUID, nullable=False),
        sa.Column("step_id", sa.Text, nullable=True),
        sa.Column("notification_id", sa.Text, nullable=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("channel_id", pg.UUID, nullable=True),
        sa.Column("priority", sa.Text, nullable=False, server_default="normal"),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("recipients", pg.ARRAY(sa.Text), nullable=False,
                  server_default=sa.text("'{}'::text[]")),
        sa.Column("reason", sa.Text, nullable=False, server_default="step"),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("deliver_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        *_times(),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_notifications"),
        _run_fk("notifications"),
        sa.ForeignKeyConstraint(["tenant_id", "channel_id"],
                                ["notification_channels.tenant_id", "notification_channels.id"],
                                ondelete="SET NULL (channel_id)", name="fk_notifications_channel"),
        sa.CheckConstraint(f"channel IN {CHANNELS}", name="channel_known"),
        sa.CheckConstraint("status IN ('scheduled', 'pending', 'sending', 'sent', 'failed', "
                           "'dropped')", name="status_known"),
        sa.CheckConstraint("reason IN ('step', 'action', 'schedule')", name="reason_known"),
        sa.CheckConstraint("status <> 'scheduled' OR deliver_at IS NOT NULL",
                           name="scheduled_has_time"),
    )
    op.execute("CREATE INDEX ix_notifications_due ON notifications (deliver_at) "
               "WHERE status = 'scheduled'")
    op.create_index("ix_notifications_run", "notifications", ["tenant_id", "run_id"])
    op.execute("CREATE INDEX ix_notifications_in_app ON notifications USING gin (recipients) "
               "WHERE channel = 'in_app'")
    rls.tenant_rls("notifications")
    rls.grant_dml("notifications", privileges="SELECT, INSERT, UPDATE")

    # Signing secret for the tenant's script webhooks (saved actions of type script).
    op.add_column("tenants", sa.Column("webhook_secret", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("tenants", "webhook_secret")
    for table in ("notifications", "workflow_channels", "notification_channels", "run_timers",
                  "run_events", "run_steps"):
        rls.drop_table(table)
    op.execute("DROP TRIGGER IF EXISTS runs_workflow_visible ON runs")
    rls.drop_table("runs")
    op.execute("DROP FUNCTION IF EXISTS runs_workflow_visible()")
