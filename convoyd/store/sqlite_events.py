"""Events, deliveries and attempts in SQLite: ingest, queries, outcomes, retries."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from convoyd.core.model import Attempt, Delivery, DeliveryStatus, Endpoint, Event
from convoyd.errors import NotFoundError
from convoyd.store import bulk, codec, records
from convoyd.store.base import (
    AttemptRecord,
    DeliveryChange,
    DeliveryQuery,
    EventQuery,
    IngestReader,
    IngestWrite,
    Payload,
    StatusCounts,
)
from convoyd.store.endpoint_sql import read_endpoint, write_endpoint
from convoyd.store.sqlite_base import SqliteBase

_INSERT_EVENTS = f"INSERT INTO events ({records.EVENT_COLUMNS}, payload_hash) VALUES {{values}}"  # noqa: S608 - constant columns
_INSERT_DELIVERIES = f"INSERT INTO deliveries ({records.DELIVERY_COLUMNS}) VALUES {{values}}"  # noqa: S608 - constant columns
# The delivery (and so its attempts) may have gone with its endpoint while the attempt was in
# flight: such an attempt is skipped instead of failing the whole batch.
_INSERT_ATTEMPTS = (
    f"INSERT INTO attempts ({records.ATTEMPT_COLUMNS})"  # noqa: S608 - constant columns
    " SELECT * FROM (VALUES {values}) AS v"
    " WHERE EXISTS (SELECT 1 FROM deliveries AS d WHERE d.id = v.column2)"
)
# The values are rows of records.delivery_update_row, in its column order.
_UPDATE_DELIVERIES = (
    "UPDATE deliveries SET status = v.column1, status_reason = v.column2,"
    " attempt_count = v.column3, attempt_limit = v.column4, next_attempt_at = v.column5,"
    " last_attempt_at = v.column6, last_http_status = v.column7, updated_at = v.column8"
    " FROM (VALUES {values}) AS v WHERE deliveries.id = v.column9"
)


class EventTables(SqliteBase):
    # -- events ---------------------------------------------------------------------------

    async def ingest(self, build: Callable[[IngestReader], list[IngestWrite]]) -> list[IngestWrite]:
        def job(conn: sqlite3.Connection) -> list[IngestWrite]:
            writes = build(_IngestReader(conn))
            fresh = [w for w in writes if not w.replay]
            bulk.run(conn, _INSERT_EVENTS, [_event_insert_row(w) for w in fresh])
            bulk.run(
                conn,
                _INSERT_DELIVERIES,
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
        ids = list(dict.fromkeys(event_ids))

        def job(conn: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(
                    f"SELECT id, data, headers FROM events WHERE id IN ({marks})",  # noqa: S608 - placeholders only
                    chunk,
                ).fetchall()
            return rows

        rows = await self._reader.run(job) if ids else []
        return {
            event_id: Payload(data=data, headers=json.loads(headers))
            for event_id, data, headers in rows
        }

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
        # One row per delivery, its latest state (a batch may hold two changes of one
        # delivery; UPDATE ... FROM would apply an arbitrary one of them).
        latest = {r.delivery.id: r.delivery for r in batch}
        updates = [records.delivery_update_row(d) for d in latest.values()]

        def job(conn: sqlite3.Connection) -> None:
            bulk.run(conn, _INSERT_ATTEMPTS, attempts)
            bulk.run(conn, _UPDATE_DELIVERIES, updates)

        await self._writer.run(job)

    async def modify_delivery(self, delivery_id: str, change: DeliveryChange) -> Delivery:
        def job(conn: sqlite3.Connection) -> Delivery:
            delivery = records.read_delivery(conn, delivery_id)
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id} not found")
            endpoint = read_endpoint(conn, delivery.endpoint_id)
            new_delivery, new_endpoint = change(delivery, endpoint)
            conn.execute(records.DELIVERY_UPDATE_SQL, records.delivery_update_row(new_delivery))
            if new_endpoint != endpoint:
                write_endpoint(conn, new_endpoint, insert=False)
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
