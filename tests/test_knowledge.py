"""The knowledge base: documents added through GraphQL and `stepwise kb add`, chunked,
searched with ranked PostgreSQL full-text search, and the tenant's only (forced RLS)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from domain.knowledge.service import CHUNK_CHARS, chunk
from domain.shared.actor import Role
from domain.shared.settings import PROJECT_ROOT
from tests.factories import make_tenant
from tests.test_isolation import as_tenant

ADD = ("mutation($input: AddKnowledgeDocumentInput!) { addKnowledgeDocument(input: $input) "
       "{ document { id title source chunks characters } errors { code message path } } }")
SEARCH = ("query($q: String!, $n: Int) { knowledgeSearch(query: $q, first: $n) "
          "{ documentId chunkId title ordinal rank snippet } }")
DOCUMENTS = "{ knowledgeDocuments { id title source chunks } }"


async def _add(gql: Any, token: str, **input_: Any) -> dict[str, Any]:
    data = await gql(ADD, {"input": input_}, token=token)
    payload: dict[str, Any] = data["addKnowledgeDocument"]
    return payload


def _cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "STEPWISE_JWT_SECRET": settings.jwt_secret}
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


class TestChunking:
    def test_long_text_is_cut_at_boundaries_with_overlap_and_nothing_lost(self) -> None:
        paragraphs = [f"Paragraph {n} says renewal playbook item {n} in detail. " * 6
                      for n in range(40)]
        text = "\n\n".join(paragraphs)
        pieces = chunk(text)
        assert len(pieces) > 5
        assert all(len(p) <= CHUNK_CHARS for p in pieces)
        words = set(text.split())
        assert set().union(*(set(p.split()) for p in pieces)) == words
        # each piece starts with words the previous one ended with
        assert all(p.split()[0] in q.split()[-40:] for q, p in itertools.pairwise(pieces))
        assert chunk("   \n\n ") == []


@pytest.mark.asyncio
class TestKnowledgeBase:
    async def test_documents_are_searchable_ranked_and_the_tenants_only(
            self, gql, settings, app_connection_factory) -> None:
        mine, theirs = await make_tenant(settings), await make_tenant(settings)
        long_text = ("Discounts above fifteen percent need the VP's approval. " * 3 + "\n\n"
                     + "Unrelated notes about onboarding checklists. " * 60)
        added = await _add(gql, mine.token, title="Discount policy", content=long_text,
                           source="policy.md")
        assert added["errors"] == []
        assert added["document"]["chunks"] >= 2
        await _add(gql, mine.token, title="Pricing FAQ",
                   content="A discount is possible once per term. Renewals follow pricing.")
        other = await _add(gql, theirs.token, title="Their discount secrets",
                           content="Discount discount discount: ninety percent for friends.")
        assert other["errors"] == []
        hits = (await gql(SEARCH, {"q": "discount approval", "n": 5},
                          token=mine.token))["knowledgeSearch"]
        assert hits[0]["title"] == "Discount policy"
        assert "Their discount secrets" not in {h["title"] for h in hits}
        assert hits[0]["rank"] > 0
        assert "<b>" in hits[0]["snippet"]  # ts_headline marks the words found
        broad = (await gql(SEARCH, {"q": "discount"}, token=mine.token))["knowledgeSearch"]
        assert {h["title"] for h in broad} == {"Discount policy", "Pricing FAQ"}
        assert [h["rank"] for h in broad] == sorted((h["rank"] for h in broad), reverse=True)
        assert (await gql(SEARCH, {"q": "   "}, token=mine.token))["knowledgeSearch"] == []
        theirs_hits = (await gql(SEARCH, {"q": "discount"},
                                 token=theirs.token))["knowledgeSearch"]
        assert [h["title"] for h in theirs_hits] == ["Their discount secrets"]
        listed = (await gql(DOCUMENTS, token=mine.token))["knowledgeDocuments"]
        assert {d["title"] for d in listed} == {"Discount policy", "Pricing FAQ"}
        # as the app role under another tenant: nothing visible, nothing plantable
        conn = await app_connection_factory()
        await as_tenant(conn, theirs.id)
        assert await conn.fetchval("SELECT count(*) FROM knowledge_chunks WHERE "
                                   "content ILIKE '%VP''s approval%'") == 0
        assert await conn.execute("DELETE FROM knowledge_documents WHERE title = "
                                  "'Discount policy'") == "DELETE 0"
        await conn.execute("ROLLBACK")
        await as_tenant(conn, theirs.id)
        with pytest.raises(Exception, match="row-level security"):
            await conn.execute("INSERT INTO knowledge_documents (tenant_id, title) "
                               "VALUES ($1, 'planted')", mine.id)
        await conn.execute("ROLLBACK")

    async def test_bad_documents_are_refused_with_a_path_and_viewers_cannot_add(
            self, gql, settings) -> None:
        tenant = await make_tenant(settings)
        for input_, path in (({"title": " ", "content": "text"}, "title"),
                             ({"title": "x" * 201, "content": "text"}, "title"),
                             ({"title": "Empty", "content": " \n "}, "content")):
            payload = await _add(gql, tenant.token, **input_)
            assert payload["document"] is None
            assert payload["errors"][0]["path"] == path, payload
        from tests.factories import make_user

        viewer = await make_user(tenant, role=Role.VIEWER)
        payload = await _add(gql, tenant.token_for(viewer, Role.VIEWER), title="T",
                             content="text")
        assert payload["errors"][0]["code"] == "FORBIDDEN"
        assert (await gql(DOCUMENTS, token=tenant.token))["knowledgeDocuments"] == []


@pytest.mark.asyncio
class TestKbCli:
    async def test_kb_add_files_for_a_tenant(self, gql, settings, tmp_path: Path) -> None:
        tenant, other = await make_tenant(settings), await make_tenant(settings)
        first = tmp_path / "renewals.md"
        first.write_text("# Renewal playbook\n\nCall the champion ninety days out.\n")
        second = tmp_path / "escalation-notes.txt"
        second.write_text("Escalate to the VP when the champion leaves.")
        result = _cli(settings, "kb", "add", "--tenant", str(tenant.id), str(first),
                      str(second))
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line["title"] for line in lines] == ["Renewal playbook", "escalation-notes"]
        hits = (await gql(SEARCH, {"q": "champion"}, token=tenant.token))["knowledgeSearch"]
        assert {h["title"] for h in hits} == {"Renewal playbook", "escalation-notes"}
        assert (await gql(SEARCH, {"q": "champion"}, token=other.token))["knowledgeSearch"] \
            == []
        bad = tmp_path / "binary.bin"
        bad.write_bytes(b"\xff\xfe\x00binary")
        refused = _cli(settings, "kb", "add", "--tenant", str(other.id), str(first), str(bad))
        assert refused.returncode == 1
        assert "binary.bin" in refused.stderr
        assert (await gql(DOCUMENTS, token=other.token))["knowledgeDocuments"] == []
        missing = _cli(settings, "kb", "add", "--tenant",
                       "00000000-0000-0000-0000-000000000001", str(first))
        assert missing.returncode == 1
        assert "no tenant" in missing.stderr
