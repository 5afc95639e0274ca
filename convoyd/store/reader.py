"""The read connection: one thread runs each read whole, in a read transaction begun after it.

Why not aiosqlite's cursors: ``execute`` and ``fetchall`` are two hops to its thread, and
between them the statement stays open, and with it the connection's read transaction. Every
other read sent to that shared connection meanwhile ran inside that transaction and saw its
snapshot, older than commits its caller had already been told about: a just-accepted event
read back as NOT_FOUND. Here a read is a job (a function of a sqlite3 connection that returns
rows, never a cursor). The thread takes the jobs waiting, begins ONE read transaction, runs
them and ends it before taking more: every job was asked for before its snapshot was taken,
so it sees every commit that completed before the call, and a read of several statements
sees one snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from convoyd.errors import UnavailableError
from convoyd.store.writer import connect, settle

T = TypeVar("T")
log = logging.getLogger(__name__)

_STOP = object()


class Reader:
    def __init__(self, path: Path, *, max_batch: int = 64) -> None:
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> None:
        conn = connect(self._path)
        conn.execute("PRAGMA query_only = ON")  # writes belong to the writer alone
        self._closing = False
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="convoyd-store-reader", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Finishes the reads asked for so far, then closes the connection."""
        if self._thread is None:
            return
        self._closing = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``job`` in a read transaction that begins after this call."""
        if self._thread is None or self._closing:
            raise UnavailableError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    def _run(self, conn: sqlite3.Connection) -> None:
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
            by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            for future, loop, ok, value in _read_all(conn, batch):
                by_loop.setdefault(loop, []).append((future, ok, value))
            # One wake-up of each event loop per batch, not one per read.
            for loop, items in by_loop.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    loop.call_soon_threadsafe(settle, items)
        conn.close()


def _read_all(conn: sqlite3.Connection, batch: list[Any]) -> list[tuple[Any, ...]]:
    """Runs the batch's jobs in one read transaction, begun after they were all asked for.

    Each statement in the reader's thread hands the GIL back and forth (up to the 5 ms switch
    interval beside a busy event loop, docs/architecture.md §9): one BEGIN and ROLLBACK a
    batch, not a job.
    """
    results: list[tuple[Any, ...]] = []
    try:
        conn.execute("BEGIN")
        for job, future, loop in batch:
            try:
                results.append((future, loop, True, job(conn)))
            except Exception as exc:
                results.append((future, loop, False, _translate(exc)))
    except sqlite3.Error as exc:  # BEGIN itself failed: no job ran
        results = [(future, loop, False, _translate(exc)) for _, future, loop in batch]
    finally:
        # Ends the snapshot (and resets any statement a job left open) before the next batch.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the thread must live on: every read waits on it
                log.error("store read transaction did not end: %s", exc)
    return results


def _translate(exc: Exception) -> Exception:
    code = getattr(exc, "sqlite_errorcode", None)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR):
        return UnavailableError(f"the database is unavailable ({exc})")
    return exc
