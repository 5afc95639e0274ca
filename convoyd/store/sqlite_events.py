"""Events, deliveries and attempts in SQLite: ingest, queries, outcomes, retries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from convoyd.core.lifecycle import AGAIN, Again, sent_again
from convoyd.core.model import Attempt, Delivery, Endpoint, Event
from convoyd.errors import NotFoundError
from convoyd.store import bulk, codec, health_sql
from convoyd.store.base import (
    AttemptRecord,
    DeliveryEdit,
    DeliveryQuery,
    EventQuery,
    IngestBuild,
    IngestNeeds,
    IngestSnapshot,
    IngestWrite,
    Payload,
    StatusCounts,
)
from convoyd.store.connections import SqliteConnections
from convoyd.store.endpoint_sql import read_endpoint, write_endpoint
from convoyd.store.filters import (
    PENDING,
    STATUS_COUNTS,
    delivery_filters,
    event_filters,
    status_counts,
)
from convoyd.store.where import Where

_INSERT_EVENTS = f"INSERT INTO events ({', '.join(codec.EVENT_INSERT_NAMES)}) VALUES {{values}}"  # noqa: S608 - constant columns
_INSERT_DELIVERIES = f"INSERT INTO deliveries ({codec.DELIVERY_COLUMNS}) VALUES {{values}}"  # noqa: S608 - constant columns
# The delivery (and so its attempts) may have gone with its endpoint while the attempt was in
# flight: such an attempt is skipped instead of failing the whole batch; and a batch stored
# again (the recorder retries after an error) repeats none of its attempts.
_INSERT_ATTEMPTS = (
    f"INSERT INTO attempts ({codec.ATTEMPT_COLUMNS})"  # noqa: S608 - constant columns
    " SELECT * FROM (VALUES {values}) AS v"
    f" WHERE EXISTS (SELECT 1 FROM deliveries AS d"
    f" WHERE d.id = v.column{codec.ATTEMPT_NAMES.index('delivery_id') + 1})"
    " ON CONFLICT DO NOTHING"
)
# The VALUES list's columns are named column1, column2, ... by SQLite: each is the column of
# codec.DELIVERY_UPDATE_NAMES at its place.
_UPDATE_DELIVERIES = (
    "UPDATE deliveries SET "  # noqa: S608 - constant columns
    + ", ".join(
        f"{name} = v.column{n}"
        for n, name in enumerate(codec.DELIVERY_UPDATE_NAMES, 1)
        if name != "id"
    )
    + " FROM (VALUES {values}) AS v"
    f" WHERE deliveries.id = v.column{codec.DELIVERY_UPDATE_NAMES.index('id') + 1}"
)
_UPDATE_DELIVERY = (
    "UPDATE deliveries SET "  # noqa: S608 - constant columns
    + ", ".join(f"{name} = :{name}" for name in codec.DELIVERY_UPDATE_NAMES if name != "id")
    + " WHERE id = :id"
)


# An endpoint's FIFO head: its smallest pending id, by the deliveries_pending index. The
# endpoint ids come as one JSON array (json_each), whatever their number.
_FIFO_HEAD = (
    "SELECT h.id FROM deliveries AS h"  # noqa: S608 - constant statuses
    f" WHERE h.endpoint_id = e.value AND h.status IN ({PENDING}) ORDER BY h.id LIMIT 1"
)
_FIFO_HEADS = (
    f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608 - constant columns
    f" WHERE id IN (SELECT ({_FIFO_HEAD}) FROM json_each(?) AS e)"
)
_FIFO_BACKLOG = (
    f"SELECT {codec.DELIVERY_COLUMNS}, (SELECT count(*) FROM deliveries AS w"  # noqa: S608 - constant columns and statuses
    f" WHERE w.endpoint_id = ? AND w.status IN ({PENDING})) AS pending FROM deliveries"
    f" WHERE endpoint_id = ? AND status IN ({PENDING}) ORDER BY id LIMIT 1"
)


def _update_values(d: Delivery) -> dict[str, Any]:
    return dict(zip(codec.DELIVERY_UPDATE_NAMES, codec.delivery_update_row(d), strict=True))


def _read_delivery(conn: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = conn.execute(
        f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608 - constant columns
        (delivery_id,),
    ).fetchone()
    return None if row is None else codec.delivery_from_row(row)


class EventTables:
    """The events, deliveries and attempts tables."""

    def __init__(self, db: SqliteConnections) -> None:
        self._db = db

    # -- events ---------------------------------------------------------------------------

    async def ingest(self, needs: IngestNeeds, build: IngestBuild) -> list[IngestWrite]:
        # The one writer thread serialises ingests, so build runs once, on what it fetched.
        def job(conn: sqlite3.Connection) -> list[IngestWrite]:
            writes = build(_snapshot(conn, needs))
            fresh = [w for w in writes if not w.replay]
            bulk.run(
                conn,
                _INSERT_EVENTS,
                [codec.event_insert_row(w.event, w.payload_hash) for w in fresh],
            )
            bulk.run(
                conn,
                _INSERT_DELIVERIES,
                [codec.delivery_to_row(d) for w in fresh for d in w.deliveries],
            )
            return writes

        return await self._db.write(job)

    async def get_event(self, event_id: str) -> Event:
        rows = await self._db.fetchall(
            f"SELECT {codec.EVENT_COLUMNS} FROM events WHERE id = ?",  # noqa: S608 - constant columns
            (event_id,),
        )
        if not rows:
            raise NotFoundError(f"event {event_id} not found")
        return codec.event_from_row(rows[0])

    async def list_events(self, query: EventQuery, *, before_id: str, limit: int) -> list[Event]:
        where = event_filters(query, before_id)
        rows = await self._db.fetchall(
            f"SELECT {codec.EVENT_COLUMNS} FROM events {where.sql()}"  # noqa: S608 - constant clauses, bound values
            " ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )
        return [codec.event_from_row(r) for r in rows]

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]:
        ids = list(dict.fromkeys(event_ids))

        def job(conn: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                where = Where().among("id", chunk)
                rows += conn.execute(
                    f"SELECT id, data, headers, trace_context FROM events {where.sql()}",  # noqa: S608 - constant clauses, bound values
                    where.params,
                ).fetchall()
            return rows

        rows = await self._db.read(job) if ids else []
        return {r["id"]: codec.payload_from_row(r) for r in rows}

    # -- deliveries -----------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> Delivery:
        rows = await self._db.fetchall(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608 - constant columns
            (delivery_id,),
        )
        if not rows:
            raise NotFoundError(f"delivery {delivery_id} not found")
        return codec.delivery_from_row(rows[0])

    async def list_deliveries(
        self, query: DeliveryQuery, *, before_id: str, limit: int
    ) -> list[Delivery]:
        where = delivery_filters(query, before_id, arrays=False)
        rows = await self._db.fetchall(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries {where.sql()}"  # noqa: S608 - constant clauses, bound values
            " ORDER BY id DESC LIMIT ?",
            (*where.params, limit),
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def count_deliveries(self, query: DeliveryQuery) -> int:
        where = delivery_filters(query, arrays=False)
        rows = await self._db.fetchall(
            f"SELECT count(*) AS n FROM deliveries {where.sql()}",  # noqa: S608 - constant clauses, bound values
            where.params,
        )
        return int(rows[0]["n"])

    async def status_counts(self) -> StatusCounts:
        return status_counts(await self._db.fetchall(STATUS_COUNTS))

    async def list_attempts(
        self, delivery_id: str, *, after_number: int, limit: int
    ) -> list[Attempt]:
        rows = await self._db.fetchall(
            f"SELECT {codec.ATTEMPT_COLUMNS} FROM attempts"  # noqa: S608 - constant columns
            " WHERE delivery_id = ? AND number > ? ORDER BY number LIMIT ?",
            (delivery_id, after_number, limit),
        )
        return [codec.attempt_from_row(r) for r in rows]

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]:
        low = -(2**62) if after is None else codec.to_us(after)
        rows = await self._db.fetchall(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608 - constant columns and statuses
            f" WHERE status IN ({PENDING})"
            " AND next_attempt_at > ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id",
            (low, codec.to_us(until)),
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def fifo_heads(self, endpoint_ids: Sequence[str]) -> dict[str, Delivery]:
        if not endpoint_ids:
            return {}
        rows = await self._db.fetchall(_FIFO_HEADS, (json.dumps(list(endpoint_ids)),))
        heads = (codec.delivery_from_row(r) for r in rows)
        return {d.endpoint_id: d for d in heads}

    async def fifo_backlog(self, endpoint_id: str) -> tuple[Delivery | None, int]:
        rows = await self._db.fetchall(_FIFO_BACKLOG, (endpoint_id, endpoint_id))
        if not rows:
            return None, 0
        return codec.delivery_from_row(rows[0]), int(rows[0]["pending"]) - 1

    async def record(self, batch: Sequence[AttemptRecord]) -> None:
        attempts = [codec.attempt_to_row(r.attempt) for r in batch if r.attempt is not None]
        # One row per delivery, its latest state (a batch may hold two changes of one
        # delivery; UPDATE ... FROM would apply an arbitrary one of them).
        latest = {r.delivery.id: r.delivery for r in batch}
        updates = [codec.delivery_update_row(d) for d in latest.values()]
        # The health counters of the batch, counted here rather than in the writer's thread.
        counted = health_sql.Counted(batch, attempts)

        def job(conn: sqlite3.Connection) -> None:
            health_sql.insert_counted(
                conn, counted, lambda: bulk.run(conn, _INSERT_ATTEMPTS, attempts)
            )
            bulk.run(conn, _UPDATE_DELIVERIES, updates)

        await self._db.write(job)

    async def modify_delivery(self, delivery_id: str, change: DeliveryEdit) -> Delivery:
        def job(conn: sqlite3.Connection) -> Delivery:
            delivery = _read_delivery(conn, delivery_id)
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id} not found")
            endpoint = read_endpoint(conn, delivery.endpoint_id)
            new_delivery, new_endpoint = change(delivery, endpoint)
            conn.execute(_UPDATE_DELIVERY, _update_values(new_delivery))
            if new_endpoint != endpoint:
                write_endpoint(conn, new_endpoint, insert=False)
            return new_delivery

        return await self._db.write(job)

    async def reschedule_deliveries(
        self, query: DeliveryQuery, *, now: float, reason: str, limit: int
    ) -> list[Delivery]:
        where = delivery_filters(query, arrays=False)

        def job(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries {where.sql()}"  # noqa: S608 - constant clauses, bound values
                " ORDER BY id LIMIT ?",
                (*where.params, limit),
            ).fetchall()
            # The rule is the one of RetryDelivery (convoyd.core.lifecycle), row by row; a row
            # it refuses (one being sent, one that succeeded) is left as it is.
            changed = [
                sent_again(d, Again.RETRY, now=now, reason=reason)
                for d in map(codec.delivery_from_row, rows)
                if (Again.RETRY, d.status) in AGAIN
            ]
            conn.executemany(_UPDATE_DELIVERY, [_update_values(d) for d in changed])
            return changed

        return await self._db.write(job)


def _snapshot(conn: sqlite3.Connection, needs: IngestNeeds) -> IngestSnapshot:
    """``needs`` read over the writer's connection, inside the ingest transaction."""
    by_owner: dict[str, list[Endpoint]] = {}
    by_id: dict[str, Endpoint] = {}
    ids, owners = sorted(needs.endpoint_ids), sorted(needs.owner_ids)
    if ids or owners:
        # Routing needs status and event types only: secrets are not read here.
        rows = conn.execute(
            f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints"  # noqa: S608 - constant clauses, bound values
            f" WHERE id IN ({','.join('?' * len(ids))})"
            f" OR owner_id IN ({','.join('?' * len(owners))}) ORDER BY id",
            [*ids, *owners],
        ).fetchall()
        for row in rows:
            endpoint = codec.endpoint_from_row(row, ())
            by_id[endpoint.id] = endpoint
            if endpoint.spec.owner_id in needs.owner_ids:
                by_owner.setdefault(endpoint.spec.owner_id, []).append(endpoint)
    idempotent: dict[str, tuple[Event, bytes]] = {}
    since = codec.to_us(needs.idempotency_since)
    for key in sorted(needs.idempotency_keys):
        row = conn.execute(
            f"SELECT {codec.EVENT_COLUMNS}, payload_hash FROM events"  # noqa: S608 - constant columns
            " WHERE idempotency_key = ? AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
            (key, since),
        ).fetchone()
        if row is not None:
            idempotent[key] = (codec.event_from_row(row), row["payload_hash"])
    return IngestSnapshot(by_id=by_id, by_owner=by_owner, idempotent=idempotent)
