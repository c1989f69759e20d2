"""Workflows (JSONB config, core rows with tenant_id NULL), versions by trigger, saved actions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from domain.shared.settings import APP_ROLE
from migrations import rls

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
EMPTY_TAGS = sa.text("'{}'::text[]")
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
KEY = r"^[a-z0-9][a-z0-9_-]{0,63}$"

# BEFORE: the version number moves only when the config really changes (jsonb equality), so
# renames and tag edits make no version and nobody can set the counter by hand.
VERSION_BUMP = """
CREATE FUNCTION workflows_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.latest_version := 1;
    NEW.latest_version_at := clock_timestamp();
    NEW.updated_at := NEW.latest_version_at;
  ELSIF NEW.config IS DISTINCT FROM OLD.config THEN
    NEW.latest_version := OLD.latest_version + 1;
    NEW.latest_version_at := clock_timestamp();
    NEW.updated_at := clock_timestamp();
  ELSE
    NEW.updated_at := clock_timestamp();
    NEW.latest_version := OLD.latest_version;
    NEW.latest_version_at := OLD.latest_version_at;
  END IF;
  RETURN NEW;
END $$;
"""

# AFTER: the version row, in the same transaction as the write, whoever wrote it. Who and why
# come from transaction-local settings the domain sets; a raw UPDATE still gets a version.
VERSION_RECORD = """
CREATE FUNCTION workflows_record_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO workflow_versions
    (workflow_id, tenant_id, number, config, changed_by, changed_at, change_description)
  VALUES (
    NEW.id, NEW.tenant_id, NEW.latest_version, NEW.config,
    CASE WHEN NEW.tenant_id IS NULL THEN NULL
         ELSE NULLIF(current_setting('app.user_id', true), '')::uuid END,
    NEW.latest_version_at,
    NULLIF(current_setting('app.change_description', true), '')
  );
  RETURN NULL;
