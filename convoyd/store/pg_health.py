"""The hourly attempt counters (core/health.py) on PostgreSQL: counted inside record()'s one
statement, read for the portal's charts, pruned with retention.

Table ``endpoint_health`` (migration 6), columns as on SQLite (health_sql.py). record()'s
statement (pg_events.py) inserts the attempts with ``RETURNING``, and COUNT_INSERTED, the rest
of that statement, sums what was returned by (endpoint, hour) and adds it with one upsert row
each: only attempts inserted count (a batch retried after a lost connection, or an attempt of a
delivery that has gone or that this node no longer holds, adds nothing), and the counts commit
with them or not at all.

Several nodes on one database add to the same rows. ``INSERT ... ON CONFLICT DO UPDATE`` adds
to the row as committed (READ COMMITTED re-reads it under its lock), so no count is lost; the
rows are inserted in (endpoint, hour) order, after the statement's delivery locks, so two
batches lock them in one order and do not deadlock (a deadlock would be rerun anyway:
pg_connections.py). The table has no foreign key to endpoints: checking it would lock the
endpoint while the deliveries are held, the opposite order of delete_endpoint, which deletes
the endpoint's rows itself (pg_endpoints.py). It is not partitioned: retention deletes rows
older than the period in short transactions; the day partitions it drops do not concern it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from convoyd.core.health import HOUR_US, LATENCY_BOUNDS_US, TIMED_RESULTS, HealthHour, hour_start_us
from convoyd.core.model import AttemptResult
from convoyd.store import codec
from convoyd.store.health_sql import (
    COLUMNS,
    COUNTED,
    COUNTS_ONLY,
    LATENCY_COLUMNS,
    hour_from_row,
)
from convoyd.store.pg_connections import PgConnections

INSERTED = "delivery_id, result, started_at, duration_us"
"""What the attempts' INSERT of record() returns for COUNT_INSERTED."""

_TIMED = ", ".join(f"'{r.value}'" for r in sorted(TIMED_RESULTS))
_BOUNDS = ", ".join(str(b) for b in LATENCY_BOUNDS_US)
# Follows ``WITH updated AS (... RETURNING d.id, d.endpoint_id), inserted AS (INSERT INTO
# attempts ... RETURNING {INSERTED})``. width_bucket counts the bounds at or below a duration:
# core/health.latency_bucket's rule.
_SUMS = ", ".join(
    [
        f"count(*) FILTER (WHERE result = '{AttemptResult.SUCCESS.value}')",
        f"count(*) FILTER (WHERE result <> '{AttemptResult.SUCCESS.value}')",
        *(f"count(*) FILTER (WHERE bucket = {i})" for i in range(len(LATENCY_COLUMNS))),
    ]
)
_ADD = ", ".join(f"{c} = endpoint_health.{c} + excluded.{c}" for c in COUNTED)
COUNT_INSERTED = (
    f" INSERT INTO endpoint_health ({COLUMNS}) SELECT endpoint_id, hour_start, {_SUMS}"  # noqa: S608 - constant columns and values
    f" FROM (SELECT d.endpoint_id, i.started_at - i.started_at % {HOUR_US} AS hour_start,"
    f" i.result, CASE WHEN i.result IN ({_TIMED})"
    f" THEN width_bucket(i.duration_us, ARRAY[{_BOUNDS}]::bigint[]) END AS bucket"
    " FROM inserted AS i JOIN updated AS d ON d.id = i.delivery_id) AS a"
    " GROUP BY endpoint_id, hour_start ORDER BY endpoint_id, hour_start"
    f" ON CONFLICT (endpoint_id, hour_start) DO UPDATE SET {_ADD}"
)
_READ = (
    "SELECT {columns} FROM endpoint_health"
    " WHERE endpoint_id = ANY($1::text[]) AND hour_start >= $2 AND hour_start < $3"
    " ORDER BY endpoint_id, hour_start"
)
_READS = {True: _READ.format(columns=COLUMNS), False: _READ.format(columns=COUNTS_ONLY)}
_PRUNE = (
    "DELETE FROM endpoint_health WHERE (endpoint_id, hour_start) IN"
    " (SELECT endpoint_id, hour_start FROM endpoint_health WHERE hour_start < $1 LIMIT $2)"
)
DELETE_ENDPOINT = "DELETE FROM endpoint_health WHERE endpoint_id = $1"
PRUNE_ROWS = 1000

Transaction = Callable[
    [asyncpg.Connection, Callable[[asyncpg.Connection], Awaitable[int]]], Awaitable[int]
]


async def health_hours(
    db: PgConnections,
    endpoint_ids: Sequence[str],
    *,
    since: float,
    until: float,
    latency: bool = True,
) -> list[HealthHour]:
    """Store.health_hours on PostgreSQL: one statement over the table's primary key."""
    if not endpoint_ids:
        return []
    rows = await db.fetch(
        _READS[latency], list(dict.fromkeys(endpoint_ids)), codec.to_us(since), codec.to_us(until)
    )
    return [hour_from_row(r) for r in rows]


async def prune(conn: asyncpg.Connection, *, cutoff: float, transaction: Transaction) -> int:
    """Deletes the counters of hours that ended by ``cutoff``, PRUNE_ROWS per transaction
    (``transaction`` runs one: pg_retention's, on the connection holding its lock); returns
    how many rows went."""
    before_us = hour_start_us(codec.to_us(cutoff))

    async def job(c: asyncpg.Connection) -> int:
        status: str = await c.execute(_PRUNE, before_us, PRUNE_ROWS)
        return int(status.split()[-1])

    gone = 0
    while True:
        n = await transaction(conn, job)
        gone += n
        if n < PRUNE_ROWS:
            return gone
