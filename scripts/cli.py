"""The operator CLI: `stepwise migrate | seed | tenant create | token | validate | serve | kb`."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from uuid import UUID

import typer

from domain.shared.errors import DomainError

app = typer.Typer(help="Stepwise operator commands.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
runs_app = typer.Typer(help="Runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
kb_app = typer.Typer(help="The knowledge base of a tenant (rag branches, rag_search).",
                     no_args_is_help=True)
app.add_typer(kb_app, name="kb")


def _owner_url() -> str:
    from domain.shared.embedded import ensure_database

    return ensure_database()


def _settings():  # type: ignore[no-untyped-def]
    from domain.shared.settings import Settings

    return Settings.from_env(database_url=_owner_url())


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def migrate(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the database migrations (alembic upgrade)."""
    from domain.shared import migrate as migrations

    migrations.upgrade(_owner_url(), revision)
    typer.echo(f"migrated to {revision}")


@tenant_app.command("create")
def tenant_create(
    name: str = typer.Option(..., "--name"),
    admin_email: str = typer.Option(..., "--admin-email"),
    admin_name: str | None = typer.Option(None, "--admin-name"),
    time_zone: str = typer.Option("UTC", "--time-zone"),
) -> None:
    """Create a tenant and its admin; print {"tenant_id", "user_id", "token"} as one JSON line."""
    from domain.auth import tokens
    from domain.tenants.onboarding import create_tenant_with_admin
    from domain.users.models import Role

    settings = _settings()
    try:
        made = asyncio.run(create_tenant_with_admin(
            settings.database_url, name=name, admin_email=admin_email, admin_name=admin_name,
            time_zone=time_zone,
        ))
    except DomainError as error:
        _fail(f"{error.code}: {error.message}")
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN, ttl=86400)
    typer.echo(json.dumps({"tenant_id": str(made.tenant_id), "user_id": str(made.admin.id),
                           "token": token}))


async def _user_exists(tenant: UUID, user: UUID) -> bool:
    """Whether the tenant has this user (read as the app role, under the tenant's RLS)."""
    from domain.shared.db import Database
    from domain.users import repository as users

    db = Database(_settings().app_database_url, pool_size=1)
    try:
        async with db.transaction(tenant, read_only=True) as tx:
            return await users.get(tx.session, user) is not None
    finally:
        await db.dispose()


@app.command()
def token(
    tenant: UUID = typer.Option(..., "--tenant"),
    user: UUID = typer.Option(..., "--user"),
    role: str = typer.Option("viewer", "--role", help="admin | editor | viewer"),
    ttl: int = typer.Option(86400, "--ttl", help="Lifetime in seconds."),
) -> None:
    """Print a signed JWT for a user of a tenant."""
    from domain.auth import tokens
    from domain.shared.settings import _jwt_secret
    from domain.users.models import Role

    try:
        parsed = Role(role.lower())
    except ValueError:
        _fail(f"unknown role {role!r}: admin | editor | viewer")
        return
    if ttl <= 0:
        _fail("--ttl must be positive")
    if not asyncio.run(_user_exists(tenant, user)):
        _fail(f"no user {user} in tenant {tenant}")
    typer.echo(tokens.mint(secret=_jwt_secret(), tenant_id=tenant, user_id=user, role=parsed,
                           ttl=ttl))


@app.command()
def seed(demo: bool = typer.Option(False, "--demo", help="Also create a demo tenant.")) -> None:
    """Upsert the core workflows and saved actions (idempotent); --demo adds a demo tenant."""
    from domain.seeding import service as seeding

    settings = _settings()
    try:
        report = asyncio.run(seeding.seed_core(settings.database_url))
    except DomainError as error:
        for problem in error.problems:
            typer.echo(f"{problem.path or '-'}: {problem.code}: {problem.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report)
    if demo:
        demo_report = asyncio.run(seeding.seed_demo(settings))
        typer.echo(json.dumps(demo_report))


@app.command()
def validate(files: list[Path] = typer.Argument(None, help="Workflow JSON files (default: seeds/).")
             ) -> None:
    """Validate workflow JSON files; exit 1 with one line per problem."""
    from domain.seeding import service as seeding

    problems = seeding.validate_files(files or None)
    for line in problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(1)
    typer.echo("all workflow files are valid")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(1, "--workers"),
    reload: bool = typer.Option(False, "--reload"),
) -> None:
    """Run the GraphQL server under uvicorn."""
    import uvicorn

    from schema.edge import MAX_BODY_BYTES

    _owner_url()  # starts the embedded database first and exports DATABASE_URL to workers
    # uvicorn re-raises the SIGTERM it shut down on once it is done: with the default handler
    # that kills the process before atexit, and the embedded PostgreSQL would never stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    uvicorn.run("schema.app:create_app", factory=True, host=host, port=port, workers=workers,
                reload=reload, log_level="info", proxy_headers=True,
                # Live messages are small JSON: compressing each costs more CPU than it saves.
                ws_per_message_deflate=False,
                # A WebSocket message is refused past the body limit before it is buffered
                # whole (uvicorn's default would take 16 MB first).
                ws_max_size=MAX_BODY_BYTES + 1024)


