"""Chat streams, the LLM context per thread, one reply per user message, the knowledge base.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

`chat_deltas` carries a reply as it is written. The worker coalesces the SDK's text deltas
(the first at once, then whatever arrived in the last ~40 ms) into one row per flush, in a
short transaction of its own; a statement trigger NOTIFYs `chat:<tenant>:<thread> <seq>` on
channel `stepwise_live` (ids only, like run events: LISTEN ignores RLS), and subscribers
re-read the rows under their tenant's RLS. So the text never travels in a NOTIFY payload
(every process of every tenant would see it, and payloads are capped at 8 kB), a subscriber
can resume from a seq, and a token costs neither a transaction nor a row of its own. The
rows of a reply are deleted when the thread's next reply starts: the stored message is the
record, the deltas only its transport.

`chat_messages.reply_to` names the user message an assistant message answers; a unique index
makes a retried or doubly-run `chat_reply` job unable to store a second answer.

`knowledge_documents` / `knowledge_chunks`: a tenant's knowledge base, chunked, with a
stored tsvector under a GIN index for ranked full-text search (`rag_search`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from domain.shared.settings import JOBS_ROLE
from migrations import rls

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _threads() -> None:
    op.add_column("chat_threads", sa.Column("stream_seq", sa.Integer, nullable=False,
                                            server_default="0"))
    op.add_column("chat_threads", sa.Column("tools", pg.JSONB, nullable=False,
                                            server_default=sa.text("'[]'::jsonb")))
    op.add_column("chat_threads", sa.Column("context_data", pg.JSONB, nullable=False,
                                            server_default=sa.text("'{}'::jsonb")))
    op.add_column("chat_threads", sa.Column("temperature", sa.Float, nullable=True))
    op.add_column("chat_threads", sa.Column("last_activity_at", sa.DateTime(timezone=True),
                                            nullable=False, server_default=NOW))
    op.add_column("chat_threads", sa.Column("ended_at", sa.DateTime(timezone=True),
                                            nullable=True))
    op.add_column("chat_threads", sa.Column("end_reason", sa.Text, nullable=True))
    op.create_index("ix_chat_threads_active", "chat_threads", ["last_activity_at"],
                    postgresql_where=sa.text("status = 'active'"))
    op.add_column("chat_messages", sa.Column("reply_to", pg.UUID, nullable=True))
    op.create_index("uq_chat_messages_reply", "chat_messages", ["tenant_id", "reply_to"],
                    unique=True,
                    postgresql_where=sa.text("role = 'assistant' AND message_type = 'text'"))


def _deltas() -> None:
    op.create_table(
        "chat_deltas",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("thread_id", pg.UUID, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("message_id", pg.UUID, nullable=False),  # the assistant message to be
        sa.Column("reply_to", pg.UUID, nullable=False),
        sa.Column("delta", sa.Text, nullable=False, server_default=""),
        sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error_code", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "thread_id", "seq", name="pk_chat_deltas"),
        sa.ForeignKeyConstraint(["tenant_id", "thread_id"],
                                ["chat_threads.tenant_id", "chat_threads.id"],
                                ondelete="CASCADE", name="fk_chat_deltas_thread"),
    )
    rls.tenant_rls("chat_deltas")
    rls.grant_dml("chat_deltas", privileges="SELECT, INSERT, DELETE")
    op.execute("""
        CREATE FUNCTION stepwise_notify_chat_deltas() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('stepwise_live',
                              'chat:' || d.tenant_id || ':' || d.thread_id || ' ' || d.last_seq)
            FROM (SELECT tenant_id, thread_id, max(seq) AS last_seq FROM new_deltas
                  GROUP BY tenant_id, thread_id) AS d;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER chat_deltas_notify AFTER INSERT ON chat_deltas
        REFERENCING NEW TABLE AS new_deltas
        FOR EACH STATEMENT EXECUTE FUNCTION stepwise_notify_chat_deltas()
    """)


def _knowledge() -> None:
    op.create_table(
        "knowledge_documents",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("characters", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_knowledge_documents"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_knowledge_documents_tenant"),
    )
    rls.tenant_rls("knowledge_documents")
    rls.grant_dml("knowledge_documents", privileges="SELECT, INSERT, DELETE")
    op.create_table(
        "knowledge_chunks",
        sa.Column("tenant_id", pg.UUID, nullable=False),
        sa.Column("id", pg.UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("document_id", pg.UUID, nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("search", pg.TSVECTOR, sa.Computed(
            "to_tsvector('english', content)", persisted=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_knowledge_chunks"),
        sa.UniqueConstraint("tenant_id", "document_id", "ordinal",
                            name="uq_knowledge_chunks_ordinal"),
        sa.ForeignKeyConstraint(["tenant_id", "document_id"],
                                ["knowledge_documents.tenant_id", "knowledge_documents.id"],
                                ondelete="CASCADE", name="fk_knowledge_chunks_document"),
    )
    op.create_index("ix_knowledge_chunks_search", "knowledge_chunks", ["search"],
                    postgresql_using="gin")
    rls.tenant_rls("knowledge_chunks")
    rls.grant_dml("knowledge_chunks", privileges="SELECT, INSERT, DELETE")


# The worker's tick finds threads idle since before a moment (ids only, like due timers);
# ending them happens in tenant transactions as the app role.
IDLE = "stepwise_idle_chat_threads(timestamptz, integer)"


def upgrade() -> None:
    _threads()
    _deltas()
    _knowledge()
    op.execute("""
        CREATE FUNCTION stepwise_idle_chat_threads(p_before timestamptz, p_limit integer)
        RETURNS TABLE (tenant_id uuid, id uuid) LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp AS $$
          SELECT t.tenant_id, t.id FROM chat_threads t
          WHERE t.status = 'active' AND t.last_activity_at <= p_before
          ORDER BY t.last_activity_at LIMIT p_limit
        $$
    """)
    op.execute(f"REVOKE ALL ON FUNCTION {IDLE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {IDLE} TO {JOBS_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {IDLE}")
    rls.drop_table("knowledge_chunks")
    rls.drop_table("knowledge_documents")
    op.execute("DROP TRIGGER IF EXISTS chat_deltas_notify ON chat_deltas")
    rls.drop_table("chat_deltas")
    op.execute("DROP FUNCTION IF EXISTS stepwise_notify_chat_deltas()")
    op.drop_index("uq_chat_messages_reply", table_name="chat_messages")
    op.drop_column("chat_messages", "reply_to")
    op.drop_index("ix_chat_threads_active", table_name="chat_threads")
    for column in ("end_reason", "ended_at", "last_activity_at", "temperature",
                   "context_data", "tools", "stream_seq"):
        op.drop_column("chat_threads", column)
