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

import logging
import sqlite3
from pathlib import Path
from typing import TypeVar

from convoyd.errors import ResourceExhaustedError, UnavailableError
from convoyd.store.jobs import Job, JobThread, Result

T = TypeVar("T")
log = logging.getLogger(__name__)

# Pages of WAL past which the writer checkpoints in its own commit all the same (about 16 MiB
# of 4 KiB pages): reached only if the checkpointer thread (checkpointer.py) stops keeping up.
WRITER_AUTOCHECKPOINT = 4_000


def connect(path: Path, *, busy_timeout_ms: int = 5000, new: bool = False) -> sqlite3.Connection:
    """A connection with convoyd's pragmas: WAL, FULL sync, foreign keys, a busy timeout,
    and rows that are read by column name (``sqlite3.Row``). ``new``: the file is empty, and
    is made with ``auto_vacuum = INCREMENTAL`` (possible only before WAL mode is set).

    synchronous=FULL with WAL makes every commit durable across power loss, which is what
    "accepted = durable" (docs/architecture.md §2, the delivery promise) needs; group commit
    keeps its fsync cost per batch.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if new:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
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


class Writer(JobThread):
    """The one thread that writes: each batch of jobs is one group transaction."""

    name = "convoyd-store-writer"

    def __init__(self, path: Path, *, max_batch: int = 1000) -> None:
        super().__init__(max_batch=max_batch)
        self._path = path

    def start(self) -> None:
        conn = connect(self._path)
        # The checkpointer thread copies the WAL back (checkpointer.py); this connection does
        # so in a commit only past a high mark, should that thread fall behind.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
        self._start(conn)

    def _execute(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
        results: list[Result] = []
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
        return results