END $$;
"""

# Versions are history: only the workflows trigger (depth > 1) may insert them.
VERSION_GUARD = """
CREATE FUNCTION workflow_versions_only_by_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_trigger_depth() < 2 THEN
    RAISE EXCEPTION 'workflow versions are written by the workflows trigger only'
      USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", pg.UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("tenant_id", pg.UUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("version", sa.Text, nullable=False, server_default="1.0.0"),
        sa.Column("tags", pg.ARRAY(sa.Text), nullable=False, server_default=EMPTY_TAGS),
        sa.Column("config", pg.JSONB, nullable=False),
        sa.Column("is_core", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_template", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_by", pg.UUID, nullable=True),
        sa.Column("cloned_from", pg.UUID, sa.ForeignKey("workflows.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latest_version_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        # Core rows are exactly the rows without a tenant.
        sa.CheckConstraint("is_core = (tenant_id IS NULL)", name="core_has_no_tenant"),
        sa.CheckConstraint(f"key ~ '{KEY}'", name="key_format"),
        sa.CheckConstraint(f"version ~ '{SEMVER}'", name="version_semver"),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        sa.CheckConstraint("jsonb_typeof(config) = 'object'", name="config_object"),
        # Composite: the author is a user of the same tenant (core rows have no author).
        sa.ForeignKeyConstraint(["tenant_id", "created_by"], ["users.tenant_id", "users.id"],
                                name="fk_workflows_created_by",
                                ondelete="SET NULL (created_by)"),
    )
    # One key per tenant and one per core set (NULLS NOT DISTINCT); a tenant's key may equal a
    # core key (shadowing). Keys are tenant-scoped, so a duplicate reveals nothing across tenants.
    op.execute("ALTER TABLE workflows ADD CONSTRAINT uq_workflows_tenant_key "
               "UNIQUE NULLS NOT DISTINCT (tenant_id, key)")
    op.execute("ALTER TABLE workflows ADD CONSTRAINT uq_workflows_tenant_id UNIQUE (tenant_id, id)")
    op.create_index("ix_workflows_updated", "workflows", ["tenant_id", "updated_at", "id"])
    op.create_index("ix_workflows_name", "workflows", ["tenant_id", "name", "id"])
    op.create_index("ix_workflows_cloned_from", "workflows", ["cloned_from"])
    op.execute("CREATE INDEX ix_workflows_tags ON workflows USING gin (tags)")
    rls.tenant_or_core_rls("workflows")
    rls.grant_dml("workflows")

    op.create_table(
        "workflow_versions",
        sa.Column("id", pg.UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("workflow_id", pg.UUID, sa.ForeignKey("workflows.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("tenant_id", pg.UUID, nullable=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("config", pg.JSONB, nullable=False),
        sa.Column("changed_by", pg.UUID, nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("change_description", sa.Text, nullable=True),
        sa.Column("tags", pg.ARRAY(sa.Text), nullable=False, server_default=EMPTY_TAGS),
        sa.UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_number"),
        # Composite: a tenant's version belongs to a workflow of the same tenant.
        sa.ForeignKeyConstraint(["tenant_id", "workflow_id"],
                                ["workflows.tenant_id", "workflows.id"],
                                name="fk_workflow_versions_tenant_workflow", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id", "changed_by"], ["users.tenant_id", "users.id"],
                                name="fk_workflow_versions_changed_by",
                                ondelete="SET NULL (changed_by)"),
        sa.CheckConstraint("number >= 1", name="number_positive"),
    )
    rls.tenant_or_core_rls("workflow_versions")
    # History is immutable for the app role except its tags.
    rls.grant_dml("workflow_versions", privileges="SELECT, INSERT")
    op.execute(f"GRANT UPDATE (tags) ON workflow_versions TO {APP_ROLE}")

    op.execute(VERSION_BUMP)
    op.execute(VERSION_RECORD)
    op.execute(VERSION_GUARD)
    op.execute("CREATE TRIGGER workflows_bump_version BEFORE INSERT OR UPDATE ON workflows "
               "FOR EACH ROW EXECUTE FUNCTION workflows_bump_version()")
    op.execute("CREATE TRIGGER workflows_record_insert AFTER INSERT ON workflows "
               "FOR EACH ROW EXECUTE FUNCTION workflows_record_version()")
    op.execute("CREATE TRIGGER workflows_record_update AFTER UPDATE ON workflows FOR EACH ROW "
               "WHEN (OLD.latest_version IS DISTINCT FROM NEW.latest_version) "
               "EXECUTE FUNCTION workflows_record_version()")
    op.execute("CREATE TRIGGER workflow_versions_guard BEFORE INSERT ON workflow_versions "
               "FOR EACH ROW EXECUTE FUNCTION workflow_versions_only_by_trigger()")

    op.create_table(
        "saved_actions",
        sa.Column("id", pg.UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("tenant_id", pg.UUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("action_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("handler", sa.Text, nullable=False),
        sa.Column("config", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("available_globally", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("is_core", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_by", pg.UUID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("is_core = (tenant_id IS NULL)", name="core_has_no_tenant"),
        sa.CheckConstraint(f"action_id ~ '{KEY}'", name="action_id_format"),
        sa.CheckConstraint("type IN ('snooze', 'skip', 'escalation', 'script')",
                           name="type_known"),
        # Handlers name registered server-side code only; nothing is ever loaded from a file.
        sa.CheckConstraint("handler ~ '^code:[a-z][a-z_]*$'", name="handler_registered_code"),
        sa.CheckConstraint("jsonb_typeof(config) = 'object'", name="config_object"),
        sa.ForeignKeyConstraint(["tenant_id", "created_by"], ["users.tenant_id", "users.id"],
                                name="fk_saved_actions_created_by",
                                ondelete="SET NULL (created_by)"),
    )
    op.execute("ALTER TABLE saved_actions ADD CONSTRAINT uq_saved_actions_tenant_action "
               "UNIQUE NULLS NOT DISTINCT (tenant_id, action_id)")
    rls.tenant_or_core_rls("saved_actions")
    rls.grant_dml("saved_actions")


def downgrade() -> None:
    rls.drop_table("saved_actions")
    op.execute("DROP TRIGGER IF EXISTS workflow_versions_guard ON workflow_versions")
    rls.drop_table("workflow_versions")
    rls.drop_table("workflows")
    for function in ("workflow_versions_only_by_trigger", "workflows_record_version",
                     "workflows_bump_version"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
