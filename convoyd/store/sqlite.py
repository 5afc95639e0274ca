"""The embedded SQLite store: WAL, one writer thread with group commit, aiosqlite for reads."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiosqlite

from convoyd.core.model import Endpoint, EndpointStatus, Secret
from convoyd.errors import NotFoundError, UnavailableError
from convoyd.store import codec
from convoyd.store.base import ApiToken, EndpointChange
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


def _load_secrets(conn: sqlite3.Connection, endpoint_id: str) -> tuple[Secret, ...]:
    rows = conn.execute(
        f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets WHERE endpoint_id = ?"  # noqa: S608 - constant column list
        " ORDER BY created_at DESC, id DESC",
        (endpoint_id,),
    ).fetchall()
    return tuple(codec.secret_from_row(r) for r in rows)


def _read_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> Endpoint:
    row = conn.execute(
        f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?",  # noqa: S608 - constant column list
        (endpoint_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"endpoint {endpoint_id} not found")
    return codec.endpoint_from_row(row, _load_secrets(conn, endpoint_id))


def _write_endpoint(conn: sqlite3.Connection, ep: Endpoint, *, insert: bool) -> None:
    row = codec.endpoint_to_row(ep)
    if insert:
        conn.execute(
            f"INSERT INTO endpoints ({codec.ENDPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constant column list
            row,
        )
    else:
        conn.execute(
            "UPDATE endpoints SET owner_id=?, name=?, url=?, status=?, status_reason=?,"
            " status_changed_at=?, spec=?, created_at=?, updated_at=? WHERE id=?",
            (*row[1:], ep.id),
        )
    # Secrets are few per endpoint (at most ~10): replacing them all is simpler than a diff.
    conn.execute("DELETE FROM endpoint_secrets WHERE endpoint_id = ?", (ep.id,))
    conn.executemany(
        f"INSERT INTO endpoint_secrets ({codec.SECRET_COLUMNS}) VALUES (?,?,?,?,?)",  # noqa: S608
        [codec.secret_to_row(ep.id, s) for s in ep.secrets],
    )


class SqliteStore:
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

    async def _endpoints_from_rows(self, rows: list[Any]) -> list[Endpoint]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        secret_rows = await self._fetchall(
            f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets WHERE endpoint_id IN ({marks})"  # noqa: S608 - placeholders only
            " ORDER BY created_at DESC, id DESC",
            tuple(ids),
        )
        by_endpoint: dict[str, list[Secret]] = defaultdict(list)
        for r in secret_rows:
            by_endpoint[r[1]].append(codec.secret_from_row(r))
        return [codec.endpoint_from_row(r, tuple(by_endpoint[r[0]])) for r in rows]

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        await self._writer.run(lambda conn: _write_endpoint(conn, endpoint, insert=True))

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        rows = await self._fetchall(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?",  # noqa: S608 - constant column list
            (endpoint_id,),
        )
        if not rows:
            raise NotFoundError(f"endpoint {endpoint_id} not found")
        return (await self._endpoints_from_rows(rows))[0]

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        before_id: str = "",
        limit: int = 50,
    ) -> list[Endpoint]:
        where, params = [], []
        if owner_id:
            where.append("owner_id = ?")
            params.append(owner_id)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if before_id:
            where.append("id < ?")
            params.append(before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetchall(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints {clause} ORDER BY id DESC LIMIT ?",  # noqa: S608 - clauses are constants, values are bound
            (*params, limit),
        )
        return await self._endpoints_from_rows(rows)

    async def modify_endpoint(self, endpoint_id: str, change: EndpointChange) -> Endpoint:
        def job(conn: sqlite3.Connection) -> Endpoint:
            updated = change(_read_endpoint(conn, endpoint_id))
            _write_endpoint(conn, updated, insert=False)
            return updated

        return await self._writer.run(job)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,)).rowcount == 0:
                raise NotFoundError(f"endpoint {endpoint_id} not found")

        await self._writer.run(job)

    async def insert_api_token(self, token: ApiToken) -> None:
        row = (token.id, token.name, token.token_hash, codec.to_us(token.created_at))
        await self._writer.run(
            lambda conn: conn.execute(
                "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES (?,?,?,?)", row
            )
        )

    async def list_api_tokens(self) -> list[ApiToken]:
        rows = await self._fetchall(
            "SELECT id, name, token_hash, created_at, revoked_at FROM api_tokens ORDER BY id"
        )
        return [
            ApiToken(
                id=r[0],
                name=r[1],
                token_hash=r[2],
                created_at=codec.from_us(r[3]),
                revoked_at=codec.opt_from_us(r[4]),
            )
            for r in rows
        ]
