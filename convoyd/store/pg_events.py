"""Events, deliveries and attempts in PostgreSQL: ingest, queries, outcomes, retries.

The behaviour is sqlite_events.py's; what differs is concurrency. There is no single writer:
ingest locks the endpoints it routes to (FOR KEY SHARE) and claims idempotency keys through
the idempotency_keys primary key, and read-modify-writes lock their rows FOR UPDATE, delivery
before endpoint. Batches are one statement over arrays (unnest), one round trip each. No
foreign key ties an attempt to its delivery (pg_schema.py): record() writes an attempt only
for a delivery it updates in the same statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from convoyd.core.lifecycle import AGAIN, Again, sent_again
from convoyd.core.model import Attempt, Delivery, Endpoint, Event
from convoyd.errors import NotFoundError
from convoyd.store import codec, pg_health
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
from convoyd.store.filters import (
    PENDING,
    STATUS_COUNTS,
    delivery_filters,
    event_filters,
    status_counts,
)
from convoyd.store.pg_connections import PgConnections, Retry, columns
from convoyd.store.pg_endpoints import read_endpoint, write_endpoint

# The PostgreSQL type of every column written through unnest (pg_schema.py), for its casts.
_PG_TYPES = {
    name: pg_type
    for pg_type, names in (
        (
            "text",
            "id event_id endpoint_id delivery_id owner_id event_type endpoint_ids headers"
            " idempotency_key status status_reason result request_url request_headers"
            " response_headers error remote_address value trace_context",
        ),
        ("bytea", "data payload_hash response_body"),
        (
            "bigint",
            "created_at updated_at next_attempt_at last_attempt_at started_at duration_us"
            " expires_at",
        ),
        (
            "integer",
            "delivery_count attempt_count attempt_limit last_http_status number"
            " response_status response_body_truncated",
        ),
    )
    for name in names.split()
}


# Each endpoint's FIFO head: its smallest pending id, by the deliveries_endpoint index.
_FIFO_HEADS = (
    f"SELECT h.* FROM unnest($1::text[]) AS e (endpoint_id) CROSS JOIN LATERAL"  # noqa: S608 - constant columns and statuses
    f" (SELECT {codec.DELIVERY_COLUMNS} FROM deliveries AS d WHERE d.endpoint_id = e.endpoint_id"
    f" AND d.status IN ({PENDING}) ORDER BY d.id LIMIT 1) AS h"
)
_FIFO_BACKLOG = (
    f"SELECT {codec.DELIVERY_COLUMNS}, (SELECT count(*) FROM deliveries AS w"  # noqa: S608 - constant columns and statuses
    f" WHERE w.endpoint_id = $1 AND w.status IN ({PENDING})) AS pending FROM deliveries"
    f" WHERE endpoint_id = $1 AND status IN ({PENDING}) ORDER BY id LIMIT 1"
)


def _unnest(names: Sequence[str], start: int = 1) -> str:
    """``unnest($start::type[], ...)``: one array parameter per column of ``names``."""
    arrays = ", ".join(f"${n}::{_PG_TYPES[c]}[]" for n, c in enumerate(names, start))
    return f"unnest({arrays})"


def _update_deliveries(start: int) -> str:
    """An UPDATE of deliveries from arrays of codec.DELIVERY_UPDATE_NAMES from ``$start``."""
    names = codec.DELIVERY_UPDATE_NAMES
    sets = ", ".join(f"{c} = u.{c}" for c in names if c != "id")
    return (
        f"UPDATE deliveries AS d SET {sets}"  # noqa: S608 - constant columns
        f" FROM {_unnest(names, start)} AS u({', '.join(names)}) WHERE d.id = u.id"
    )


_ENDPOINTS_FOR_INGEST = (
    f"SELECT {codec.ENDPOINT_COLUMNS} FROM endpoints"  # noqa: S608 - constant columns
    " WHERE id = ANY($1::text[]) OR owner_id = ANY($2::text[]) ORDER BY id FOR KEY SHARE"
)
# Left join: a live key whose event is gone (dropped by retention) is named too, so that
# this ingest may take it over.
_IDEMPOTENT_EVENTS = (
    "SELECT k.key AS k_key, k.event_id AS k_event_id,"  # noqa: S608 - constant columns
    f" {', '.join('e.' + c for c in codec.EVENT_NAMES)}, e.payload_hash"
    " FROM idempotency_keys AS k LEFT JOIN events AS e ON e.id = k.event_id"
    " WHERE k.key = ANY($1::text[]) AND k.created_at >= $2"
)

_EVENT_WIDTH = len(codec.EVENT_INSERT_NAMES)
_DELIVERY_WIDTH = len(codec.DELIVERY_NAMES)
_KEYS_AT = _EVENT_WIDTH + _DELIVERY_WIDTH + 1
# An ingest's writes in one statement. A key row is taken over only if it is out of the
# window, or still names the event the snapshot found gone: the condition is evaluated on
# the row as locked, not on the statement's snapshot, so a key that a concurrent transaction
# claimed (and committed after this statement began) is never taken from it. A key not
# returned is held by another transaction: the ingest reruns and sees its event.
_INSERT_INGEST = (
    f"WITH new_events AS (INSERT INTO events ({', '.join(codec.EVENT_INSERT_NAMES)})"  # noqa: S608 - constant columns
    f" SELECT * FROM {_unnest(codec.EVENT_INSERT_NAMES)}),"
    f" new_deliveries AS (INSERT INTO deliveries ({codec.DELIVERY_COLUMNS})"
    f" SELECT * FROM {_unnest(codec.DELIVERY_NAMES, _EVENT_WIDTH + 1)})"
    " INSERT INTO idempotency_keys (key, event_id, created_at) SELECT * FROM"
    f" unnest(${_KEYS_AT}::text[], ${_KEYS_AT + 1}::text[], ${_KEYS_AT + 2}::bigint[])"
    " ON CONFLICT (key) DO UPDATE"
    " SET event_id = excluded.event_id, created_at = excluded.created_at"
    f" WHERE idempotency_keys.created_at < ${_KEYS_AT + 3}"
    f" OR idempotency_keys.event_id = ANY(${_KEYS_AT + 4}::text[])"
    " RETURNING key"
)

# An attempt is written only for a delivery the same statement updates. The delivery may have
# gone with its endpoint while the attempt was in flight: such an attempt is skipped instead of
# failing the whole batch. No foreign key checks that (pg_schema.py), and a check against the
# statement's snapshot (EXISTS) would race with delete_endpoint: a delivery whose delete
# commits after the snapshot still looks present, and its attempt would outlive it. The
# UPDATE's own row lock is the check instead, at no extra cost: it waits for a concurrent
# delete to end and skips the row that delete removed; once taken, it makes delete_endpoint
# wait for this batch to commit, and then delete the attempt with the others (pg_endpoints.py).
# A batch retried after a lost connection may repeat an attempt: DO NOTHING. The attempts
# inserted are counted into the delivery health counters by the rest of the statement
# (pg_health.COUNT_INSERTED).
_ATTEMPTS_OF_UPDATED = (
    f", inserted AS (INSERT INTO attempts ({codec.ATTEMPT_COLUMNS})"  # noqa: S608 - constant columns
    f" SELECT * FROM {_unnest(codec.ATTEMPT_NAMES)} AS u({codec.ATTEMPT_COLUMNS})"
    " WHERE u.delivery_id IN (SELECT id FROM updated) ON CONFLICT DO NOTHING"
    f" RETURNING {pg_health.INSERTED})" + pg_health.COUNT_INSERTED
)
_RECORD = (
    f"WITH updated AS ({_update_deliveries(len(codec.ATTEMPT_NAMES) + 1)}"
    " RETURNING d.id, d.endpoint_id)" + _ATTEMPTS_OF_UPDATED
)
_UPDATE_DELIVERIES = _update_deliveries(1)

# _RECORD for a node of a cluster: only the deliveries of shards this node holds at the epoch
# it took them with are written, in the same statement (the fence: a node that lost a lease
# writes nothing more there, whatever it still had in flight).
_FENCE_AT = len(codec.ATTEMPT_NAMES) + len(codec.DELIVERY_UPDATE_NAMES) + 1
_RECORD_FENCED = (
    "WITH held AS (SELECT f.id FROM"  # noqa: S608 - constant columns
    f" unnest(${_FENCE_AT}::text[], ${_FENCE_AT + 1}::int[], ${_FENCE_AT + 2}::bigint[])"
    " AS f(id, shard, epoch) JOIN cluster_shards AS s ON s.shard = f.shard"
    f" AND s.epoch = f.epoch AND s.node_id = ${_FENCE_AT + 3}),"
    f" updated AS ({_update_deliveries(len(codec.ATTEMPT_NAMES) + 1)}"
    " AND u.id IN (SELECT id FROM held) RETURNING d.id, d.endpoint_id)" + _ATTEMPTS_OF_UPDATED
)

# Which shard, at which epoch, this node holds an endpoint's deliveries in; None: not held.
Fence = Callable[[str], "tuple[int, int] | None"]

_DELIVERY_FOR_UPDATE = f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 FOR UPDATE"  # noqa: S608 - constant columns


class PgEventTables:
    """The events, deliveries, attempts and idempotency_keys tables."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db

    # -- events ---------------------------------------------------------------------------

    async def ingest(self, needs: IngestNeeds, build: IngestBuild) -> list[IngestWrite]:
        ids, owners = sorted(needs.endpoint_ids), sorted(needs.owner_ids)
        keys = sorted(needs.idempotency_keys)
        since = codec.to_us(needs.idempotency_since)

        async def job(conn: asyncpg.Connection) -> list[IngestWrite]:
            snapshot, dangling = await _snapshot(conn, needs, ids, owners, keys, since)
            writes = build(snapshot)
            fresh = [w for w in writes if not w.replay]
            if not fresh:
                return writes
            events = [codec.event_insert_row(w.event, w.payload_hash) for w in fresh]
            deliveries = [codec.delivery_to_row(d) for w in fresh for d in w.deliveries]
            keyed = {w.event.idempotency_key: w.event for w in fresh if w.event.idempotency_key}
            claims = [(k, keyed[k].id, codec.to_us(keyed[k].created_at)) for k in sorted(keyed)]
            claimed = await conn.fetch(
                _INSERT_INGEST,
                *columns(events, _EVENT_WIDTH),
                *columns(deliveries, _DELIVERY_WIDTH),
                *columns(claims, 3),
                since,
                dangling,
            )
            if len(claimed) < len(claims):
                raise Retry
            return writes

        return await self._db.transaction(job)

    async def get_event(self, event_id: str) -> Event:
        rows = await self._db.fetch(
            f"SELECT {codec.EVENT_COLUMNS} FROM events WHERE id = $1",  # noqa: S608 - constant columns
            event_id,
        )
        if not rows:
            raise NotFoundError(f"event {event_id} not found")
        return codec.event_from_row(rows[0])

    async def list_events(self, query: EventQuery, *, before_id: str, limit: int) -> list[Event]:
        where = event_filters(query, before_id)
        rows = await self._db.fetch(
            f"SELECT {codec.EVENT_COLUMNS} FROM events {where.numbered()}"  # noqa: S608 - constant clauses, bound values
            f" ORDER BY id DESC LIMIT ${len(where.params) + 1}",
            *where.params,
            limit,
        )
        return [codec.event_from_row(r) for r in rows]

    async def load_payloads(self, event_ids: Sequence[str]) -> dict[str, Payload]:
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return {}
        rows = await self._db.fetch(
            "SELECT id, data, headers, trace_context FROM events WHERE id = ANY($1::text[])",
            ids,
        )
        return {r["id"]: codec.payload_from_row(r) for r in rows}

    # -- deliveries -----------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> Delivery:
        rows = await self._db.fetch(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries WHERE id = $1",  # noqa: S608 - constant columns
            delivery_id,
        )
        if not rows:
            raise NotFoundError(f"delivery {delivery_id} not found")
        return codec.delivery_from_row(rows[0])

    async def list_deliveries(
        self, query: DeliveryQuery, *, before_id: str, limit: int
    ) -> list[Delivery]:
        where = delivery_filters(query, before_id, arrays=True)
        rows = await self._db.fetch(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries {where.numbered()}"  # noqa: S608 - constant clauses, bound values
            f" ORDER BY id DESC LIMIT ${len(where.params) + 1}",
            *where.params,
            limit,
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def count_deliveries(self, query: DeliveryQuery) -> int:
        where = delivery_filters(query, arrays=True)
        rows = await self._db.fetch(
            f"SELECT count(*) AS n FROM deliveries {where.numbered()}",  # noqa: S608 - constant clauses, bound values
            *where.params,
        )
        return int(rows[0]["n"])

    async def status_counts(self) -> StatusCounts:
        return status_counts(await self._db.fetch(STATUS_COUNTS))

    async def list_attempts(
        self, delivery_id: str, *, after_number: int, limit: int
    ) -> list[Attempt]:
        rows = await self._db.fetch(
            f"SELECT {codec.ATTEMPT_COLUMNS} FROM attempts"  # noqa: S608 - constant columns
            " WHERE delivery_id = $1 AND number > $2 ORDER BY number LIMIT $3",
            delivery_id,
            after_number,
            limit,
        )
        return [codec.attempt_from_row(r) for r in rows]

    async def due_deliveries(self, *, after: float | None, until: float) -> list[Delivery]:
        low = -(2**62) if after is None else codec.to_us(after)
        rows = await self._db.fetch(
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608 - constant columns and statuses
            f" WHERE status IN ({PENDING})"
            " AND next_attempt_at > $1 AND next_attempt_at <= $2 ORDER BY next_attempt_at, id",
            low,
            codec.to_us(until),
        )
        return [codec.delivery_from_row(r) for r in rows]

    async def fifo_heads(self, endpoint_ids: Sequence[str]) -> dict[str, Delivery]:
        if not endpoint_ids:
            return {}
        rows = await self._db.fetch(_FIFO_HEADS, list(endpoint_ids))
        heads = (codec.delivery_from_row(r) for r in rows)
        return {d.endpoint_id: d for d in heads}

    async def fifo_backlog(self, endpoint_id: str) -> tuple[Delivery | None, int]:
        rows = await self._db.fetch(_FIFO_BACKLOG, endpoint_id)
        if not rows:
            return None, 0
        return codec.delivery_from_row(rows[0]), int(rows[0]["pending"]) - 1

    async def record(
        self,
        batch: Sequence[AttemptRecord],
        *,
        fence: Fence | None = None,
        node_id: str = "",
    ) -> None:
        """Stores the batch (store/base.py); with ``fence``, only what this node (``node_id``)
        still holds the shard of, at that epoch."""
        if not batch:
            return
        attempts = [codec.attempt_to_row(r.attempt) for r in batch if r.attempt is not None]
        # One row per delivery, its latest state (a batch may hold two changes of one
        # delivery; UPDATE ... FROM would apply an arbitrary one of them), in id order so
        # that concurrent batches lock shared rows in one order.
        latest = {r.delivery.id: r.delivery for r in batch}
        updates = [codec.delivery_update_row(latest[i]) for i in sorted(latest)]
        args: tuple[Any, ...] = (
            *columns(attempts, len(codec.ATTEMPT_NAMES)),
            *columns(updates, len(codec.DELIVERY_UPDATE_NAMES)),
        )
        statement = _RECORD
        if fence is not None:
            held = [
                (i, *where)
                for i in sorted(latest)
                if (where := fence(latest[i].endpoint_id)) is not None
            ]
            if not held:
                return
            args = (*args, *columns(held, 3), node_id)
            statement = _RECORD_FENCED

        async def job(conn: asyncpg.Connection) -> None:
            await conn.execute(statement, *args)

        await self._db.transaction(job)

    async def modify_delivery(self, delivery_id: str, change: DeliveryEdit) -> Delivery:
        async def job(conn: asyncpg.Connection) -> Delivery:
            row = await conn.fetchrow(_DELIVERY_FOR_UPDATE, delivery_id)
            if row is None:
                raise NotFoundError(f"delivery {delivery_id} not found")
            delivery = codec.delivery_from_row(row)
            endpoint = await read_endpoint(conn, delivery.endpoint_id, for_update=True)
            new_delivery, new_endpoint = change(delivery, endpoint)
            update = codec.delivery_update_row(new_delivery)
            await conn.execute(_UPDATE_DELIVERIES, *([v] for v in update))
            if new_endpoint != endpoint:
                await write_endpoint(conn, new_endpoint, insert=False)
            return new_delivery

        return await self._db.transaction(job)

    async def reschedule_deliveries(
        self, query: DeliveryQuery, *, now: float, reason: str, limit: int
    ) -> list[Delivery]:
        where = delivery_filters(query, arrays=True)
        select = (
            f"SELECT {codec.DELIVERY_COLUMNS} FROM deliveries {where.numbered()}"  # noqa: S608 - constant clauses, bound values
            f" ORDER BY id LIMIT ${len(where.params) + 1} FOR UPDATE"
        )

        async def job(conn: asyncpg.Connection) -> list[Delivery]:
            rows = await conn.fetch(select, *where.params, limit)
            # The rule is the one of RetryDelivery (convoyd.core.lifecycle), row by row; a row
            # it refuses (one being sent, one that succeeded) is left as it is.
            changed = [
                sent_again(d, Again.RETRY, now=now, reason=reason)
                for d in map(codec.delivery_from_row, rows)
                if (Again.RETRY, d.status) in AGAIN
            ]
            if changed:
                updates = [codec.delivery_update_row(d) for d in changed]
                await conn.execute(
                    _UPDATE_DELIVERIES, *columns(updates, len(codec.DELIVERY_UPDATE_NAMES))
                )
            return changed

        return await self._db.transaction(job)


async def _snapshot(
    conn: asyncpg.Connection,
    needs: IngestNeeds,
    ids: list[str],
    owners: list[str],
    keys: list[str],
    since: int,
) -> tuple[IngestSnapshot, list[str]]:
    """``needs`` read inside the ingest transaction, and the event ids that live keys name
    but that are gone."""
    by_owner: dict[str, list[Endpoint]] = {}
    by_id: dict[str, Endpoint] = {}
    if ids or owners:
        # Routing needs status and event types only: secrets are not read here. The shared
        # lock holds off a concurrent modify_endpoint (FOR UPDATE) until this commits.
        for row in await conn.fetch(_ENDPOINTS_FOR_INGEST, ids, owners):
            endpoint = codec.endpoint_from_row(row, ())
            by_id[endpoint.id] = endpoint
            if endpoint.spec.owner_id in needs.owner_ids:
                by_owner.setdefault(endpoint.spec.owner_id, []).append(endpoint)
    idempotent: dict[str, tuple[Event, bytes]] = {}
    dangling: list[str] = []
    if keys:
        for row in await conn.fetch(_IDEMPOTENT_EVENTS, keys, since):
            if row["id"] is None:
                dangling.append(row["k_event_id"])
            else:
                idempotent[row["k_key"]] = (codec.event_from_row(row), row["payload_hash"])
    return IngestSnapshot(by_id=by_id, by_owner=by_owner, idempotent=idempotent), dangling
