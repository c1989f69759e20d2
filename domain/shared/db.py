"""The tenant transaction: the one way code gets a session.

HTTP and WebSocket operations, subscription events, worker jobs and the CLI all open a
`Tx` through `Database.begin`/`Database.transaction` (the app role, bound by RLS) or
`owner_transaction` (the operator path, which drops to the app role to act for a tenant).

Transactions are managed on the driver (asyncpg) directly: the pool's connections are in
autocommit mode as far as SQLAlchemy knows, and the Tx sends BEGIN, the tenant setting and
the caller's re-read itself, then COMMIT or ROLLBACK. The ORM session of a Tx is bound to the
same connection, so ORM statements and the hot paths' driver statements run in one
transaction, in order.

One Tx is used by one coroutine at a time: GraphQL resolves sibling fields concurrently, so
every statement (driver or ORM) is serialised by a lock, and runs shielded from the caller's
cancellation: graphql-core cancels siblings when a field fails, and a statement cancelled
mid-flight would abort the transaction (and close asyncpg's connection).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from domain.shared import jsontext
from domain.shared.actor import Actor, Role
from domain.shared.settings import APP_ROLE

log = logging.getLogger("stepwise.db")
T = TypeVar("T")
StatementListener = Callable[[str], None]

# Sets the tenant and re-reads the caller as stored now, in one statement (migration 0004),
# with the caller's tenant row. The tenant is read in a LATERAL subquery of the function's
# row, so it runs after the function set the tenant (RLS sees it); were it ever read first,
# RLS would hide the row and `Tx.tenant` would stay None (callers then read it themselves).
_ENTER = ("SELECT e.tenant_id, e.id, e.email, e.name, e.role, e.manager_id, e.created_at, "
          "t.name AS tenant_name, t.time_zone AS tenant_time_zone, "
          "t.created_at AS tenant_created_at FROM stepwise_enter($1, $2) e "
          "LEFT JOIN LATERAL (SELECT name, time_zone, created_at FROM tenants "
          "WHERE id = e.tenant_id) t ON true")
_USER_COLUMNS = ("tenant_id", "id", "email", "name", "role", "manager_id", "created_at")
# Connection-level failures: the connection is unusable and must leave the pool.
_BROKEN = (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError,
           asyncpg.exceptions.InternalClientError, ConnectionError, OSError)


class UnknownCaller(Exception):
    """The token's user no longer exists in its tenant (deleted): refused like a bad token."""


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """A fixed-size pool (no overflow: no connection churn under load) in autocommit mode.

    Autocommit is what SQLAlchemy sees; the Tx sends BEGIN/COMMIT itself. Behind PgBouncer in
    transaction mode set `?prepared_statement_cache_size=0` on the URL.
    """
    return create_async_engine(
        url,
        json_deserializer=jsontext.loads,  # JSON/JSONB columns
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        pool_recycle=1800,
        pool_reset_on_return=None,  # the Tx always ends its own transaction
        isolation_level="AUTOCOMMIT",
    )


def _uuid_literal(value: UUID) -> str:
    # Only a real UUID becomes SQL text (hex digits and dashes): nothing can break out.
    return str(value if value.__class__ is UUID else UUID(str(value)))


