"""The tenant's knowledge base (M7 `rag` branches, the `rag_search` tool): documents cut
into overlapping chunks, searched with PostgreSQL full-text search and ranked."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.knowledge import repository
from domain.shared.actor import Actor, Role
from domain.shared.errors import DomainError

CHUNK_CHARS = 1200  # about 300 tokens: a few paragraphs, enough context for a citation
OVERLAP_CHARS = 150  # a sentence cut by a boundary is still found whole in one chunk
MAX_TITLE = 200
MAX_CONTENT = 2_000_000
MAX_QUERY = 500
MAX_RESULTS = 10


def chunk(text: str, *, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Consecutive pieces of at most ~`size` characters, cut at paragraph, then sentence,
    then word boundaries, each starting with the last `overlap` characters of the one before."""
    clean = re.sub(r"[ \t]+", " ", text.replace("\r\n", "\n")).strip()
    if not clean:
        return []
    pieces: list[str] = []
    start = 0
    while start < len(clean):
        end = min(len(clean), start + size)
        if end < len(clean):
            window = clean[start:end]
            for mark in ("\n\n", ". ", "\n", " "):
                cut = window.rfind(mark)
                if cut > size // 2:
                    end = start + cut + len(mark)
                    break
        pieces.append(clean[start:end].strip())
        if end >= len(clean):
            break
        back = clean.rfind(" ", start, max(start + 1, end - overlap))
        start = back + 1 if back > start else end
    return [p for p in pieces if p]


async def add_document(session: AsyncSession, actor: Actor, *, title: str, content: str,
                       source: str | None = None) -> dict[str, Any]:
    """Store a document of the tenant, chunked and indexed for search."""
    actor.require(Role.EDITOR)
    name = title.strip()
    if not name:
        raise DomainError("a document needs a title", path="title")
    if len(name) > MAX_TITLE:
        raise DomainError(f"at most {MAX_TITLE} characters", path="title")
    if len(content) > MAX_CONTENT:
        raise DomainError(f"at most {MAX_CONTENT} characters", path="content")
    pieces = chunk(content)
    if not pieces:
        raise DomainError("a document needs some text", path="content")
    return await repository.insert_document(session, actor.tenant_id, title=name,
                                            source=(source or None), chunks=pieces)


async def documents(session: AsyncSession, actor: Actor, *, first: int = 50
                    ) -> list[dict[str, Any]]:
    return await repository.documents(session, limit=max(1, min(first, 200)))


async def search(session: AsyncSession, query: str, *, limit: int = 5) -> list[dict[str, Any]]:
    """Ranked chunks of the transaction's tenant matching `query` (RLS keeps it to them)."""
    text = query.strip()[:MAX_QUERY]
    if not text:
        return []
    found = await repository.search(session, text, limit=max(1, min(limit, MAX_RESULTS)))
    return [{"documentId": str(r["document_id"]), "chunkId": str(r["chunk_id"]),
             "title": r["title"], "ordinal": r["ordinal"], "rank": round(float(r["rank"]), 4),
             "snippet": r["snippet"]} for r in found]
