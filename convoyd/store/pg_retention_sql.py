"""The statements of retention on PostgreSQL (store/pg_retention.py, which says what they do
and why), and the day partitions and id ranges they are run on.

Table and partition names in these statements are constants or come from the catalog and match
the day partitions' pattern, so none needs quoting.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable

from convoyd.core.ids import id_floor
from convoyd.store.filters import PENDING
from convoyd.store.pg_schema import DAY, day_start

# How long a whole-day drop may wait for the tables (the hot writes queue behind it meanwhile).
LOCK_WAIT = "50ms"
# The SQLSTATE a whole-day drop raises to roll itself back when a delivery waits after all.
STILL_WAITING = "CVRW1"

# Partitions' rows as the statistics have them (cheap; set by (auto)vacuum and analyze).
RELTUPLES = "SELECT relname, greatest(reltuples, 0) AS n FROM pg_class WHERE relname = ANY($1)"

# Deliveries first: once a day's deliveries have gone, none of its events can wait again.
DROP_ORDER = ("deliveries", "attempts", "events")
_DAY_PARTITION = re.compile(r"(events|deliveries|attempts)_p(\d{4})(\d{2})(\d{2})")
PARTITIONS = (
    "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
    " WHERE i.inhparent IN ('events'::regclass, 'deliveries'::regclass, 'attempts'::regclass)"
)


def _candidates(table: str) -> str:
    """Up to $6 events of ``table`` with ids in [$1, $2) after the cursor $3 that have no
    waiting delivery (ids in [$4, $5)) as this statement sees them."""
    return (
        f"SELECT e.id FROM {table} AS e WHERE e.id >= $1 AND e.id < $2 AND e.id > $3"  # noqa: S608 - constant table
        " AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id"
        f" AND d.id >= $4 AND d.id < $5 AND d.status IN ({PENDING}))"
        " ORDER BY e.id LIMIT $6"
    )


# The events table (its partitions by range), or only its DEFAULT partition.
CANDIDATES = {table: _candidates(table) for table in ("events", "events_default")}


# Every candidate's deliveries, whatever their status: filtering on status here would let a
# row that a concurrent transaction moved back to waiting drop out of the lock instead. No
# ORDER BY id: it can tempt the planner into walking the day's primary key instead of the
# event index (a deadlock with another locker is retried anyway).
LOCK_DELIVERIES = (
    "SELECT id, event_id, status FROM deliveries"
    " WHERE event_id = ANY($1::text[]) AND id >= $2 AND id < $3 FOR UPDATE"
)


def _delete(table: str, column: str) -> str:
    """Deletes the rows of ``table`` whose ``column`` is one of $1 within [$2, $3); answers how
    many went from which partition."""
    return (
        f"WITH gone AS (DELETE FROM {table} WHERE {column} = ANY($1::text[])"  # noqa: S608 - constant names
        f" AND {column} >= $2 AND {column} < $3 RETURNING tableoid)"
        " SELECT tableoid::regclass::text AS part, count(*) AS n FROM gone GROUP BY tableoid"
    )


DELETE_ATTEMPTS = _delete("attempts", "delivery_id")
DELETE_DELIVERIES = _delete("deliveries", "id")
DELETE_EVENTS = _delete("events", "id")
# The created_at condition is evaluated again on a row a concurrent ingest has just taken over
# (and made young): such a key stays.
DELETE_KEYS = (
    "DELETE FROM idempotency_keys WHERE key = ANY(ARRAY(SELECT key FROM idempotency_keys"
    " WHERE created_at < $1 ORDER BY created_at LIMIT $2)) AND created_at < $1"
)
SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n FROM pg_class AS c"
    " WHERE c.relkind = 'r' AND c.relnamespace = to_regnamespace(current_schema())"
)


def waiting(dl: str) -> str:
    """Whether the deliveries partition ``dl`` holds a waiting delivery (the partial index)."""
    return f"EXISTS (SELECT 1 FROM {dl} WHERE status IN ({PENDING}))"  # noqa: S608 - catalog names


def drop_partition(table: str, part: str) -> str:
    """The statement that drops ``part``, a day partition of ``table`` (pg_retention.py's
    docstring). Sent alone, outside a transaction block, it is a transaction of its own that
    commits as soon as it ends: the parent stays locked for no round trip to the client. The
    parent is locked before the partition, as every query of the table takes them: one holding
    the parent and waiting for the partition would otherwise deadlock with the drop."""
    recheck = ""
    if table == "deliveries":
        recheck = f"""
            IF {waiting(part)} THEN
                RAISE EXCEPTION 'a delivery of {part} waits' USING ERRCODE = '{STILL_WAITING}';
            END IF;"""
    return f"""
        DO $$ BEGIN
            SET LOCAL lock_timeout = '{LOCK_WAIT}';
            SET LOCAL synchronous_commit = off;
            LOCK TABLE ONLY {table}, {part} IN ACCESS EXCLUSIVE MODE;{recheck}
            DROP TABLE {part};
        END $$
    """


# Whether a DEFAULT partition holds rows of a day whose own partition of that table is missing
# ($1, $2: the day's id range for the table's partition key).
IN_DEFAULT = {
    "deliveries": "SELECT EXISTS (SELECT 1 FROM deliveries_default WHERE id >= $1 AND id < $2)",
    "attempts": (
        "SELECT EXISTS (SELECT 1 FROM attempts_default"
        " WHERE delivery_id >= $1 AND delivery_id < $2)"
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Day:
    """A UTC day's partitions, by parent table (a day may lack one if making it failed)."""

    start: float
    names: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Range:
    """Events to prune by rows: ``table`` (the parent or its DEFAULT partition), ids in
    [low, high), and the ids their deliveries can have."""

    table: str
    low: str
    high: str
    deliveries_low: str
    deliveries_high: str


def event_range(table: str, start: float | None, end: float) -> Range:
    """Events of ``table`` created in [start, end) (start None: since ever). Their deliveries
    were made at the same instants, so in the same days: from start's day to end's."""
    last_day = day_start(end - 0.001)  # of the last millisecond before ``end``
    return Range(
        table=table,
        low="" if start is None else id_floor("ev", start),
        high=id_floor("ev", end),
        deliveries_low="" if start is None else id_floor("dl", day_start(start)),
        deliveries_high=id_floor("dl", last_day + DAY),
    )


def days(names: Iterable[str]) -> list[Day]:
    """The day partitions among ``names``, by day, oldest first."""
    days: dict[float, dict[str, str]] = {}
    for name in names:
        match = _DAY_PARTITION.fullmatch(name)
        if match is None:
            continue  # the DEFAULT partitions
        table, year, month, day = match.groups()
        start = datetime.datetime(int(year), int(month), int(day), tzinfo=datetime.UTC)
        days.setdefault(start.timestamp(), {})[table] = name
    return [Day(start, days[start]) for start in sorted(days)]
