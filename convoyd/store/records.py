"""Rows of events, deliveries and attempts to domain objects and back, plus their SQL jobs.

The ``*_job`` functions run on the writer thread inside a group transaction (see writer.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from convoyd.core.model import (
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Event,
)
from convoyd.store.codec import dumps, from_us, opt_from_us, opt_to_us, to_us

EVENT_COLUMNS = (
    "id, event_type, owner_id, endpoint_ids, data, headers, idempotency_key, delivery_count,"
    " created_at"
)
DELIVERY_COLUMNS = (
    "id, event_id, endpoint_id, owner_id, event_type, status, status_reason, attempt_count,"
    " attempt_limit, next_attempt_at, last_attempt_at, last_http_status, created_at, updated_at"
)
ATTEMPT_COLUMNS = (
    "id, delivery_id, number, result, started_at, duration_us, request_url, request_headers,"
    " response_status, response_headers, response_body, response_body_truncated, error,"
    " remote_address"
)


def event_from_row(row: Sequence[Any]) -> Event:
    return Event(
        id=row[0],
        event_type=row[1],
        owner_id=row[2],
        endpoint_ids=tuple(json.loads(row[3])),
        data=row[4],
        headers=json.loads(row[5]),
        idempotency_key=row[6] or "",
        delivery_count=row[7],
        created_at=from_us(row[8]),
    )


def event_to_row(event: Event, payload_hash: bytes) -> tuple[Any, ...]:
    return (
        event.id,
        event.event_type,
        event.owner_id,
        dumps(event.endpoint_ids),
        event.data,
        dumps(dict(event.headers)),
        event.idempotency_key or None,
        payload_hash,
        event.delivery_count,
        to_us(event.created_at),
    )


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        event_id=row[1],
        endpoint_id=row[2],
        owner_id=row[3],
        event_type=row[4],
        status=DeliveryStatus(row[5]),
        status_reason=row[6],
        attempt_count=row[7],
        attempt_limit=row[8],
        next_attempt_at=opt_from_us(row[9]),
        last_attempt_at=opt_from_us(row[10]),
        last_http_status=row[11],
        created_at=from_us(row[12]),
        updated_at=from_us(row[13]),
    )


def delivery_to_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.id,
        d.event_id,
        d.endpoint_id,
        d.owner_id,
        d.event_type,
        d.status.value,
        d.status_reason,
        d.attempt_count,
        d.attempt_limit,
        opt_to_us(d.next_attempt_at),
        opt_to_us(d.last_attempt_at),
        d.last_http_status,
        to_us(d.created_at),
        to_us(d.updated_at),
    )


def attempt_from_row(row: Sequence[Any]) -> Attempt:
    return Attempt(
        id=row[0],
        delivery_id=row[1],
        number=row[2],
        result=AttemptResult(row[3]),
        started_at=from_us(row[4]),
        duration=row[5] / 1_000_000,
        request_url=row[6],
        request_headers=tuple((n, v) for n, v in json.loads(row[7])),
        response_status=row[8],
        response_headers=tuple((n, v) for n, v in json.loads(row[9])),
        response_body=row[10],
        response_body_truncated=bool(row[11]),
        error=row[12],
        remote_address=row[13],
    )


def attempt_to_row(a: Attempt) -> tuple[Any, ...]:
    return (
        a.id,
        a.delivery_id,
        a.number,
        a.result.value,
        to_us(a.started_at),
        round(a.duration * 1_000_000),
        a.request_url,
        dumps(a.request_headers),
        a.response_status,
        dumps(a.response_headers),
        a.response_body,
        int(a.response_body_truncated),
        a.error,
        a.remote_address,
    )


DELIVERY_UPDATE_SQL = (
    "UPDATE deliveries SET status=?, status_reason=?, attempt_count=?, attempt_limit=?,"
    " next_attempt_at=?, last_attempt_at=?, last_http_status=?, updated_at=? WHERE id=?"
)


def delivery_update_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.status.value,
        d.status_reason,
        d.attempt_count,
        d.attempt_limit,
        opt_to_us(d.next_attempt_at),
        opt_to_us(d.last_attempt_at),
        d.last_http_status,
        to_us(d.updated_at),
        d.id,
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """The WHERE clause of a listing, built from constants with bound values."""

    clauses: tuple[str, ...]
    params: tuple[Any, ...]

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


def delivery_filters(
    *,
    event_id: str = "",
    endpoint_ids: Sequence[str] = (),
    owner_id: str = "",
    statuses: Sequence[DeliveryStatus] = (),
    created_after: float | None = None,
    created_before: float | None = None,
    before_id: str = "",
    event_type: str = "",
) -> Filters:
    clauses: list[str] = []
    params: list[Any] = []
    if event_id:
        clauses.append("event_id = ?")
        params.append(event_id)
    if endpoint_ids:
        clauses.append(f"endpoint_id IN ({','.join('?' * len(endpoint_ids))})")
        params.extend(endpoint_ids)
    if owner_id:
        clauses.append("owner_id = ?")
        params.append(owner_id)
    if statuses:
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(s.value for s in statuses)
    if event_type:
        clauses.append("event_type = ?")
        params.append(event_type)
    if created_after is not None:
        clauses.append("created_at >= ?")
        params.append(to_us(created_after))
    if created_before is not None:
        clauses.append("created_at < ?")
        params.append(to_us(created_before))
    if before_id:
        clauses.append("id < ?")
        params.append(before_id)
    return Filters(tuple(clauses), tuple(params))


def read_delivery(conn: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = conn.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608 - constant columns
        (delivery_id,),
    ).fetchone()
    return None if row is None else delivery_from_row(row)


DeliveryChange = Callable[[Delivery, Endpoint], tuple[Delivery, Endpoint]]