class TenantSession(AsyncSession):
    """The ORM session of a Tx: every call that reaches the database goes through its lock."""

    def __init__(self, tx: Tx, bind: AsyncConnection) -> None:
        super().__init__(bind=bind, expire_on_commit=False, autoflush=True)
        self.tx = tx

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self.tx.serialised(lambda: AsyncSession.execute(self, *args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self.tx.serialised(lambda: AsyncSession.scalar(self, *args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self.tx.serialised(lambda: AsyncSession.get(self, *args, **kwargs))

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.tx.serialised(lambda: AsyncSession.get_one(self, *args, **kwargs))

    async def flush(self, objects: Sequence[Any] | None = None) -> None:
        await self.tx.serialised(lambda: AsyncSession.flush(self, objects))

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        await self.tx.serialised(lambda: AsyncSession.refresh(self, *args, **kwargs))

    async def delete(self, instance: object) -> None:
        await self.tx.serialised(lambda: AsyncSession.delete(self, instance))

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        return await self.tx.serialised(lambda: AsyncSession.merge(self, *args, **kwargs))

    async def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        return await self.tx.serialised(lambda: AsyncSession.run_sync(self, *args, **kwargs))


def tx_of(session: AsyncSession | Tx) -> Tx:
    """The Tx a session belongs to (repositories reach the driver through it). A Tx itself
    is accepted too: reads that only use the driver need no ORM session (schema.compiled)."""
    if isinstance(session, Tx):
        return session
    tx = getattr(session, "tx", None)
    if not isinstance(tx, Tx):
        raise RuntimeError("this session was not opened by a tenant transaction")
    return tx


class Tx:
    """One transaction on one connection: the ORM session, the driver, and who acts."""

    def __init__(self, connection: AsyncConnection, driver: asyncpg.Connection, *,
                 listeners: list[StatementListener], solo: bool = False,
                 give_back: Callable[[bool], Awaitable[None]] | None = None) -> None:
        self.connection = connection
        self._give_back = give_back  # returns the connection to its Database (or None: close)
        # solo: one coroutine uses this Tx, one statement after another (compiled reads), so
        # statements skip the lock and its shielding task. A cancellation mid-statement then
        # leaves the connection busy: ending the Tx marks it broken and it is invalidated.
        self._solo = solo
        self._deferred: str | None = None  # solo reads: BEGIN, sent before the next statement
        self.driver = driver
        self._session: TenantSession | None = None
        self.actor: Actor | None = None
        self.user: Mapping[str, Any] | None = None  # the caller's row, as re-read
        self.tenant: Mapping[str, Any] | None = None  # the caller's tenant row, read with it
        self._listeners = listeners
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._savepoints = itertools.count(1)
        self._broken = False
        self._open = False
        self._released = False
        self._doomed = False  # ends in ROLLBACK whatever is asked (see doom)

    @property
    def session(self) -> TenantSession:
        """The ORM session on this transaction's connection (made on first use: hot paths
        that go straight to the driver never pay for one)."""
        if self._session is None:
            self._session = TenantSession(self, self.connection)
        return self._session

    @property
    def acting(self) -> Actor:
        """Who acts in this transaction (set once it entered a tenant)."""
        if self.actor is None:
            raise RuntimeError("this transaction acts for no tenant")
        return self.actor

    # Serialisation

    async def serialised(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one database call alone on this connection, to completion even if the caller
        is cancelled (the call finishes in the background, then the lock is released)."""
        if self._solo:
            if self._deferred is not None:
                await self._begin_deferred()
            return await self._direct(work)
        if self._holder is not None and asyncio.current_task() is self._holder:
            return await work()  # already inside a serialised call (nested ORM helpers)
        task = asyncio.ensure_future(self._alone(work))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_settle)
            raise

    async def _begin_deferred(self) -> None:
        """A solo read's BEGIN with the tenant, before its first statement after the caller's
        re-read (see `open`)."""
        begin, self._deferred = self._deferred, None
        if begin is not None:
            self._notify(begin)
            await self._direct(lambda: self.driver.execute(begin))
            self._open = True

    async def _alone(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            self._holder = asyncio.current_task()
            try:
                return await work()
            except _BROKEN:
                self._broken = True
                raise
            finally:
                self._holder = None

    async def _direct(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except (*_BROKEN, asyncio.CancelledError):
            # (cancelled: the statement may still be running; the connection is not reused)
            self._broken = True
            raise

    def _notify(self, sql: str) -> None:
        for listener in self._listeners:
            listener(sql)

    # The driver, for hot paths and statements SQLAlchemy adds nothing to

    async def _autoflush(self) -> None:
        """Pending ORM changes reach the database before a driver statement, as the ORM's
        own autoflush does before its queries: a driver read never sees stale rows."""
        session = self._session
        if session is not None and (session.new or session.dirty or session.deleted):
            await session.flush()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self._autoflush()
        if self._deferred is not None:
            await self._begin_deferred()
        self._notify(sql)
        return await self.serialised(lambda: self.driver.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        await self._autoflush()
        if self._deferred is not None:
            await self._begin_deferred()
        self._notify(sql)
        return await self.serialised(lambda: self.driver.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self._autoflush()
        if self._deferred is not None:
            await self._begin_deferred()
        self._notify(sql)
        return await self.serialised(lambda: self.driver.fetchval(sql, *args))

    async def execute(self, sql: str, *args: Any) -> str:
        if self._deferred is not None:
            await self._begin_deferred()
        self._notify(sql)
        return await self.serialised(lambda: self.driver.execute(sql, *args))

    # Lifecycle

    async def open(self, tenant_id: UUID | None, *, user_id: UUID | None = None,
                   read_only: bool = False) -> None:
        """BEGIN, then act for the tenant: as the system (one round trip) or as a user whose
        row is re-read (UnknownCaller if it no longer exists)."""
        begin = "BEGIN READ ONLY" if read_only else "BEGIN"
        if tenant_id is not None and (user_id is None or (self._solo and read_only)):
            begin += (f"; SELECT set_config('app.tenant_id', '{_uuid_literal(tenant_id)}', "
                      "true)")
        if self._solo and read_only and tenant_id is not None and user_id is not None:
            # A solo read re-reads the caller first, in the statement's own implicit
            # transaction (the tenant it sets ends with it), and sends BEGIN with the tenant
            # only before its first other statement: a read answered by the caller's row
            # alone (viewer) is one round trip. Under READ COMMITTED every statement takes
            # its own snapshot anyway, so nothing is read less consistently.
            await self._enter(tenant_id, user_id)
            self._deferred = begin
            return
        # Straight to the driver: nobody else holds this Tx yet, and a cancelled opening ends
        # in rollback() below, which invalidates a connection left inside a transaction.
        self._notify(begin)
        await self._direct(lambda: self.driver.execute(begin))
        self._open = True
        if tenant_id is None:
            return
        if user_id is None:
            self.actor = Actor.system(tenant_id)
            return
        await self._enter(tenant_id, user_id)

    async def _enter(self, tenant_id: UUID, user_id: UUID) -> None:
        self._notify(_ENTER)
        row = await self._direct(lambda: self.driver.fetchrow(_ENTER, tenant_id, user_id))
        if row is None:
            raise UnknownCaller(str(user_id))
        self.user = {column: row[column] for column in _USER_COLUMNS}
        if row["tenant_name"] is not None:
            self.tenant = {"id": row["tenant_id"], "name": row["tenant_name"],
                           "time_zone": row["tenant_time_zone"],
                           "created_at": row["tenant_created_at"]}
        self.actor = Actor(tenant_id=tenant_id, user_id=user_id, role=Role(row["role"]))

    async def act_for(self, tenant_id: UUID) -> None:
        """Owner path: from here on, the app role acting as the system for `tenant_id`."""
        await self.execute(f"SET LOCAL ROLE {APP_ROLE}; SELECT set_config('app.tenant_id', "
                           f"'{_uuid_literal(tenant_id)}', true)")
        self.actor = Actor.system(tenant_id)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested unit: on any exception, everything since it is undone (ORM state too)."""
        name = f"stepwise_sp_{next(self._savepoints)}"
        await self.execute(f"SAVEPOINT {name}")
        try:
            yield
            if self._session is not None:
                await self._session.flush()
        except BaseException:
            await self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            if self._session is not None:
                self._session.expunge_all()  # objects written since then do not exist
            raise
        await self.execute(f"RELEASE SAVEPOINT {name}")

    def doom(self) -> None:
        """The work failed and nothing of it may be kept: the transaction ends in ROLLBACK
        even if asked to commit (what a savepoint would undo, without its two round trips,
        when nothing else shares the transaction)."""
        self._doomed = True

    async def commit(self) -> None:
        if self._doomed:
            await self._end("ROLLBACK")
            return
        if self._session is not None:
            await self._session.flush()
        await self._end("COMMIT")

    async def rollback(self) -> None:
        await self._end("ROLLBACK")

    @property
    def ended(self) -> bool:
        """Committed or rolled back: the connection went back to the pool."""
        return self._released

    async def _end(self, statement: str) -> None:
        if self._released:
            return  # ended already (an operation that works in transactions of its own)
        try:
            if self._open and not self._broken:
                # Shielded: a client that disconnects mid-commit must not leave the
                # connection inside a transaction.
                # (one task: _alone waits for any statement still running, then ends it)
                self._notify(statement)
                if self._solo:  # nothing else runs here; a cancelled end marks it broken
                    await self._direct(lambda: self.driver.execute(statement))
                else:
                    await asyncio.shield(self._alone(lambda: self.driver.execute(statement)))
            self._open = False
        except BaseException:
            self._broken = True
            raise
        finally:
            await self._release()

    async def _release(self) -> None:
        self._released = True
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            # Never hand a connection in an unknown state to the next caller.
            broken = self._broken or self.driver.is_in_transaction()
            if self._give_back is not None:
                await self._give_back(broken)
            else:
                if broken:
                    await self.connection.invalidate()
                await self.connection.close()


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()  # closes the driver's connection: the session ends
    except Exception:  # the session must end all the same
        log.warning("invalidating a connection failed; terminating it", exc_info=True)
        with suppress(Exception):
            (await _driver(connection)).terminate()
    finally:
        await connection.close()


def _settle(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned call's failure is not "never retrieved"


async def _driver(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a checked-out one. Reading it does no IO, so no greenlet
    hop (`get_raw_connection` would take one)."""
    raw = connection.sync_connection.connection if connection.sync_connection \
        else await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver


RECYCLE_SECONDS = 1800.0  # a connection older than this is closed when given back


class Database:
    """The app-role engine (RLS-bound): the pool every tenant transaction draws from.

    Connections stay checked out of the engine's pool between transactions, at most
    `pool_size` of them: a Tx takes an idle one (no pool checkout and check-in, no greenlet
    hop on either), gives it back when it ends, and a broken one is invalidated and replaced
    on demand. The engine keeps two connections more for everything else (readiness).
    """

    def __init__(self, app_url: str, *, pool_size: int = 10, solo: bool = False) -> None:
        self.engine = make_engine(app_url, pool_size=pool_size + 2)
        # solo: every Tx of this Database is used by one coroutine, one statement after
        # another (the worker: a job is one coroutine), so none pays for the lock and the
        # shielding task of each statement.
        self.solo = solo
        self.listeners: list[StatementListener] = []  # tests count statements here
        self._idle: list[tuple[AsyncConnection, float]] = []  # most recently used last
        self._slots = asyncio.Semaphore(pool_size)
        self._disposed = False
        self._closing: set[asyncio.Future[None]] = set()  # connections being closed

    async def _take(self) -> tuple[AsyncConnection, float]:
        await self._slots.acquire()
        try:
            while self._idle:
                connection, born = self._idle.pop()
                if time.monotonic() - born < RECYCLE_SECONDS and not connection.invalidated:
                    return connection, born
                await connection.close()
            return await self.engine.connect(), time.monotonic()
        except BaseException:
            self._slots.release()
            raise

    def _returner(self, connection: AsyncConnection, born: float
                  ) -> Callable[[bool], Awaitable[None]]:
        async def give_back(broken: bool) -> None:
            if not broken and not self._disposed:
                self._idle.append((connection, born))
                self._slots.release()
                return
            # To completion even if the caller is cancelled meanwhile (a connection dropped
            # unclosed leaks its server session until the collector finds it); its slot is
            # free once it is closed, and dispose() waits for it.
            closing = asyncio.ensure_future(_discard(connection))
            self._closing.add(closing)
            closing.add_done_callback(self._closed)
            await asyncio.shield(closing)
        return give_back

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        self._slots.release()
        _settle(task)

    async def begin(self, tenant_id: UUID | None, *, user_id: UUID | None = None,
                    read_only: bool = False, solo: bool | None = None) -> Tx:
        """An open Tx for the tenant (as the system, or as the user re-read now); the caller
        must end it with `commit()` or `rollback()`. `transaction()` does that for you.
        `solo`: the caller never runs two statements at once (see Tx)."""
        connection, born = await self._take()
        give_back = self._returner(connection, born)
        try:
            tx = Tx(connection, await _driver(connection), listeners=self.listeners,
                    solo=self.solo if solo is None else solo, give_back=give_back)
        except BaseException:
            await give_back(True)
            raise
        try:
            await tx.open(tenant_id, user_id=user_id, read_only=read_only)
        except BaseException:
            await tx.rollback()
            raise
        return tx

    async def fetchrow_entering(self, tenant_id: UUID, sql: str, *args: Any
                                ) -> asyncpg.Record | None:
        """One read as the tenant's system actor, in one round trip and no transaction block:
        `sql` calls a SECURITY INVOKER function whose first argument is the tenant, which it
        sets locally (set_config(..., true)) before it reads. The statement is its own
        implicit transaction, so the setting ends with it; a function that did not set it
        would see nothing (RLS with no tenant matches no row)."""
        connection, born = await self._take()
        give_back = self._returner(connection, born)
        broken = True
        try:
            driver = await _driver(connection)
            for listener in self.listeners:
                listener(sql)
            try:
                row: asyncpg.Record | None = await driver.fetchrow(sql, tenant_id, *args)
            except asyncpg.PostgresError:  # refused by the server: the connection is fine
                broken = driver.is_closed() or driver.is_in_transaction()
                raise
            broken = driver.is_in_transaction()
            return row
        finally:  # anything else (a lost connection, a cancellation mid-statement): replaced
            await give_back(broken)

    @asynccontextmanager
    async def transaction(self, tenant_id: UUID | None, *, user_id: UUID | None = None,
                          read_only: bool = False) -> AsyncIterator[Tx]:
        """Committed if the block succeeds, rolled back if it raises."""
        tx = await self.begin(tenant_id, user_id=user_id, read_only=read_only)
        try:
            yield tx
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit()

    async def dispose(self) -> None:
        """Closes the idle connections now, and each one in use when its Tx ends."""
        self._disposed = True
        idle, self._idle = self._idle, []
        try:
            for connection, _ in idle:
                closing = asyncio.ensure_future(connection.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
            # (shielded: a cancelled shutdown still closes them, then the engine)
            await asyncio.shield(asyncio.gather(*self._closing, return_exceptions=True))
        finally:
            await asyncio.shield(self.engine.dispose())


@asynccontextmanager
async def owner_transaction(
    url: str, *, tenant_id: UUID | None = None
) -> AsyncIterator[AsyncSession]:
    """A transaction as the owner (the seed path): writes core rows, creates tenants.

    With `tenant_id`, the transaction acts for that tenant exactly as a request does (see
    `act_as_tenant`), so domain code run from the CLI is bound by the same policies.
    """
    engine = make_engine(url, pool_size=1)
    try:
        connection = await engine.connect()
        raw = await connection.get_raw_connection()
        tx = Tx(connection, raw.driver_connection, listeners=[])
        try:
            await tx.open(None)
            if tenant_id is not None:
                await tx.act_for(tenant_id)
            yield tx.session
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit()
    finally:
        await engine.dispose()


async def act_as_tenant(session: AsyncSession, tenant_id: UUID) -> None:
    """Drop to the app role for the rest of this transaction, with the tenant set.

    The owner (often a superuser) bypasses RLS; switching role keeps owner-path domain code
    from seeing or touching any other tenant's rows.
    """
    await tx_of(session).act_for(tenant_id)
