"""Every query of the knowledge base (driver SQL on the tenant transaction, under RLS)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.db import tx_of

_DOCUMENT = "id, title, source, chunks, characters, created_at"


async def insert_document(session: AsyncSession, tenant_id: UUID, *, title: str,
                          source: str | None, chunks: list[str]) -> dict[str, Any]:
    """The document and its chunks in one round trip each."""
    tx = tx_of(session)
    row = await tx.fetchrow(
        "INSERT INTO knowledge_documents (tenant_id, title, source, chunks, characters) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {_DOCUMENT}", tenant_id, title, source,
        len(chunks), sum(len(c) for c in chunks))
    assert row is not None
    await tx.execute(
        "INSERT INTO knowledge_chunks (tenant_id, document_id, ordinal, content) "
        "SELECT $1, $2, n - 1, c FROM jsonb_array_elements_text($3::jsonb) "
        "WITH ORDINALITY AS e(c, n)", tenant_id, row["id"], json.dumps(chunks))
    return dict(row)


async def documents(session: AsyncSession, *, limit: int) -> list[dict[str, Any]]:
    rows = await tx_of(session).fetch(
        f"SELECT {_DOCUMENT} FROM knowledge_documents ORDER BY created_at DESC, id LIMIT $1",
        limit)
    return [dict(row) for row in rows]


async def search(session: AsyncSession, query: str, *, limit: int) -> list[dict[str, Any]]:
    """Chunks matching `query` (web-search syntax), best ranked first, with a snippet.

    The GIN index on the stored tsvector finds the candidates; ts_rank_cd (cover density,
    normalised by length) orders them; ts_headline runs on the few returned only.
    """
    rows = await tx_of(session).fetch(
        "WITH q AS (SELECT websearch_to_tsquery('english', $1) AS q), "
        "hits AS (SELECT c.id, c.document_id, c.ordinal, c.content, "
        "  ts_rank_cd(c.search, q.q, 1) AS rank FROM knowledge_chunks c, q "
        "  WHERE c.search @@ q.q ORDER BY rank DESC, c.id LIMIT $2) "
        "SELECT h.id AS chunk_id, h.document_id, d.title, h.ordinal, h.rank, "
        "  ts_headline('english', h.content, q.q, 'MaxFragments=2, MaxWords=30, MinWords=10')"
        "  AS snippet FROM hits h JOIN knowledge_documents d ON d.id = h.document_id, q "
        "ORDER BY h.rank DESC, h.id", query, limit)
    return [dict(row) for row in rows]
