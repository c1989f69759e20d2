"""Foundation: roles, tenants, users, company contacts, the RLS pattern.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from domain.shared.settings import APP_ROLE
from migrations import rls

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    rls.create_roles()
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")

    op.create_table(
        "tenants",
        sa.Column("id", pg.UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("time_zone", sa.Text, nullable=False, server_default="UTC"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
    )
    # A tenant sees its own row only; tenants are created on the owner path (CLI).
    rls.tenant_rls("tenants", column="id")
    rls.grant_dml("tenants", privileges="SELECT, UPDATE")

    op.create_table(
        "users",
        sa.Column("tenant_id", pg.UUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False, server_default="viewer"),
        sa.Column("manager_id", pg.UUID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_users"),
        # Composite: a manager can only be a user of the same tenant.
        sa.ForeignKeyConstraint(["tenant_id", "manager_id"], ["users.tenant_id", "users.id"],
                                name="fk_users_manager", ondelete="SET NULL (manager_id)"),
        sa.CheckConstraint("role IN ('admin', 'editor', 'viewer')", name="role_known"),
        sa.CheckConstraint("manager_id IS NULL OR manager_id <> id", name="not_own_manager"),
    )
    op.execute("CREATE UNIQUE INDEX uq_users_tenant_email ON users (tenant_id, lower(email))")
    op.create_index("ix_users_id", "users", ["id"])
    rls.tenant_rls("users")
    rls.grant_dml("users")

    op.create_table(
        "company_contacts",
        sa.Column("tenant_id", pg.UUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("vp_customer_success", sa.Text),
        sa.Column("ceo", sa.Text),
        sa.Column("other", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    rls.tenant_rls("company_contacts")
    rls.grant_dml("company_contacts")


def downgrade() -> None:
    for table in ("company_contacts", "users", "tenants"):
        rls.drop_table(table)
    op.execute(f"REVOKE SELECT ON alembic_version FROM {APP_ROLE}")
    rls.drop_roles()
