"""Endpoints with their secrets, and control-plane tokens, in PostgreSQL: the PgEndpointTables
object, and the endpoint reads and writes other transactions reuse.

Rows are the SQLite store's (store/codec.py reads and writes both); what differs is how a
read stays consistent. Under READ COMMITTED each statement has its own snapshot, so a plain
read of an endpoint and its secrets is one statement (a join), and a read for update locks
the endpoint row first and reads the secrets after the lock is held: every writer of an
endpoint's secrets holds that lock, so the secrets read then are the ones that go with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from convoyd.core.model import Endpoint, EndpointStatus, Secret
from convoyd.errors import FailedPreconditionError, NotFoundError
from convoyd.store import codec, pg_health
from convoyd.store.base import ApiToken, EndpointEdit, Guard
from convoyd.store.pg_connections import PgConnections, columns
from convoyd.store.where import Where

# The PostgreSQL type of each secret column, for the arrays of one unnest() insert.
_SECRET_TYPES = {
    "id": "text",
    "endpoint_id": "text",
    "value": "text",
    "created_at": "bigint",
    "expires_at": "bigint",
}

_INSERT_ENDPOINT = (
    f"INSERT INTO endpoints ({codec.ENDPOINT_COLUMNS})"  # noqa: S608 - constant columns
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(codec.ENDPOINT_NAMES) + 1))})"
)
_UPDATE_ENDPOINT = (
    "UPDATE endpoints SET "  # noqa: S608 - constant columns
    + ", ".join(f"{c} = ${n}" for n, c in enumerate(codec.ENDPOINT_NAMES, 1) if c != "id")
    + f" WHERE id = ${codec.ENDPOINT_NAMES.index('id') + 1}"
)
_INSERT_SECRETS = (
    f"INSERT INTO endpoint_secrets ({codec.SECRET_COLUMNS}) SELECT * FROM unnest("  # noqa: S608 - constant columns
    + ", ".join(f"${n}::{_SECRET_TYPES[c]}[]" for n, c in enumerate(codec.SECRET_NAMES, 1))
    + ")"
)
_SELECT_SECRETS = (
    f"SELECT {codec.SECRET_COLUMNS} FROM endpoint_secrets WHERE endpoint_id = $1"  # noqa: S608 - constant columns
    " ORDER BY created_at DESC, id DESC"
)
_LOCK_ENDPOINT = f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1 FOR UPDATE"  # noqa: S608 - constant columns

# A listing with its secrets in one statement (one snapshot): the endpoints chosen (the
# {where} and {limit} of the caller), then one row per secret, or one row of NULLs for an
# endpoint without any. Secret columns are renamed, their names clashing with the endpoint's.
_SECRET_ALIASES = {c: f"secret_{c}" for c in codec.SECRET_NAMES}
_WITH_SECRETS = (
    "WITH e AS (SELECT "  # noqa: S608 - constant columns; the caller's clauses bind values
    + codec.ENDPOINT_COLUMNS
    + " FROM endpoints {where} ORDER BY id DESC LIMIT {limit})"
    + " SELECT e.*, "
    + ", ".join(f"s.{c} AS {a}" for c, a in _SECRET_ALIASES.items())
    + " FROM e LEFT JOIN endpoint_secrets s ON s.endpoint_id = e.id"
    + " ORDER BY e.id DESC, s.created_at DESC, s.id DESC"
)

_GET_WITH_SECRETS = _WITH_SECRETS.format(where="WHERE id = $1", limit="1")

# delete_endpoint's statements, in this order, each with a snapshot of its own (READ COMMITTED).
# Deleting the endpoint row cascades to its secrets, breaker and deliveries; attempts have no
# foreign key (pg_schema.py), so those of its deliveries are deleted before, found through
# deliveries_endpoint and each attempts partition's primary key. First the endpoint is locked,
# which holds off new deliveries of it (an ingest's FOR KEY SHARE, a delivery's foreign key
# check); then its deliveries, which waits for every record() in flight that has updated one
# (record writes an attempt only for a delivery it has locked so) and makes the later ones find
# the delivery gone. The attempts delete that follows thus sees every attempt of them.
_LOCK_ENDPOINT_ROW = "SELECT 1 FROM endpoints WHERE id = $1 FOR UPDATE"
_LOCK_ENDPOINT_DELIVERIES = (
    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE endpoint_id = $1 FOR UPDATE) AS locked"
)
_DELETE_ENDPOINT_ATTEMPTS = (
    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE endpoint_id = $1)"
)
_TOKEN_COLUMNS = "id, name, token_hash, created_at, revoked_at"  # noqa: S105 - column names


def _endpoint_args(ep: Endpoint) -> list[Any]:
    values = codec.endpoint_values(ep)
    return [values[c] for c in codec.ENDPOINT_NAMES]


def _endpoints_with_secrets(rows: Sequence[asyncpg.Record]) -> list[Endpoint]:
    """The endpoints of _WITH_SECRETS rows, in their order (newest first)."""
    grouped: dict[str, tuple[asyncpg.Record, list[Secret]]] = {}
    for row in rows:
        _, secrets = grouped.setdefault(row["id"], (row, []))
        if row["secret_id"] is not None:
            secrets.append(codec.secret_from_row({c: row[a] for c, a in _SECRET_ALIASES.items()}))
    return [codec.endpoint_from_row(row, tuple(secrets)) for row, secrets in grouped.values()]


def _only(rows: Sequence[asyncpg.Record], endpoint_id: str) -> Endpoint:
    """The one endpoint of _GET_WITH_SECRETS rows; NotFoundError if there is none."""
    found = _endpoints_with_secrets(rows)
    if not found:
        raise NotFoundError(f"endpoint {endpoint_id} not found")
    return found[0]


async def endpoints_where(db: PgConnections, where: str, params: Sequence[Any]) -> list[Endpoint]:
    """Every endpoint matching ``where`` (a constant clause with $1.. for ``params``), with
    its secrets: what the cluster loads for the shards a node takes."""
    sql = _WITH_SECRETS.format(where=where, limit="ALL")
    return _endpoints_with_secrets(await db.fetch(sql, *params))


async def load_secrets(conn: asyncpg.Connection, endpoint_id: str) -> tuple[Secret, ...]:
    """The endpoint's secrets, newest first (ties by id, descending), as SQLite orders them."""
    rows = await conn.fetch(_SELECT_SECRETS, endpoint_id)
    return tuple(codec.secret_from_row(r) for r in rows)


