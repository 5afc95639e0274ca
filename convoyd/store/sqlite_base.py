"""The SQLite store's connections: migrations, the single writer, and the read connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiosqlite

from convoyd.errors import UnavailableError
from convoyd.store.migrations import LATEST, MIGRATIONS
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
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        await asyncio.to_thread(apply_migrations, self.path)
        self._writer.start()
        reader = await aiosqlite.connect(self.path)
        await reader.execute("PRAGMA busy_timeout = 5000")
        await reader.execute("PRAGMA foreign_keys = ON")
        self._reader = reader

    async def close(self) -> None:
        await self._writer.stop()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    async def _fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self._reader is None:
            raise UnavailableError("the store is closed")
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())
