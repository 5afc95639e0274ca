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

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from convoyd.errors import UnavailableError
from convoyd.store.jobs import Job, JobThread, Result
from convoyd.store.writer import connect

T = TypeVar("T")
log = logging.getLogger(__name__)


class Reader(JobThread):
    """The one thread that reads: each batch of jobs is one read transaction."""

    name = "convoyd-store-reader"

    def __init__(self, path: Path, *, max_batch: int = 64) -> None:
        super().__init__(max_batch=max_batch)
        self._path = path

    def start(self) -> None:
        conn = connect(self._path)
        conn.execute("PRAGMA query_only = ON")  # writes belong to the writer alone
        self._start(conn)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    def _execute(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
        return _read_all(conn, batch)


def _read_all(conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
    """Runs the batch's jobs in one read transaction, begun after they were all asked for.

    Each statement in the reader's thread hands the GIL back and forth (up to the 5 ms switch
    interval beside a busy event loop, docs/architecture.md §9): one BEGIN and ROLLBACK a
    batch, not a job.
    """
    results: list[Result] = []
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
