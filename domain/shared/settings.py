"""Settings read from the environment, once per process."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Local state (the embedded PostgreSQL, a generated JWT secret); STEPWISE_DATA_DIR moves it.
DATA_DIR = Path(os.environ.get("STEPWISE_DATA_DIR") or PROJECT_ROOT / ".data")
APP_ROLE = "stepwise_app"
OWNER_ROLE = "stepwise_owner"
# The worker reaches the job engine (schema `jobs`) as this role; the app role cannot.
JOBS_ROLE = "stepwise_jobs"
JOBS_SCHEMA = "jobs"
# Query steps run their generated SELECT as this role (NOLOGIN, SELECT on query_api only).
QUERY_ROLE = "stepwise_query"


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def async_url(url: str) -> str:
    """The SQLAlchemy asyncpg form of a postgres URL (postgres://, postgresql://, +asyncpg)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def derive_app_url(owner_url: str, *, password: str | None) -> str:
    """The app role's URL: the owner's host, port and database, the app role's credentials."""
    parsed = make_url(async_url(owner_url))
    return parsed.set(username=APP_ROLE, password=password or None).render_as_string(
        hide_password=False
    )


def derive_jobs_url(owner_url: str, *, password: str | None) -> str:
    """The worker's job-engine connection (libpq URL for psycopg): the owner's server and
    database as `stepwise_jobs`."""
    parsed = make_url(owner_url)
    return parsed.set(drivername="postgresql", username=JOBS_ROLE,
                      password=password or None).render_as_string(hide_password=False)


def _jwt_secret() -> str:
    # A secret shared by `stepwise token` and `stepwise serve` on a developer machine; production
    # sets STEPWISE_JWT_SECRET explicitly.
    configured = os.environ.get("STEPWISE_JWT_SECRET")
    if configured:
        return configured
    path = DATA_DIR / "jwt-secret"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        try:  # created private from the start, never readable by others even briefly
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; use its secret
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    database_url: str
    app_database_url: str
    jwt_secret: str
    app_password: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    llm_model: str = "claude-sonnet-4-5"
    llm_timeout: float = 60.0  # seconds per attempt; the SDK's default of 10 minutes hangs a run
    llm_max_retries: int = 2  # the SDK retries 408/409/429/5xx and connection errors itself
    pool_size: int = 10
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 4000
    jobs_database_url: str = ""  # libpq URL of stepwise_jobs (worker only)
    retry_base_seconds: int = 5  # webhook and delivery retries wait base, 2*base, 4*base...
    retry_attempts: int = 5  # attempts of a webhook or delivery before it is reported failed
    tick_seconds: float = 1.0  # how often a worker looks for due timers and notifications
    stalled_seconds: float = 5.0  # a worker silent this long has its jobs retried
    # graphql-core's own executor behind Strawberry's view only: the reference the fast path
    # (schema.fast, schema.execution) is compared with; never faster, never different.
    reference_execution: bool = False

    @property
    def listener_dsn(self) -> str:
        """libpq URL of the live listener: STEPWISE_LISTEN_DATABASE_URL (a direct connection
        to PostgreSQL, never through PgBouncer in transaction mode) or the app role's URL."""
        from sqlalchemy.engine import make_url

        url = os.environ.get("STEPWISE_LISTEN_DATABASE_URL") or self.app_database_url
        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    @classmethod
    def from_env(cls, *, database_url: str | None = None) -> Settings:
        """Settings from the environment; `database_url` overrides DATABASE_URL (embedded mode)."""
        owner = database_url or os.environ.get("DATABASE_URL")
        if not owner:
            raise RuntimeError("DATABASE_URL is unset: call domain.shared.embedded.ensure_database")
        password = os.environ.get("STEPWISE_APP_PASSWORD") or None
        app_url = os.environ.get("STEPWISE_APP_DATABASE_URL") or derive_app_url(
            owner, password=password
        )
        return cls(
            database_url=async_url(owner),
            app_database_url=async_url(app_url),
            jwt_secret=_jwt_secret(),
            app_password=password,
            cors_origins=_split(os.environ.get("STEPWISE_CORS_ORIGINS", "")),
            llm_model=os.environ.get("STEPWISE_LLM_MODEL", "claude-sonnet-4-5"),
            llm_timeout=float(os.environ.get("STEPWISE_LLM_TIMEOUT", "60")),
            llm_max_retries=int(os.environ.get("STEPWISE_LLM_MAX_RETRIES", "2")),
            pool_size=int(os.environ.get("STEPWISE_DB_POOL_SIZE", "10")),
            jobs_database_url=os.environ.get("STEPWISE_JOBS_DATABASE_URL") or derive_jobs_url(
                owner, password=os.environ.get("STEPWISE_JOBS_PASSWORD") or None),
            retry_base_seconds=int(os.environ.get("STEPWISE_RETRY_BASE_SECONDS", "5")),
            retry_attempts=int(os.environ.get("STEPWISE_RETRY_ATTEMPTS", "5")),
            tick_seconds=float(os.environ.get("STEPWISE_TICK_SECONDS", "1")),
            stalled_seconds=float(os.environ.get("STEPWISE_STALLED_SECONDS", "5")),
            reference_execution=os.environ.get("STEPWISE_REFERENCE_EXECUTION", "") == "1",
        )
