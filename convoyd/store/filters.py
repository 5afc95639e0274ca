"""The WHERE clauses of the event and delivery listings, for both stores.

The clauses are the same SQL on SQLite and PostgreSQL but for lists of values: SQLite binds
one ``?`` per value (``IN (?, ?)``), PostgreSQL one array (``= ANY($n::text[])``), which keeps
its statement text, and so its prepared statement, the same whatever the list's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from convoyd.core.model import PENDING_STATUSES
from convoyd.store import codec
from convoyd.store.base import DeliveryQuery, EventQuery, StatusCounts
from convoyd.store.where import Where

# The pending statuses as literals, not bound values: the planners of both stores then use the
# partial index on due deliveries, whose predicate is this very list (in both schemas).
PENDING = ", ".join(sorted(f"'{s.value}'" for s in PENDING_STATUSES))

# Pending deliveries and endpoints by status, in one statement answered from indexes.
STATUS_COUNTS = (
    "SELECT 'd' AS kind, status, count(*) AS n FROM deliveries"  # noqa: S608 - constant statuses
    f" WHERE status IN ({PENDING}) GROUP BY status"
    " UNION ALL SELECT 'e', status, count(*) FROM endpoints GROUP BY status"
)


def status_counts(rows: Iterable[codec.Row]) -> StatusCounts:
    """The rows of STATUS_COUNTS as StatusCounts."""
    deliveries: dict[str, int] = {}
    endpoints: dict[str, int] = {}
    for r in rows:
        (deliveries if r["kind"] == "d" else endpoints)[r["status"]] = int(r["n"])
    return StatusCounts(deliveries=deliveries, endpoints=endpoints)


def _among(where: Where, column: str, values: Sequence[str], *, arrays: bool) -> None:
    if arrays:
        where.add(f"{column} = ANY(?::text[])", list(values))
    else:
        where.among(column, values)


def _created(where: Where, after: float | None, before: float | None) -> None:
    if after is not None:
        where.add("created_at >= ?", codec.to_us(after))
    if before is not None:
        where.add("created_at < ?", codec.to_us(before))


def delivery_filters(query: DeliveryQuery, before_id: str = "", *, arrays: bool) -> Where:
    where = Where()
    if query.event_id:
        where.add("event_id = ?", query.event_id)
    if query.endpoint_ids:
        _among(where, "endpoint_id", query.endpoint_ids, arrays=arrays)
    if query.owner_id:
        where.add("owner_id = ?", query.owner_id)
    if query.statuses:
        _among(where, "status", [s.value for s in query.statuses], arrays=arrays)
    if query.event_type:
        where.add("event_type = ?", query.event_type)
    _created(where, query.created_after, query.created_before)
    if before_id:
        where.add("id < ?", before_id)
    return where


def event_filters(query: EventQuery, before_id: str = "") -> Where:
    where = Where()
    if query.event_type:
        where.add("event_type = ?", query.event_type)
    if query.owner_id:
        where.add("owner_id = ?", query.owner_id)
    if query.endpoint_id:
        where.add(
            "id IN (SELECT event_id FROM deliveries WHERE endpoint_id = ?)", query.endpoint_id
        )
    _created(where, query.created_after, query.created_before)
    if before_id:
        where.add("id < ?", before_id)
    return where
