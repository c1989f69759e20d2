"""Re-create schema/static/graphiql/ (GraphiQL's assets, served by the server itself).

Usage: python -m scripts.vendor_graphiql

The GraphiQL page Strawberry ships loads React, GraphiQL, its explorer plugin and js-cookie
from a CDN: offline it stays a blank "Loading...". Stepwise serves the same files itself.
This script fetches the exact versions Strawberry's page names from the npm registry
(`npm pack`), checks each file against the Subresource Integrity hash in Strawberry's page
(so the served bytes are the ones Strawberry's page would load), and copies them with their
licences. Its output is committed: the server, the tests and CI never fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import strawberry

from domain.shared.settings import PROJECT_ROOT

TARGET = PROJECT_ROOT / "schema" / "static" / "graphiql"
# (npm package, version, file inside the package, served name)
ASSETS = [
    ("react", "18.2.0", "umd/react.production.min.js", "react.production.min.js"),
    ("react-dom", "18.2.0", "umd/react-dom.production.min.js", "react-dom.production.min.js"),
    ("js-cookie", "3.0.5", "dist/js.cookie.min.js", "js.cookie.min.js"),
    ("graphiql", "3.8.3", "graphiql.min.css", "graphiql.min.css"),
    ("graphiql", "3.8.3", "graphiql.min.js", "graphiql.min.js"),
    ("@graphiql/plugin-explorer", "1.0.2", "dist/style.css", "plugin-explorer.css"),
    ("@graphiql/plugin-explorer", "1.0.2", "dist/index.umd.js", "plugin-explorer.umd.js"),
]
STRAWBERRY_PAGE = Path(strawberry.__file__).parent / "static" / "graphiql.html"


def _integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _expected() -> dict[str, str]:
    """CDN path (package@version/file) -> the integrity hash Strawberry's page gives it."""
    page = STRAWBERRY_PAGE.read_text()
    found = re.findall(r'(?:src|href)="https://unpkg\.com/([^"]+)"\s+integrity="([^"]+)"', page)
    return dict(found)


def main() -> None:
    expected = _expected()
    TARGET.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        packs: dict[tuple[str, str], Path] = {}
        for name, version, _, _ in ASSETS:
            if (name, version) in packs:
                continue
            tarball = subprocess.run(
                ["npm", "pack", "--silent", f"{name}@{version}"], cwd=scratch, check=True,
                capture_output=True, text=True).stdout.strip().splitlines()[-1]
            folder = Path(scratch) / f"{name.replace('/', '-')}-{version}"
            with tarfile.open(Path(scratch) / tarball) as archive:
                archive.extractall(folder, filter="data")
            packs[name, version] = folder / "package"
        lines = []
        for name, version, inside, served in ASSETS:
            data = (packs[name, version] / inside).read_bytes()
            cdn = f"{name}@{version}/{inside}"
            if expected.get(cdn) != _integrity(data):
                raise SystemExit(f"{cdn}: not in Strawberry's page with this integrity")
            (TARGET / served).write_bytes(data)
            lines.append(f"| {served} | {name} {version} | {inside} | {_integrity(data)} |")
        for name, version in packs:
            licence = packs[name, version] / "LICENSE"
            if licence.exists():
                shutil.copy(licence, TARGET / f"LICENSE.{name.replace('/', '-')}")
    (TARGET / "SOURCES.md").write_text(
        "# GraphiQL assets\n\nServed by the server at /graphiql/ (schema/app.py) so the "
        "GraphiQL page works offline. Made by `python -m scripts.vendor_graphiql` from the "
        "npm registry (`npm pack`), the exact versions Strawberry's own GraphiQL page "
        "names; each file's hash equals the integrity hash in that page. All are MIT "
        "licensed (LICENSE.* here; @graphiql/plugin-explorer ships no licence file, its "
        "package.json says MIT, as GraphiQL's does).\n\n"
        "| file | package | path in the package | integrity |\n|---|---|---|---|\n"
        + "\n".join(lines) + "\n")
    print(f"wrote {len(ASSETS)} assets to {TARGET}")


if __name__ == "__main__":
    main()
