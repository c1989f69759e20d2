"""stepwise_enter(tenant, user): set the tenant and read the caller in one round trip.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Every operation begins by setting `app.tenant_id` and re-reading the calling user (their
current role, or nothing if deleted). As two statements that is two round trips on the hot
path; this function does both, in order, as the invoker, so the read is bound by RLS with
the tenant just set.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
    CREATE FUNCTION stepwise_enter(p_tenant uuid, p_user uuid) RETURNS SETOF users
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = public AS $$
    BEGIN
      PERFORM set_config('app.tenant_id', p_tenant::text, true);
      RETURN QUERY SELECT * FROM users WHERE id = p_user;
    END
    $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS stepwise_enter(uuid, uuid)")
