"""Endpoints with their secrets, and control-plane tokens: SQL and the EndpointTables object."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from convoyd.core.model import Endpoint, EndpointStatus, Secret
from convoyd.errors import NotFoundError
from convoyd.store import codec
from convoyd.store.base import ApiToken, EndpointEdit
from convoyd.store.connections import SqliteConnections
from convoyd.store.where import Where

_INSERT_ENDPOINT = (
    f"INSERT INTO endpoints ({codec.ENDPOINT_COLUMNS})"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(':' + c for c in codec.ENDPOINT_NAMES)})"
)
_UPDATE_ENDPOINT = (
    "UPDATE endpoints SET"  # noqa: S608 - constant columns
    f" {', '.join(f'{c} = :{c}' for c in codec.ENDPOINT_NAMES if c != 'id')} WHERE id = :id"
)
_INSERT_SECRET = (
    f"INSERT INTO endpoint_secrets ({codec.SECRET_COLUMNS})"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(':' + c for c in codec.SECRET_NAMES)})"
)


def load_secrets(conn: sqlite3.Connection, endpoint_id: str) -> tuple[Secret, ...]:
    rows = conn.execute(
        f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets WHERE endpoint_id = ?"  # noqa: S608 - constant column list
        " ORDER BY created_at DESC, id DESC",
        (endpoint_id,),
    ).fetchall()
    return tuple(codec.secret_from_row(r) for r in rows)


def read_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> Endpoint:
    row = conn.execute(
        f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?",  # noqa: S608 - constant column list
        (endpoint_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"endpoint {endpoint_id} not found")
    return codec.endpoint_from_row(row, load_secrets(conn, endpoint_id))


def read_endpoints(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Endpoint]:
    """The endpoints ``sql`` selects (codec.ENDPOINT_COLUMNS), with their secrets, on ``conn``:
    in one transaction, so each endpoint comes with the secrets it had then."""
    rows = conn.execute(sql, params).fetchall()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    by_endpoint: dict[str, list[Secret]] = defaultdict(list)
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        where = Where().among("endpoint_id", chunk)
        secret_rows = conn.execute(
            f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets {where.sql()}"  # noqa: S608 - constant clauses, bound values
            " ORDER BY created_at DESC, id DESC",
            where.params,
        ).fetchall()
        for r in secret_rows:
            by_endpoint[r["endpoint_id"]].append(codec.secret_from_row(r))
    return [codec.endpoint_from_row(r, tuple(by_endpoint[r["id"]])) for r in rows]


def write_endpoint(conn: sqlite3.Connection, ep: Endpoint, *, insert: bool) -> None:
    conn.execute(_INSERT_ENDPOINT if insert else _UPDATE_ENDPOINT, codec.endpoint_values(ep))
    # Secrets are few per endpoint (at most ~10): replacing them all is simpler than a diff.
    conn.execute("DELETE FROM endpoint_secrets WHERE endpoint_id = ?", (ep.id,))
    conn.executemany(_INSERT_SECRET, [codec.secret_values(ep.id, s) for s in ep.secrets])


class EndpointTables:
    """The endpoints, endpoint_secrets and api_tokens tables."""

    def __init__(self, db: SqliteConnections) -> None:
        self._db = db

    async def _endpoints(self, sql: str, params: Sequence[Any]) -> list[Endpoint]:
        return await self._db.read(lambda conn: read_endpoints(conn, sql, params))

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        await self._db.write(lambda conn: write_endpoint(conn, endpoint, insert=True))

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        found = await self._endpoints(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?",  # noqa: S608 - constant column list
            (endpoint_id,),
        )
        if not found:
            raise NotFoundError(f"endpoint {endpoint_id} not found")
        return found[0]

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: EndpointStatus | None = None,
        before_id: str = "",
        limit: int = 50,
    ) -> list[Endpoint]:
        where = Where()
        if owner_id:
            where.add("owner_id = ?", owner_id)
        if status is not None:
            where.add("status = ?", status.value)
        if before_id:
            where.add("id < ?", before_id)
        return await self._endpoints(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints {where.sql()}"  # noqa: S608 - constant clauses, bound values
            " ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )

    async def modify_endpoint(self, endpoint_id: str, change: EndpointEdit) -> Endpoint:
        def job(conn: sqlite3.Connection) -> Endpoint:
            updated = change(read_endpoint(conn, endpoint_id))
            write_endpoint(conn, updated, insert=False)
            return updated

        return await self._db.write(job)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        def job(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,)).rowcount == 0:
                raise NotFoundError(f"endpoint {endpoint_id} not found")

        await self._db.write(job)

    # -- control-plane tokens -------------------------------------------------------------------

    async def insert_api_token(self, token: ApiToken) -> None:
        values = {
            "id": token.id,
            "name": token.name,
            "token_hash": token.token_hash,
            "created_at": codec.to_us(token.created_at),
        }
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO api_tokens (id, name, token_hash, created_at)"
                " VALUES (:id, :name, :token_hash, :created_at)",
                values,
            )
        )

    async def list_api_tokens(self) -> list[ApiToken]:
        rows = await self._db.fetchall(
            "SELECT id, name, token_hash, created_at, revoked_at FROM api_tokens ORDER BY id"
        )
        return [
            ApiToken(
                id=r["id"],
                name=r["name"],
                token_hash=r["token_hash"],
                created_at=codec.from_us(r["created_at"]),
                revoked_at=codec.opt_from_us(r["revoked_at"]),
            )
            for r in rows
        ]
