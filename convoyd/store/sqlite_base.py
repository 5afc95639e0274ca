"""The SQLite store's connections: migrations, the single writer, and the read connection.

Read-your-writes: the writer settles a call only after its COMMIT, and every read runs in a
read transaction of its own that begins after the read was asked for (reader.py), so a read
sees every write whose call had returned before it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from convoyd.errors import UnavailableError
from convoyd.store.migrations import LATEST, MIGRATIONS
from convoyd.store.reader import Reader
from convoyd.store.writer import Writer, connect

DB_FILE = "convoyd.db"


def apply_migrations(path: Path) -> int:
    """Brings the schema to the latest version; returns how many migrations ran."""
    conn = connect(path)
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


class SqliteBase:
    """Owns the connections; the tables' methods live in the classes built on it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILE
        self._writer = Writer(self.path)
        self._reader = Reader(self.path)

    async def open(self) -> None:
        await asyncio.to_thread(apply_migrations, self.path)
        self._writer.start()
        self._reader.start()

    async def close(self) -> None:
        await self._writer.stop()
        await self._reader.stop()

    async def _fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of one statement, read in a transaction of its own."""
        return await self._reader.fetchall(sql, params)