@runs_app.command("scan")
def runs_scan(tenant: list[UUID] = typer.Option(None, "--tenant",
                                                help="Only these tenants (default: all).")
              ) -> None:
    """Start the right workflow per customer by renewal window, once; one JSON line a tenant."""
    from domain.runs import scan

    settings = _settings()
    reports = asyncio.run(scan.scan_everywhere(settings, tenant or None))
    for report in reports:
        typer.echo(json.dumps(report.as_dict()))


def _title(path: Path, text: str) -> str:
    """A Markdown file's first heading, else the file's name."""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            if heading:
                return heading[:200]
        elif line.strip():
            break
    return path.stem[:200] or path.name


async def _kb_add(tenant: UUID, files: list[tuple[Path, str]]) -> list[dict[str, object]]:
    """Add every file in one tenant transaction (all or nothing), as the app role."""
    import asyncpg

    from domain.knowledge import service as knowledge
    from domain.shared.actor import Actor
    from domain.shared.db import Database

    db = Database(_settings().app_database_url, pool_size=1)
    added: list[dict[str, object]] = []
    try:
        async with db.transaction(tenant) as tx:
            for path, text in files:
                try:
                    row = await knowledge.add_document(tx.session, Actor.system(tenant),
                                                       title=_title(path, text), content=text,
                                                       source=path.name)
                except DomainError as error:
                    raise DomainError(f"{path}: {error.message}") from error
                added.append({"file": str(path), "id": str(row["id"]), "title": row["title"],
                              "chunks": row["chunks"]})
    except asyncpg.ForeignKeyViolationError:
        raise DomainError(f"no tenant {tenant}") from None
    finally:
        await db.dispose()
    return added


@kb_app.command("add")
def kb_add(files: list[Path] = typer.Argument(..., help="UTF-8 text or Markdown files."),
           tenant: UUID = typer.Option(..., "--tenant")) -> None:
    """Add documents to a tenant's knowledge base (chunked, indexed); one JSON line each."""
    read: list[tuple[Path, str]] = []
    for path in files:
        try:
            read.append((path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as error:
            _fail(f"{path}: cannot read it as UTF-8 text ({type(error).__name__})")
        if "\x00" in read[-1][1]:
            _fail(f"{path}: contains NUL characters (not a text file)")
    try:
        added = asyncio.run(_kb_add(tenant, read))
    except DomainError as error:
        _fail(error.message)
    for row in added:
        typer.echo(json.dumps(row))


@app.command()
def worker(concurrency: int = typer.Option(10, "--concurrency", min=1, max=200,
                                           help="Jobs run at once by this process."),
           scan_every: float = typer.Option(3600, "--scan-every",
                                            help="Seconds between renewal scans (0: never)."),
           log_jobs: bool = typer.Option(False, "--log-jobs",
                                         help="Also log each job's start and success.")
           ) -> None:
    """Run jobs (I/O steps, timers, deliveries, scans) until SIGTERM; restarts itself after a
    lost database. Run as many as you like, on as many machines: they share the database."""
    import logging

    from worker.main import quiet_job_logs, run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    if not log_jobs:
        quiet_job_logs()
    settings = _settings()
    run(settings, concurrency=concurrency, scan_seconds=scan_every)


@app.command("fake-llm")
def fake_llm(host: str = typer.Option("127.0.0.1", "--host"),
             port: int = typer.Option(8765, "--port")) -> None:
    """Serve the local fake of Anthropic's Messages API (offline demos; see scripts/fake_llm.py)."""
    import uvicorn

    from scripts.fake_llm import create_app

    typer.echo(f"export ANTHROPIC_BASE_URL=http://{host}:{port}")
    typer.echo("export ANTHROPIC_API_KEY=fake  # the fake accepts any key")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
