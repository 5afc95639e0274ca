"""The single writer: one thread owns the write connection and commits jobs in groups.

Why not aiosqlite for writes: it hops to its thread once per statement (~250 µs each) and two
coroutines opening transactions on one connection interleave and fail (docs/architecture.md
§9). Here every write is a job (a plain function of a sqlite3 connection) put on a queue; the
thread takes all jobs waiting, runs them in ONE transaction (each under its own SAVEPOINT, so a
failing job rolls back alone) and commits once. While one commit's fsync runs, the next jobs
gather: group commit comes for free, with no timer, and `synchronous=FULL` costs one fsync per
group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from convoyd.errors import ResourceExhaustedError, UnavailableError

T = TypeVar("T")
log = logging.getLogger(__name__)

_STOP = object()


def connect(path: Path, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A connection with convoyd's pragmas: WAL, FULL sync, foreign keys, a busy timeout,
    and rows that are read by column name (``sqlite3.Row``).

    synchronous=FULL with WAL makes every commit durable across power loss, which is what
    "accepted = durable" (docs/architecture.md §2, the delivery promise) needs; group commit
    keeps its fsync cost per batch.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def translate(exc: sqlite3.Error) -> Exception:
    """sqlite errors that mean "try later" as convoyd errors; others unchanged."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return ResourceExhaustedError("the database disk is full; nothing was stored")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR):
        return UnavailableError(f"the database is unavailable ({exc}); nothing was stored")
    return exc


class Writer:
    def __init__(self, path: Path, *, max_batch: int = 1000) -> None:
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._closing = False

    def start(self) -> None:
        self._conn = connect(self._path)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="convoyd-store-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Finishes the queued jobs, then closes the connection."""
        if self._thread is None:
            return
        self._closing = True  # a job put behind _STOP would never be run
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``job`` in the next group transaction and returns what it returned."""
        if self._thread is None or self._closing:
            raise UnavailableError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    def _run(self) -> None:
        assert self._conn is not None
        conn = self._conn
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future, loop in batch:
                conn.execute("SAVEPOINT job")
                try:
                    value = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    error = translate(exc) if isinstance(exc, sqlite3.Error) else exc
                    results.append((future, loop, False, error))
                else:
                    conn.execute("RELEASE job")
                    results.append((future, loop, True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store commit failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = translate(exc)
            results = [(future, loop, False, error) for _, future, loop in batch]
        # One wake-up of the event loop per group, not one per job.
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for future, loop, ok, value in results:
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, items in by_loop.items():
            # A closed loop (RuntimeError) means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, items)


def settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Resolves a batch's futures (ok: the value is the result, else the exception)."""
    for future, ok, value in items:
        if future.done():  # the caller was cancelled; the write happened all the same
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
