"""The SQLite store's connections: migrations, the single writer and the read connection.

Read-your-writes: the writer settles a call only after its COMMIT, and every read runs in a
read transaction of its own that begins after the read was asked for (reader.py), so a read
sees every write whose call had returned before it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from convoyd.errors import UnavailableError
from convoyd.store.checkpointer import Checkpointer
from convoyd.store.migrations import LATEST, MIGRATIONS
from convoyd.store.reader import Reader
from convoyd.store.writer import Writer, connect

T = TypeVar("T")

DB_FILE = "convoyd.db"


def apply_migrations(path: Path) -> int:
    """Brings the schema to the latest version; returns how many migrations ran."""
    # A database made now lets retention give freed pages back to the file system
    # (sqlite_retention.py); one made by an older convoyd keeps reusing them instead.
    conn = connect(path, new=not path.exists() or path.stat().st_size == 0)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            raise UnavailableError(
                f"{path} has schema version {version}, newer than this convoyd knows ({LATEST});"
                " run a newer convoyd or restore a backup"
            )
        for number in range(version + 1, LATEST + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return LATEST - version
    finally:
        conn.close()


class SqliteConnections:
    """The writer and the reader of one database file, shared by the table objects."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILE
        self._writer = Writer(self.path)
        self._reader = Reader(self.path)
        self._checkpointer = Checkpointer(self.path)

    async def open(self) -> None:
        await asyncio.to_thread(apply_migrations, self.path)
        self._writer.start()
        self._reader.start()
        self._checkpointer.start()

    async def close(self) -> None:
        await self._checkpointer.stop()
        await self._writer.stop()
        await self._reader.stop()

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``job`` on the writer, in the next group transaction (writer.py)."""
        return await self._writer.run(job)

    async def read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``job`` on the reader, in a read transaction begun after this call."""
        return await self._reader.run(job)

    async def fetchall(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """The rows of one statement, read in a transaction of its own."""
        return await self._reader.fetchall(sql, params)
