"""Customers of a tenant (external id, ARR, renewal, health, CSM, account team).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("tenant_id", pg.UUID, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("arr", sa.Numeric(14, 2), nullable=True),
        sa.Column("renewal_date", sa.Date, nullable=True),
        sa.Column("has_account_plan", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("health_score", sa.Integer, nullable=True),
        sa.Column("csm_id", pg.UUID, nullable=True),
        sa.Column("account_team", pg.JSONB, nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_customers"),
        # Composite unique: a duplicate external id can only collide inside the same tenant.
        sa.UniqueConstraint("tenant_id", "external_id", name="uq_customers_external_id"),
        # Composite FK: the CSM must be a user of the same tenant; deleting the user keeps the
        # customer and clears only csm_id (not tenant_id).
        sa.ForeignKeyConstraint(["tenant_id", "csm_id"], ["users.tenant_id", "users.id"],
                                name="fk_customers_csm", ondelete="SET NULL (csm_id)"),
        sa.CheckConstraint("health_score IS NULL OR health_score BETWEEN 0 AND 100",
                           name="health_score_range"),
        sa.CheckConstraint("arr IS NULL OR arr >= 0", name="arr_non_negative"),
        sa.CheckConstraint("length(external_id) BETWEEN 1 AND 200", name="external_id_length"),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 300", name="name_length"),
        sa.CheckConstraint("jsonb_typeof(account_team) = 'object'", name="account_team_object"),
    )
    op.create_index("ix_customers_csm", "customers", ["tenant_id", "csm_id"])
    # Keyset pagination by (name, id) and search by name.
    op.create_index("ix_customers_name", "customers", ["tenant_id", "name", "id"])
    rls.tenant_rls("customers")
    rls.grant_dml("customers")


def downgrade() -> None:
    op.drop_index("ix_customers_name", table_name="customers")
    op.drop_index("ix_customers_csm", table_name="customers")
    rls.drop_table("customers")
