"""The PostgreSQL store's connections: one asyncpg pool, transactions that retry, migrations
under an advisory lock, and the daily partitions kept ahead of the clock.

Every call takes a connection from the pool for one transaction, so a read that starts after
a write has committed (on any connection, on any node) sees it: READ COMMITTED gives the
store contract's read-your-writes (architecture.md §5). Durability equals SQLite's: each
connection runs with ``synchronous_commit = on`` whatever the server's default, so a write
has returned only once its commit is on the server's disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from convoyd.errors import ConvoydError, StartupError, UnavailableError
from convoyd.settings import PostgresSettings
from convoyd.store import pg_schema

log = logging.getLogger("convoyd.store")

T = TypeVar("T")

# pg_advisory_lock keys: one for migrations, one for partition maintenance (any constants,
# the same on every node; "cvyd" and "cvyp" as 32-bit numbers).
_MIGRATION_LOCK = 0x63767964
_PARTITION_LOCK = 0x63767970

# A transaction that lost a race with another one is rerun from the start (its callbacks
# are pure, store/base.py); past this many tries the error goes to the caller.
MAX_TRIES = 8

# Partitions are made this many days ahead, and checked again this often: a node that stays
# up for weeks keeps making them, and several nodes doing it at once is harmless.
DAYS_AHEAD = 3
PARTITION_CHECK_INTERVAL = 3600.0


class Retry(Exception):
    """Raised inside a transaction to roll it back and run it again from the start (a row
    another transaction took first, such as an idempotency key)."""


# Errors after which the same transaction, run again, can succeed.
_RETRYABLE = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.ForeignKeyViolationError,  # a concurrent delete: rerun sees it gone
    Retry,
)
# Errors that mean the server cannot be reached or is going away: UNAVAILABLE to callers,
# who keep what they hold and try again (the pool reconnects by itself).
UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # includes "connection is closed"
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


def describe_dsn(dsn: str) -> str:
    """host:port/database of ``dsn``, without user or password: for messages."""
    parts = urllib.parse.urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


def unavailable(exc: BaseException) -> UnavailableError:
    text = str(exc) or type(exc).__name__
    return UnavailableError(f"the database is unavailable ({text}); nothing was stored")


class PgConnections:
    """The pool, and transactions over it."""

    def __init__(self, settings: PostgresSettings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.where = describe_dsn(settings.dsn)
        self.migrations_applied = 0

    async def open(self, *, now: Callable[[], float] = time.time, maintain: bool = True) -> None:
        """Connects, applies pending migrations and makes the coming days' partitions (and,
        with ``maintain``, keeps making them). StartupError (one line naming host and port)
        if the server cannot be reached."""
        try:
            self._pool = await asyncpg.create_pool(
                self._settings.dsn,
                min_size=1,
                max_size=self._settings.pool_size,
                timeout=self._settings.connect_timeout,
                # A statement stuck longer than this is a server in trouble: UNAVAILABLE.
                command_timeout=60,
                # jit off: every statement is a short OLTP one, and on a table never yet
                # analyzed (a new day's partition) the planner's guess made record()'s upsert
                # JIT-compile, 120 ms a batch instead of 35 (docs/portal.md).
                server_settings={
                    "synchronous_commit": "on",
                    "application_name": "convoyd",
                    "jit": "off",
                },
            )
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            raise StartupError(f"PostgreSQL at {self.where}: cannot connect: {exc}") from None
        self.migrations_applied = await apply_migrations(self._pool)
        await self.ensure_partitions(now())
        if maintain:
            self._maintenance = asyncio.create_task(self._keep_partitions(now))

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except (TimeoutError, *UNREACHABLE):
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise UnavailableError("the store is closed")
        return self._pool

    async def transaction(self, job: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Runs ``job`` in one transaction, rerun from the start after a lost race (see
        _RETRYABLE); UnavailableError when the server cannot be reached."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await job(conn)
            except ConvoydError:
                raise
            except _RETRYABLE:
                if attempt == MAX_TRIES:
                    raise
                await asyncio.sleep(0.001 * attempt)
            except UNREACHABLE as exc:
                raise unavailable(exc) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement's rows, on any pooled connection (its own implicit transaction)."""
        try:
            async with self.pool.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
                return rows
        except UNREACHABLE as exc:
            raise unavailable(exc) from None

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            async with self.pool.acquire() as conn:
                status: str = await conn.execute(sql, *args)
                return status
        except UNREACHABLE as exc:
            raise unavailable(exc) from None

    async def ping(self) -> bool:
        """True when a connection answers a trivial query within the connect timeout."""
        try:
            async with self.pool.acquire(timeout=self._settings.connect_timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=self._settings.connect_timeout)
        except (ConvoydError, *UNREACHABLE, asyncpg.PostgresError):
            return False
        return True

    async def ensure_partitions(self, now: float) -> list[str]:
        """Makes the partitions of yesterday, today and DAYS_AHEAD days ahead that are
        missing; returns the names made. A day whose ids already sit in the DEFAULT partition
        is left to it (logged): moving rows is not done behind the operator's back."""
        first = pg_schema.day_start(now) - pg_schema.DAY
        days = [first + n * pg_schema.DAY for n in range(DAYS_AHEAD + 2)]
        made: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
            existing = {
                r["relname"]
                for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY($1::text[])",
                    [table for table, _ in pg_schema.PARTITIONED],
                )
            }
            for day in days:
                for table, prefix in pg_schema.PARTITIONED:
                    name, ddl = pg_schema.partition_ddl(table, prefix, day)
                    if name in existing:
                        continue
                    try:
                        async with conn.transaction():  # a savepoint: one refusal alone
                            await conn.execute(ddl)
                    except asyncpg.CheckViolationError as exc:
                        log.warning("partition %s not made: %s", name, exc)
                    else:
                        made.append(name)
        return made

    async def _keep_partitions(self, now: Callable[[], float]) -> None:
        while True:
            await asyncio.sleep(PARTITION_CHECK_INTERVAL)
            try:
                made = await self.ensure_partitions(now())
            except Exception:
                log.exception("could not make the coming days' partitions; trying again later")
            else:
                if made:
                    log.info("made partitions %s", ", ".join(made))


async def migrate(settings: PostgresSettings, *, now: float) -> int:
    """``convoyd migrate``: applies pending migrations and makes the coming days' partitions;
    returns how many migrations ran."""
    db = PgConnections(dataclasses.replace(settings, pool_size=2))
    await db.open(now=lambda: now, maintain=False)
    await db.close()
    return db.migrations_applied


async def apply_migrations(pool: asyncpg.Pool) -> int:
    """Applies the pending migrations under an advisory lock; returns how many ran."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS convoyd_migrations ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM convoyd_migrations")
            )
            if version > pg_schema.LATEST:
                raise StartupError(
                    f"the database is at schema version {version}, newer than this convoyd"
                    f" ({pg_schema.LATEST}): run a newer convoyd"
                )
            for number in range(version + 1, pg_schema.LATEST + 1):
                async with conn.transaction():
                    for statement in pg_schema.MIGRATIONS[number - 1]:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO convoyd_migrations (version) VALUES ($1)", number
                    )
                log.info("database migrated to schema version %d", number)
            return pg_schema.LATEST - version
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column lists: the arrays of an ``unnest($1::t[], $2::t[], ...)``
    statement, which writes a whole batch in one round trip."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]
