"""The embedded SQLite store: WAL, one writer thread with group commit, aiosqlite for reads."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from convoyd.core.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    Event,
    PortalLink,
    PortalSession,
    Secret,
)
from convoyd.errors import NotFoundError, UnavailableError
from convoyd.store import codec, portal_sql, records
from convoyd.store.base import (
    ApiToken,
    AttemptRecord,
    DeliveryChange,
    DeliveryQuery,
    EndpointChange,
    EventQuery,
    IngestReader,
    IngestWrite,
    Payload,
    PortalLinkChange,
    PortalOpen,
    StatusCounts,
)
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

    # -- events ---------------------------------------------------------------------------

    async def ingest(self, build: Callable[[IngestReader], list[IngestWrite]]) -> list[IngestWrite]:
        def job(conn: sqlite3.Connection) -> list[IngestWrite]:
            writes = build(_IngestReader(conn))
            fresh = [w for w in writes if not w.replay]
            conn.executemany(
                f"INSERT INTO events ({records.EVENT_COLUMNS}, payload_hash)"  # noqa: S608 - constant columns
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                [_event_insert_row(w) for w in fresh],
            )
            conn.executemany(
                f"INSERT INTO deliveries ({records.DELIVERY_COLUMNS})"  # noqa: S608 - constant columns
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [records.delivery_to_row(d) for w in fresh for d in w.deliveries],
            )
            return writes

        return await self._writer.run(job)

    async def get_event(self, event_id: str) -> Event:
        rows = await self._fetchall(
            f"SELECT {records.EVENT_COLUMNS} FROM events WHERE id = ?",  # noqa: S608 - constant columns
            (event_id,),
        )
        if not rows:
            raise NotFoundError(f"event {event_id} not found")
        return records.event_from_row(rows[0])

    async def list_events(self, query: EventQuery, *, before_id: str, limit: int) -> list[Event]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.event_type:
            clauses.append("event_type = ?")
            params.append(query.event_type)
        if query.owner_id:
            clauses.append("owner_id = ?")
            params.append(query.owner_id)
        if query.endpoint_id:
            clauses.append("id IN (SELECT event_id FROM deliveries WHERE endpoint_id = ?)")
            params.append(query.endpoint_id)
        if query.created_after is not None:
            clauses.append("created_at >= ?")
            params.append(codec.to_us(query.created_after))
        if query.created_before is not None:
            clauses.append("created_at < ?")
            params.append(codec.to_us(query.created_before))
        if before_id:
            clauses.append("id < ?")
            params.append(before_id)
        where = records.Filters(tuple(clauses), tuple(params))
        rows = await self._fetchall(
            f"SELECT {records.EVENT_COLUMNS} FROM events {where.sql()}"  # noqa: S608 - constant clauses, bound values
            " ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )
        return [records.event_from_row(r) for r in rows]

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]:
        out: dict[str, Payload] = {}
        ids = list(dict.fromkeys(event_ids))
        for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            rows = await self._fetchall(
                f"SELECT id, data, headers FROM events WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608 - placeholders only
                tuple(chunk),
            )
            for event_id, data, headers in rows:
                out[event_id] = Payload(data=data, headers=json.loads(headers))
        return out

    # -- deliveries -----------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> Delivery:
        rows = await self._fetchall(
            f"SELECT {records.DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608 - constant columns
            (delivery_id,),
        )
        if not rows:
            raise NotFoundError(f"delivery {delivery_id} not found")
        return records.delivery_from_row(rows[0])

    @staticmethod
    def _delivery_filters(query: DeliveryQuery, before_id: str = "") -> records.Filters:
        return records.delivery_filters(
            event_id=query.event_id,
            endpoint_ids=query.endpoint_ids,
            owner_id=query.owner_id,
            statuses=query.statuses,
            created_after=query.created_after,
            created_before=query.created_before,
            before_id=before_id,
            event_type=query.event_type,
        )

    async def list_deliveries(
        self, query: DeliveryQuery, *, before_id: str, limit: int
    ) -> list[Delivery]:
        where = self._delivery_filters(query, before_id)
        rows = await self._fetchall(
            f"SELECT {records.DELIVERY_COLUMNS} FROM deliveries {where.sql()}"  # noqa: S608 - constant clauses, bound values
            " ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )
        return [records.delivery_from_row(r) for r in rows]

    async def count_deliveries(self, query: DeliveryQuery) -> int:
        where = self._delivery_filters(query)
        rows = await self._fetchall(
            f"SELECT count(*) FROM deliveries {where.sql()}",  # noqa: S608 - constant clauses, bound values
            where.params,
        )
        return int(rows[0][0])

    async def status_counts(self) -> StatusCounts:
        # One statement, both counts from indexes (deliveries_status, endpoints_status).
        rows = await self._fetchall(
            "SELECT 'd', status, count(*) FROM deliveries"
            " WHERE status IN ('scheduled', 'processing', 'retry') GROUP BY status"
            " UNION ALL SELECT 'e', status, count(*) FROM endpoints GROUP BY status"
        )
        deliveries = {status: int(n) for kind, status, n in rows if kind == "d"}
        endpoints = {status: int(n) for kind, status, n in rows if kind == "e"}
        return StatusCounts(deliveries=deliveries, endpoints=endpoints)

    async def list_attempts(
        self, delivery_id: str, *, after_number: int, limit: int
    ) -> list[Attempt]:
        rows = await self._fetchall(
            f"SELECT {records.ATTEMPT_COLUMNS} FROM attempts"  # noqa: S608 - constant columns
            " WHERE delivery_id = ? AND number > ? ORDER BY number LIMIT ?",
            (delivery_id, after_number, limit),
        )
        return [records.attempt_from_row(r) for r in rows]

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]:
        low = -(2**62) if after is None else codec.to_us(after)
        rows = await self._fetchall(
            f"SELECT {records.DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608 - constant columns
            " WHERE status IN ('scheduled', 'processing', 'retry')"
            " AND next_attempt_at > ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id",
            (low, codec.to_us(until)),
        )
        return [records.delivery_from_row(r) for r in rows]

    async def record(self, batch: Sequence[AttemptRecord]) -> None:
        attempts = [records.attempt_to_row(r.attempt) for r in batch if r.attempt is not None]
        updates = [records.delivery_update_row(r.delivery) for r in batch]

        def job(conn: sqlite3.Connection) -> None:
            if attempts:
                conn.executemany(
                    f"INSERT INTO attempts ({records.ATTEMPT_COLUMNS})"  # noqa: S608 - constant columns
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    attempts,
                )
            conn.executemany(records.DELIVERY_UPDATE_SQL, updates)

        await self._writer.run(job)

    async def modify_delivery(self, delivery_id: str, change: DeliveryChange) -> Delivery:
        def job(conn: sqlite3.Connection) -> Delivery:
            delivery = records.read_delivery(conn, delivery_id)
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id} not found")
            endpoint = _read_endpoint(conn, delivery.endpoint_id)
            new_delivery, new_endpoint = change(delivery, endpoint)
            conn.execute(records.DELIVERY_UPDATE_SQL, records.delivery_update_row(new_delivery))
            if new_endpoint != endpoint:
                _write_endpoint(conn, new_endpoint, insert=False)
            return new_delivery

        return await self._writer.run(job)

    async def reschedule_deliveries(
        self, query: DeliveryQuery, *, now: float, reason: str, limit: int
    ) -> list[Delivery]:
        where = self._delivery_filters(query)

        def job(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                f"SELECT {records.DELIVERY_COLUMNS} FROM deliveries {where.sql()}"  # noqa: S608 - constant clauses, bound values
                " ORDER BY id LIMIT ?",
                (*where.params, limit),
            ).fetchall()
            changed = [
                dataclasses.replace(
                    records.delivery_from_row(r),
                    status=DeliveryStatus.SCHEDULED,
                    status_reason=reason,
                    next_attempt_at=now,
                    updated_at=now,
                )
                for r in rows
            ]
            changed = [dataclasses.replace(d, attempt_limit=d.attempt_count + 1) for d in changed]
            conn.executemany(
                records.DELIVERY_UPDATE_SQL, [records.delivery_update_row(d) for d in changed]
            )
            return changed

        return await self._writer.run(job)

    # -- portal links and sessions (SQL in portal_sql.py) -------------------------------------

    async def insert_portal_link(self, link: PortalLink, token_hash: bytes) -> None:
        await self._writer.run(portal_sql.insert_link_job(link, token_hash))

    async def get_portal_link(self, link_id: str) -> PortalLink:
        rows = await self._fetchall(f"{portal_sql.LINK_SELECT} WHERE id = ?", (link_id,))
        if not rows:
            raise NotFoundError(f"portal link {link_id} not found")
        return portal_sql.link_from_row(rows[0])

    async def list_portal_links(
        self, *, owner_id: str, live_at: float | None, before_id: str, limit: int
    ) -> list[PortalLink]:
        where = portal_sql.link_filters(owner_id=owner_id, live_at=live_at, before_id=before_id)
        rows = await self._fetchall(
            f"{portal_sql.LINK_SELECT} {where.sql()} ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )
        return [portal_sql.link_from_row(r) for r in rows]

    async def modify_portal_link(self, link_id: str, change: PortalLinkChange) -> PortalLink:
        result: PortalLink = await self._writer.run(portal_sql.modify_link_job(link_id, change))
        return result

    async def open_portal_session(
        self, token_hash: bytes, session_hash: bytes, open_: PortalOpen
    ) -> tuple[PortalLink, PortalSession]:
        job = portal_sql.open_session_job(token_hash, session_hash, open_)
        result: tuple[PortalLink, PortalSession] = await self._writer.run(job)
        return result

    async def get_portal_session(self, session_hash: bytes) -> tuple[PortalSession, PortalLink]:
        rows = await self._fetchall(portal_sql.SESSION_SELECT, (session_hash,))
        if not rows:
            raise NotFoundError("portal session not found")
        width = portal_sql.SESSION_WIDTH
        return (
            portal_sql.session_from_row(rows[0][:width]),
            portal_sql.link_from_row(rows[0][width:]),
        )

    async def end_portal_session(self, session_hash: bytes, *, now: float) -> None:
        await self._writer.run(portal_sql.end_session_job(session_hash, now))


class _IngestReader:
    """IngestReader over the writer's connection, inside the ingest transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._owners: dict[str, list[Endpoint]] = {}
        self._by_id: dict[str, Endpoint] = {}

    def _load(self, where: str, params: tuple[Any, ...]) -> list[Endpoint]:
        # Routing needs status and event types only: secrets are not read here.
        rows = self._conn.execute(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints WHERE {where} ORDER BY id",  # noqa: S608 - constant clauses
            params,
        ).fetchall()
        found = [codec.endpoint_from_row(r, ()) for r in rows]
        self._by_id.update((e.id, e) for e in found)
        return found

    def endpoints(self, ids: Sequence[str]) -> dict[str, Endpoint]:
        # A batch usually names the same few endpoints again and again: read each once.
        missing = [i for i in ids if i not in self._by_id]
        if missing:
            self._load(f"id IN ({','.join('?' * len(missing))})", tuple(missing))
        return {i: self._by_id[i] for i in ids if i in self._by_id}

    def owner_endpoints(self, owner_id: str) -> list[Endpoint]:
        # A batch often fans many events out to one owner: read its endpoints once.
        if owner_id not in self._owners:
            self._owners[owner_id] = self._load("owner_id = ?", (owner_id,))
        return self._owners[owner_id]

    def idempotent_event(self, key: str, since: float) -> tuple[Event, bytes] | None:
        row = self._conn.execute(
            f"SELECT {records.EVENT_COLUMNS}, payload_hash FROM events"  # noqa: S608 - constant columns
            " WHERE idempotency_key = ? AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
            (key, codec.to_us(since)),
        ).fetchone()
        return None if row is None else (records.event_from_row(row[:-1]), row[-1])


def _event_insert_row(write: IngestWrite) -> tuple[Any, ...]:
    row = records.event_to_row(write.event, write.payload_hash)
    # events columns are listed with payload_hash last in the INSERT.
    return (*row[:7], row[8], row[9], row[7])
