"""GraphiQL works offline: the page and every asset it references come from the server.

The browser check (GraphiQL renders and runs a query in headless Chromium with the network
cut off) is scripts/check_graphiql.py; this test proves what the page can reach."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import httpx
import pytest

pytestmark = pytest.mark.asyncio

EXTERNAL = re.compile(r"https?://|//[a-z0-9]", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)""")
CSS_IMPORT = re.compile(r"@import")


class _References(HTMLParser):
    """Every src/href in the page, with its integrity attribute if any."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.found.append((tag, values[name] or "", values.get("integrity")))


async def _page(http: httpx.AsyncClient) -> str:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


class TestGraphiQLOffline:
    async def test_the_page_names_no_external_url(self, http) -> None:
        page = await _page(http)
        assert "graphiql" in page.lower()
        assert not EXTERNAL.search(page), EXTERNAL.findall(page)

    async def test_every_referenced_asset_is_served_here_without_a_token(self, http) -> None:
        parser = _References()
        parser.feed(await _page(http))
        assets = [(tag, url, sri) for tag, url, sri in parser.found if not url.startswith("data:")]
        assert {url for _, url, _ in assets} == {
            "/graphiql/react.production.min.js", "/graphiql/react-dom.production.min.js",
            "/graphiql/js.cookie.min.js", "/graphiql/graphiql.min.css",
            "/graphiql/plugin-explorer.css", "/graphiql/graphiql.min.js",
            "/graphiql/plugin-explorer.umd.js"}
        for _tag, url, sri in assets:
            assert url.startswith("/"), url
            assert not url.startswith("//"), url
            response = await http.get(url)  # no Authorization header
            assert response.status_code == 200, url
            kind = response.headers["content-type"]
            assert ("css" in kind) if url.endswith(".css") else ("javascript" in kind), kind
            # The integrity the page asks for is what the server sends (else the browser
            # refuses the file and GraphiQL stays blank).
            assert sri == _sri(response.content), url

    async def test_stylesheets_import_nothing_and_load_no_remote_url(self, http) -> None:
        for sheet in ("/graphiql/graphiql.min.css", "/graphiql/plugin-explorer.css"):
            text = (await http.get(sheet)).text
            assert not CSS_IMPORT.search(text), sheet
            remote = [u for u in CSS_URL.findall(text) if not u.startswith(("data:", "#"))]
            assert remote == [], (sheet, remote[:5])

    async def test_the_api_still_needs_a_token(self, http) -> None:
        response = await http.get("/graphql", params={"query": "{ viewer { id } }"})
        assert response.status_code == 401
        missing = await http.get("/graphiql/nope.js")
        assert missing.status_code == 404
