"""Events and deliveries in the SQLite store: which statuses are pending, and row mapping."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from convoyd.core.model import (
    PENDING_STATUSES,
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    Event,
)
from convoyd.store import codec, portal_sql
from convoyd.store.base import DeliveryQuery, IngestNeeds, IngestSnapshot, IngestWrite
from convoyd.store.connections import apply_migrations
from convoyd.store.sqlite import DB_FILE, SqliteStore
from convoyd.store.where import Where

ENDPOINT = Endpoint(
    id="ep_00000000000000000000000001",
    spec=EndpointSpec(url="https://hooks.invalid/in", owner_id="acme"),
    status=EndpointStatus.ACTIVE,
    status_reason="",
    status_changed_at=1.0,
    secrets=(),
    created_at=1.0,
    updated_at=1.0,
)
EVENT = Event(
    id="ev_00001",
    event_type="order.paid",
    data=b"{}",
    idempotency_key="key-1",
    endpoint_ids=(ENDPOINT.id,),
    owner_id="acme",
    headers={"X-A": "1"},
    created_at=10.0,
    delivery_count=len(DeliveryStatus),
)


def delivery(status: DeliveryStatus) -> Delivery:
    return Delivery(
        id=f"dl_{status.value}",
        event_id=EVENT.id,
        endpoint_id=ENDPOINT.id,
        owner_id="acme",
        event_type=EVENT.event_type,
        status=status,
        status_reason="",
        attempt_count=1,
        attempt_limit=5,
        next_attempt_at=20.0,
        last_attempt_at=None,
        last_http_status=0,
        created_at=10.0,
        updated_at=10.0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path)
    await s.open()
    await s.insert_endpoint(ENDPOINT)
    deliveries = [delivery(status) for status in DeliveryStatus]

    def build(reader: IngestSnapshot) -> list[IngestWrite]:
        return [IngestWrite(event=EVENT, payload_hash=b"hash", deliveries=deliveries)]

    await s.ingest(IngestNeeds(), build)
    yield s  # type: ignore[misc]
    await s.close()


async def test_due_deliveries_and_counts_are_the_pending_statuses(store: SqliteStore) -> None:
    due = await store.due_deliveries(after=None, until=30.0)
    assert {d.status for d in due} == PENDING_STATUSES
    counts = await store.status_counts()
    assert counts.deliveries == {s.value: 1 for s in PENDING_STATUSES}
    assert counts.endpoints == {"active": 1}
    assert await store.due_deliveries(after=20.0, until=30.0) == []


async def test_rows_read_back_by_column_name(store: SqliteStore) -> None:
    assert await store.get_event(EVENT.id) == EVENT
    for status in DeliveryStatus:
        assert await store.get_delivery(f"dl_{status.value}") == delivery(status)

    def build(reader: IngestSnapshot) -> list[IngestWrite]:
        found = reader.idempotent_event("key-1")
        assert found == (EVENT, b"hash")
        return []

    await store.ingest(IngestNeeds(idempotency_keys=frozenset({"key-1"})), build)


async def test_modify_and_reschedule_write_the_named_columns(store: SqliteStore) -> None:
    changed = dataclasses.replace(
        delivery(DeliveryStatus.RETRY),
        status=DeliveryStatus.FAILURE,
        status_reason="gave up",
        attempt_count=5,
        next_attempt_at=None,
        last_attempt_at=15.0,
        last_http_status=503,
        updated_at=15.0,
    )
    got = await store.modify_delivery(changed.id, lambda d, ep: (changed, ep))
    assert got == changed
    assert await store.get_delivery(changed.id) == changed
    query = DeliveryQuery(statuses=[DeliveryStatus.FAILURE], endpoint_ids=[ENDPOINT.id])
    rescheduled = await store.reschedule_deliveries(query, now=40.0, reason="retry", limit=10)
    assert [d.id for d in rescheduled] == ["dl_failure", changed.id]  # by id, both failed now
    again = rescheduled[1]
    assert await store.get_delivery(changed.id) == again
    assert (again.status, again.attempt_limit, again.next_attempt_at) == (
        DeliveryStatus.SCHEDULED,
        6,
        40.0,
    )


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ("events", codec.EVENT_INSERT_NAMES),
        ("deliveries", codec.DELIVERY_NAMES),
        ("attempts", codec.ATTEMPT_NAMES),
        ("endpoints", codec.ENDPOINT_NAMES),
        ("endpoint_secrets", codec.SECRET_NAMES),
        ("portal_links", (*portal_sql.LINK_NAMES, "token_hash")),
        ("portal_sessions", (*portal_sql.SESSION_NAMES, "token_hash")),
    ],
)
def test_column_lists_name_every_column_of_their_table(
    tmp_path: Path, table: str, names: tuple[str, ...]
) -> None:
    apply_migrations(tmp_path / DB_FILE)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    try:
        columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()
    assert sorted(names) == sorted(columns)


def test_update_names_are_delivery_columns_with_the_key_last() -> None:
    assert set(codec.DELIVERY_UPDATE_NAMES) <= set(codec.DELIVERY_NAMES)
    assert codec.DELIVERY_UPDATE_NAMES[-1] == "id"


ATTEMPT = Attempt(
    id="at_1",
    delivery_id="dl_1",
    number=1,
    result=AttemptResult.HTTP_ERROR,
    started_at=1.5,
    duration=0.25,
    request_url="https://hooks.invalid/in",
    request_headers=(("webhook-id", "dl_1"),),
    response_status=500,
    response_headers=(("Server", "x"),),
    response_body=b"\x00oops",
    response_body_truncated=True,
    error="",
    remote_address="127.0.0.1",
)


@pytest.mark.parametrize(
    ("names", "row", "decode", "value"),
    [
        (
            codec.EVENT_INSERT_NAMES,
            codec.event_insert_row(EVENT, b"h"),
            codec.event_from_row,
            EVENT,
        ),
        (
            codec.DELIVERY_NAMES,
            codec.delivery_to_row(delivery(DeliveryStatus.RETRY)),
            codec.delivery_from_row,
            delivery(DeliveryStatus.RETRY),
        ),
        (codec.ATTEMPT_NAMES, codec.attempt_to_row(ATTEMPT), codec.attempt_from_row, ATTEMPT),
    ],
)
def test_rows_written_in_list_order_read_back_by_name(
    names: tuple[str, ...], row: tuple[object, ...], decode: object, value: object
) -> None:
    assert callable(decode)
    assert decode(dict(zip(names, row, strict=True))) == value


@pytest.mark.parametrize(
    ("where", "sql", "params"),
    [
        (Where(), "", []),
        (Where().add("a = ?", 1), "WHERE a = ?", [1]),
        (
            Where().add("a = ?", 1).among("b", ["x", "y"]),
            "WHERE a = ? AND b IN (?,?)",
            [1, "x", "y"],
        ),
        (Where().add("c IS NULL AND d > ?", 2), "WHERE c IS NULL AND d > ?", [2]),
    ],
)
def test_where_joins_constant_clauses_and_binds_values(
    where: Where, sql: str, params: list[object]
) -> None:
    assert (where.sql(), where.params) == (sql, params)