async def read_endpoint(
    conn: asyncpg.Connection, endpoint_id: str, *, for_update: bool
) -> Endpoint:
    """The endpoint with its secrets, on ``conn`` inside a transaction; NotFoundError.

    ``for_update``: the endpoint row is locked until the transaction ends, and the secrets
    are read after the lock is taken (a statement of their own, so it sees what the previous
    holder of the lock committed)."""
    if for_update:
        row = await conn.fetchrow(_LOCK_ENDPOINT, endpoint_id)
        if row is None:
            raise NotFoundError(f"endpoint {endpoint_id} not found")
        return codec.endpoint_from_row(row, await load_secrets(conn, endpoint_id))
    return _only(await conn.fetch(_GET_WITH_SECRETS, endpoint_id), endpoint_id)


async def write_endpoint(conn: asyncpg.Connection, endpoint: Endpoint, *, insert: bool) -> None:
    """Inserts or updates the endpoint row and replaces its secrets with ``endpoint.secrets``,
    on ``conn`` inside a transaction (an update: with the row locked by read_endpoint)."""
    await conn.execute(_INSERT_ENDPOINT if insert else _UPDATE_ENDPOINT, *_endpoint_args(endpoint))
    # Secrets are few per endpoint (at most ~10): replacing them all is simpler than a diff.
    if not insert:
        await conn.execute("DELETE FROM endpoint_secrets WHERE endpoint_id = $1", endpoint.id)
    if endpoint.secrets:
        rows = [codec.secret_values(endpoint.id, s) for s in endpoint.secrets]
        await conn.execute(
            _INSERT_SECRETS,
            *columns([[r[c] for c in codec.SECRET_NAMES] for r in rows], len(codec.SECRET_NAMES)),
        )


async def _check_guard(conn: asyncpg.Connection, guard: Guard, endpoint_id: str) -> None:
    """FailedPreconditionError unless the guard's node holds the endpoint's shard at its
    epoch; the lease row stays share-locked until the transaction ends."""
    held = guard.fence(endpoint_id)
    ok = held is not None and await conn.fetchval(
        "SELECT 1 FROM cluster_shards WHERE shard = $1 AND epoch = $2 AND node_id = $3 FOR SHARE",
        held[0],
        held[1],
        guard.node_id,
    )
    if not ok:
        raise FailedPreconditionError(
            f"endpoint {endpoint_id}: this node no longer holds its shard; nothing was changed"
        )


class PgEndpointTables:
    """The endpoints, endpoint_secrets and api_tokens tables."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        await self._db.transaction(lambda conn: write_endpoint(conn, endpoint, insert=True))

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return _only(await self._db.fetch(_GET_WITH_SECRETS, endpoint_id), endpoint_id)

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
        sql = _WITH_SECRETS.format(where=where.numbered(1), limit=f"${len(where.params) + 1}")
        return _endpoints_with_secrets(await self._db.fetch(sql, *where.params, limit))

    async def modify_endpoint(
        self, endpoint_id: str, change: EndpointEdit, *, guard: Guard | None = None
    ) -> Endpoint:
        async def job(conn: asyncpg.Connection) -> Endpoint:
            current = await read_endpoint(conn, endpoint_id, for_update=True)
            if guard is not None:
                await _check_guard(conn, guard, endpoint_id)
            updated = change(current)
            await write_endpoint(conn, updated, insert=False)
            return updated

        return await self._db.transaction(job)

    async def delete_endpoint(self, endpoint_id: str) -> None:
        # A transaction, so that a deadlock with a delivery's update is retried.
        async def job(conn: asyncpg.Connection) -> None:
            if await conn.fetchval(_LOCK_ENDPOINT_ROW, endpoint_id) is None:
                raise NotFoundError(f"endpoint {endpoint_id} not found")
            await conn.execute(_LOCK_ENDPOINT_DELIVERIES, endpoint_id)
            await conn.execute(_DELETE_ENDPOINT_ATTEMPTS, endpoint_id)
            await conn.execute(pg_health.DELETE_ENDPOINT, endpoint_id)  # no foreign key there
            await conn.execute("DELETE FROM endpoints WHERE id = $1", endpoint_id)

        await self._db.transaction(job)

    # -- control-plane tokens -------------------------------------------------------------------

    async def insert_api_token(self, token: ApiToken) -> None:
        # As SQLite: a token is stored as new (revoked_at is not written).
        await self._db.execute(
            "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            token.id,
            token.name,
            token.token_hash,
            codec.to_us(token.created_at),
        )

    async def list_api_tokens(self) -> list[ApiToken]:
        rows = await self._db.fetch(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY id")  # noqa: S608 - constant columns
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
