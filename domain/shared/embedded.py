"""The embedded PostgreSQL used when DATABASE_URL is unset (developer machines, the demo)."""

from __future__ import annotations

import os
import re
from typing import Any

from domain.shared.settings import DATA_DIR

EMBEDDED_DIR = DATA_DIR / "pg"
_server: Any = None
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _embedded() -> Any:
    global _server
    if _server is None:
        import warnings

        # platformdirs warns on every command when XDG_RUNTIME_DIR is unset (containers,
        # CI); pgserver only keeps a lock file there and /tmp is fine for it.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # imported lazily: only embedded mode needs it

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        # pgserver records every attached process beside the data and stops the server when
        # the last one exits, so server workers, tests and the CLI can share one instance.
        _server = pgserver.get_server(EMBEDDED_DIR, cleanup_mode="stop")
    return _server


def embedded_url(database: str = "postgres") -> str:
    """Superuser URL of a database on the embedded server (started if needed)."""
    _embedded()
    return f"postgresql://postgres@/{database}?host={EMBEDDED_DIR}"


def create_embedded_database(name: str) -> None:
    """Create `name` on the embedded server unless it exists."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe database name: {name!r}")
    server = _embedded()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {name};")


def ensure_database(name: str = "stepwise") -> str:
    """DATABASE_URL if set, else database `name` on the embedded server (created if missing).

    Exports DATABASE_URL so child processes (uvicorn workers) attach to the same server.
    """
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured
    create_embedded_database(name)
    url = embedded_url(name)
    os.environ["DATABASE_URL"] = url
    return url
