"""The hourly attempt counters (core/health.py) on SQLite: counted with each recorded batch,
read for the portal's charts, pruned with retention. Their columns serve pg_health.py too.

Table ``endpoint_health`` (migration 6): one row per endpoint and UTC hour, the key
(endpoint_id, hour_start), ``ok``, ``failed`` and one column per latency bucket. A recorder
batch is counted on the event loop before its writer job (core/health.tally), and the job adds
the counts with one upsert row per (endpoint, hour), in the same transaction as the attempts:
a commit holds both or neither. Only attempts the job actually inserted count: the attempts'
INSERT skips one already stored (a batch stored again) or whose delivery has gone, and when
``total_changes`` says it skipped any, the job rolls that part back, learns which, and counts
only the others. The rows go with their endpoint (ON DELETE CASCADE) and, past the retention
period, with retention (sqlite_retention.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from convoyd.core.health import (
    LATENCY_BUCKETS,
    NO_LATENCY,
    CountsKey,
    HealthHour,
    hour_start_us,
    tally,
)
from convoyd.store import bulk, codec
from convoyd.store.base import AttemptRecord
from convoyd.store.connections import SqliteConnections

LATENCY_COLUMNS: tuple[str, ...] = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))
NAMES: tuple[str, ...] = ("endpoint_id", "hour_start", "ok", "failed", *LATENCY_COLUMNS)
COLUMNS = ", ".join(NAMES)
COUNTED: tuple[str, ...] = NAMES[2:]
"""The columns an upsert adds to."""
COUNTS_ONLY = ", ".join(NAMES[:4])
"""The columns of a read without the response times."""

_UPSERT = (
    f"INSERT INTO endpoint_health ({COLUMNS}) VALUES {{values}}"  # noqa: S608 - constant columns
    " ON CONFLICT (endpoint_id, hour_start) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTED)
)
_READ = (
    "SELECT {columns} FROM endpoint_health"
    " WHERE endpoint_id IN (SELECT value FROM json_each(?)) AND hour_start >= ? AND hour_start < ?"
    " ORDER BY endpoint_id, hour_start"
)
READS = {True: _READ.format(columns=COLUMNS), False: _READ.format(columns=COUNTS_ONLY)}
"""The read of health_hours, with the response times or without."""
_STORED_ATTEMPTS = "SELECT id FROM attempts WHERE id IN (SELECT value FROM json_each(?))"
_LIVE_DELIVERIES = "SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"
_PRUNE = (
    "DELETE FROM endpoint_health WHERE (endpoint_id, hour_start) IN"
    " (SELECT endpoint_id, hour_start FROM endpoint_health WHERE hour_start < ? LIMIT ?)"
)
# Rows deleted per retention job: about a millisecond of the writer, like a retention step.
PRUNE_ROWS = 250


def hour_from_row(row: Any) -> HealthHour:
    """A stored row of NAMES, or of its first four (COUNTS_ONLY), from either store, as a
    HealthHour. By position: by name it costs more than the read itself."""
    values = tuple(row)
    return HealthHour(
        endpoint_id=values[0],
        hour=codec.from_us(values[1]),
        ok=values[2],
        failed=values[3],
        latency=values[4:] if len(values) > 4 else NO_LATENCY,
    )


_RESULT = codec.ATTEMPT_NAMES.index("result")
_STARTED = codec.ATTEMPT_NAMES.index("started_at")
_DURATION = codec.ATTEMPT_NAMES.index("duration_us")


def _items(
    records: Sequence[AttemptRecord], rows: Sequence[Sequence[Any]]
) -> Iterable[tuple[str, int, str, int]]:
    """What core/health.tally counts, from the records (with an attempt each) and their
    attempts' rows as the store writes them (codec.attempt_to_row): the same values."""
    for r, row in zip(records, rows, strict=True):
        yield r.delivery.endpoint_id, row[_STARTED], row[_RESULT], row[_DURATION]


def _rows_of(records: Sequence[AttemptRecord]) -> list[tuple[Any, ...]]:
    return [codec.attempt_to_row(r.attempt) for r in records if r.attempt is not None]


def _rows(counts: dict[CountsKey, list[int]]) -> list[tuple[Any, ...]]:
    return [(endpoint_id, hour, *n) for (endpoint_id, hour), n in counts.items()]


class Counted:
    """A recorder batch's attempts and their counts, made before its writer job from the
    attempts' rows the job inserts (``rows``: one per record with an attempt, in order)."""

    __slots__ = ("counts", "records")

    def __init__(self, batch: Sequence[AttemptRecord], rows: Sequence[Sequence[Any]]) -> None:
        self.records = [r for r in batch if r.attempt is not None]
        self.counts = tally(_items(self.records, rows))


def _fresh(conn: sqlite3.Connection, records: Sequence[AttemptRecord]) -> list[AttemptRecord]:
    """The records whose attempt the attempts' INSERT will store: not stored yet, of a
    delivery that exists, the first of any id given twice."""
    attempts = [r.attempt for r in records if r.attempt is not None]
    ids = json.dumps([a.id for a in attempts])
    stored = {row[0] for row in conn.execute(_STORED_ATTEMPTS, (ids,))}
    deliveries = json.dumps(sorted({a.delivery_id for a in attempts}))
    live = {row[0] for row in conn.execute(_LIVE_DELIVERIES, (deliveries,))}
    fresh: list[AttemptRecord] = []
    for r in records:
        a = r.attempt
        if a is not None and a.id not in stored and a.delivery_id in live:
            stored.add(a.id)
            fresh.append(r)
    return fresh


def insert_counted(
    conn: sqlite3.Connection, counted: Counted, insert_attempts: Callable[[], None]
) -> None:
    """Runs ``insert_attempts`` (the batch's attempts' INSERT, which skips what it cannot
    store) and adds the counts of the attempts it inserted; inside the writer's job."""
    if not counted.records:
        insert_attempts()
        return
    conn.execute("SAVEPOINT health")
    before = conn.total_changes
    insert_attempts()
    counts = counted.counts
    if conn.total_changes - before != len(counted.records):
        # Rare (a batch stored again, an endpoint deleted meanwhile): find which go in.
        conn.execute("ROLLBACK TO health")
        fresh = _fresh(conn, counted.records)
        counts = tally(_items(fresh, _rows_of(fresh)))
        insert_attempts()
    bulk.run(conn, _UPSERT, _rows(counts))
    conn.execute("RELEASE health")


async def health_hours(
    db: SqliteConnections,
    endpoint_ids: Sequence[str],
    *,
    since: float,
    until: float,
    latency: bool = True,
) -> list[HealthHour]:
    """Store.health_hours on SQLite: one statement over the table's primary key."""
    if not endpoint_ids:
        return []
    rows = await db.fetchall(
        READS[latency],
        (json.dumps(list(dict.fromkeys(endpoint_ids))), codec.to_us(since), codec.to_us(until)),
    )
    return [hour_from_row(r) for r in rows]


def _prune_job(conn: sqlite3.Connection, *, before_us: int) -> int:
    return int(conn.execute(_PRUNE, (before_us, PRUNE_ROWS)).rowcount)


async def prune(db: SqliteConnections, *, cutoff: float) -> int:
    """Deletes the counters of hours that ended by ``cutoff``, PRUNE_ROWS per writer job;
    returns how many rows went."""
    before_us = hour_start_us(codec.to_us(cutoff))
    gone = 0
    while True:
        n = await db.write(lambda conn: _prune_job(conn, before_us=before_us))
        gone += n
        if n < PRUNE_ROWS:
            return gone
