"""The checkpointer: copies the WAL into the database file from a thread of its own.

By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages, on the
connection that committed: here the one writer, so every few megabytes of writes one group
commit also copied them to the database file and waited for its fsync, and the ingests in that
group waited with it. Retention doubles the pages written (a delete touches as many pages as
the insert did), and with them those stalls. So the writer only checkpoints past a high safety
mark (writer.py ``WRITER_AUTOCHECKPOINT``, should this thread fall behind), and this thread runs a
PASSIVE checkpoint every ``EVERY`` seconds: PASSIVE never waits for the writer or the reader,
it copies what it can while they go on, and the writer restarts the WAL from its beginning at
its next transaction once a checkpoint has caught up. Durability is unchanged: a commit is
durable once it is in the WAL (synchronous=FULL); a checkpoint only moves it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

from convoyd.store.writer import connect

log = logging.getLogger(__name__)

EVERY = 0.25  # seconds between checkpoints


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``every`` seconds until stopped."""

    def __init__(self, path: Path, *, every: float = EVERY) -> None:
        self._path = path
        self._every = every
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        conn = connect(self._path)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(conn,), name="convoyd-store-checkpointer", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _loop(self, conn: sqlite3.Connection) -> None:
        try:
            while not self._stopping.wait(self._every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the writer's own checkpoint is the safety net
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
