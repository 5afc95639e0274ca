"""Events, deliveries and attempts in PostgreSQL (PgEventTables), against a real server: the
same calls give what the SQLite store gives, and concurrent writers do not lose or double
anything. Each test gets a fresh database on the suite's server."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from convoyd.core.ids import new_id
from convoyd.core.model import (
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    Event,
    Secret,
)
from convoyd.errors import AlreadyExistsError, NotFoundError
from convoyd.settings import PostgresSettings
from convoyd.store import codec, filters, pg_events
from convoyd.store.base import (
    AttemptRecord,
    DeliveryQuery,
    EventQuery,
    IngestNeeds,
    IngestSnapshot,
    IngestWrite,
)
from convoyd.store.pg_connections import PgConnections
from convoyd.store.pg_endpoints import read_endpoint
from convoyd.store.pg_events import PgEventTables
from convoyd.store.sqlite import SqliteStore
from tests.pgserver import lock_waiters

# Ids of today, so rows land in the daily partitions (made around the real clock at open);
# the few tests with times near 0 exercise the DEFAULT partitions too.
T0 = float(int(time.time()))
_SEQUENCE = itertools.count(1)


def ident(prefix: str) -> str:
    """A new id of ``prefix``, after every earlier one."""
    n = next(_SEQUENCE)
    return new_id(prefix, T0 + n / 1000, random.Random(n))


def endpoint(owner: str, *, secrets: tuple[Secret, ...] = ()) -> Endpoint:
    return Endpoint(
        id=ident("ep"),
        spec=EndpointSpec(url="https://hooks.invalid/in", owner_id=owner, event_types=("a", "b")),
        status=EndpointStatus.ACTIVE,
        status_reason="",
        status_changed_at=1.0,
        secrets=secrets,
        created_at=1.0,
        updated_at=1.0,
    )


def event(
    event_type: str, targets: Sequence[Endpoint], *, key: str = "", at: float = 100.0
) -> IngestWrite:
    """A fresh event with a delivery to each of ``targets``."""
    ev = Event(
        id=ident("ev"),
        event_type=event_type,
        data=b'{"n": 1}\x00',
        idempotency_key=key,
        endpoint_ids=tuple(t.id for t in targets),
        owner_id="",
        headers={"X-A": "1"} if key else {},
        created_at=at,
        delivery_count=len(targets),
    )
    deliveries = [
        Delivery(
            id=ident("dl"),
            event_id=ev.id,
            endpoint_id=t.id,
            owner_id=t.spec.owner_id,
            event_type=event_type,
            status=DeliveryStatus.SCHEDULED,
            status_reason="",
            attempt_count=0,
            attempt_limit=None,
            next_attempt_at=at,
            last_attempt_at=None,
            last_http_status=0,
            created_at=at,
            updated_at=at,
        )
        for t in targets
    ]
    return IngestWrite(event=ev, payload_hash=b"hash-" + key.encode(), deliveries=deliveries)


def attempt(d: Delivery, number: int, *, result: AttemptResult) -> Attempt:
    return Attempt(
        id=ident("at"),
        delivery_id=d.id,
        number=number,
        result=result,
        started_at=200.0 + number,
        duration=0.125,
        request_url="https://hooks.invalid/in",
        request_headers=(("webhook-id", d.id),),
        response_status=200 if result is AttemptResult.SUCCESS else 500,
        response_headers=(("Server", "x"),),
        response_body=b"\x00body",
        response_body_truncated=number % 2 == 1,
        error="",
        remote_address="127.0.0.1",
    )


def fixed(writes: list[IngestWrite]) -> Callable[[IngestSnapshot], list[IngestWrite]]:
    return lambda snapshot: writes


def keyed(
    fresh: IngestWrite, key: str, calls: list[IngestSnapshot] | None = None
) -> Callable[[IngestSnapshot], list[IngestWrite]]:
    """The service's idempotency rule in short: replay the key's event, or write ``fresh``."""

    def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
        if calls is not None:
            calls.append(snapshot)
        found = snapshot.idempotent_event(key)
        if found is None:
            return [fresh]
        if found[1] != fresh.payload_hash:
            raise AlreadyExistsError("another payload")
        return [IngestWrite(event=found[0], payload_hash=found[1], replay=True)]

    return build


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def pg_dsn(postgres_dsn: str) -> str:
    """A fresh database of this test's own on the suite's server (tests/conftest.py)."""
    return postgres_dsn


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[PgConnections]:
    conns = PgConnections(PostgresSettings(dsn=pg_dsn))
    await conns.open()
    yield conns
    await conns.close()


@pytest.fixture
async def db2(pg_dsn: str, db: PgConnections) -> AsyncIterator[PgConnections]:
    """A second pool on the same database, as a second node would have."""
    conns = PgConnections(PostgresSettings(dsn=pg_dsn))
    await conns.open()
    yield conns
    await conns.close()


@pytest.fixture
def pg(db: PgConnections) -> PgEventTables:
    return PgEventTables(db)


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path)
    await store.open()
    yield store
    await store.close()


async def pg_insert_endpoint(db: PgConnections, ep: Endpoint) -> None:
    values = codec.endpoint_values(ep)
    marks = ", ".join(f"${n}" for n in range(1, len(codec.ENDPOINT_NAMES) + 1))
    await db.execute(
        f"INSERT INTO endpoints ({codec.ENDPOINT_COLUMNS}) VALUES ({marks})",  # noqa: S608 - constant columns
        *(values[c] for c in codec.ENDPOINT_NAMES),
    )
    for secret in ep.secrets:
        s = codec.secret_values(ep.id, secret)
        await db.execute(
            f"INSERT INTO endpoint_secrets ({codec.SECRET_COLUMNS})"  # noqa: S608 - constant columns
            " VALUES ($1, $2, $3, $4, $5)",
            *(s[c] for c in codec.SECRET_NAMES),
        )


async def insert_both(lite: SqliteStore, db: PgConnections, *endpoints: Endpoint) -> None:
    for ep in endpoints:
        await lite.insert_endpoint(ep)
        await pg_insert_endpoint(db, ep)


async def pg_get_endpoint(db: PgConnections, endpoint_id: str) -> Endpoint:
    async def job(conn: asyncpg.Connection) -> Endpoint:
        return await read_endpoint(conn, endpoint_id, for_update=True)

    return await db.transaction(job)


async def event_count(db: PgConnections) -> int:
    rows = await db.fetch("SELECT count(*) AS n FROM events")
    return int(rows[0]["n"])


# -- tests ------------------------------------------------------------------------------------


async def test_unnest_casts_are_the_schema_types(db: PgConnections) -> None:
    rows = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    )
    schema = {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}
    written = {
        "events": codec.EVENT_INSERT_NAMES,
        "deliveries": codec.DELIVERY_NAMES,
        "attempts": codec.ATTEMPT_NAMES,
        "endpoint_secrets": codec.SECRET_NAMES,
    }
    for table, names in written.items():
        for name in names:
            assert pg_events._PG_TYPES[name] == schema[(table, name)], (table, name)


async def test_ingest_and_reads_give_what_sqlite_gives(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    a1, a2, b1 = endpoint("acme"), endpoint("acme"), endpoint("bolt")
    await insert_both(lite, db, a1, a2, b1)
    writes = [
        event("a", [a1, a2], key="k1"),
        event("b", [a1], at=150.0),
        event("a", [b1], at=200.0),
        event("b", [], at=250.0),
    ]
    writes.append(IngestWrite(event=writes[0].event, payload_hash=b"hash-k1", replay=True))
    needs = IngestNeeds(endpoint_ids=frozenset({a1.id, a2.id, b1.id}))
    assert await pg.ingest(needs, fixed(writes)) == writes
    assert await lite.ingest(needs, fixed(writes)) == writes
    assert await event_count(db) == 4

    for w in writes:
        assert await pg.get_event(w.event.id) == w.event
        for d in w.deliveries:
            assert await pg.get_delivery(d.id) == d
    ids = [w.event.id for w in writes] + ["ev_missing"]
    payloads = await pg.load_payloads(ids)
    assert payloads == await lite.load_payloads(ids)
    assert payloads[writes[0].event.id].data == b'{"n": 1}\x00'
    assert payloads[writes[0].event.id].headers == {"X-A": "1"}
    assert await pg.load_payloads([]) == {}

    event_queries = [
        EventQuery(),
        EventQuery(event_type="a"),
        EventQuery(endpoint_id=a1.id),
        EventQuery(endpoint_id=b1.id, event_type="a"),
        EventQuery(created_after=150.0),
        EventQuery(created_before=200.0, created_after=100.0),
        EventQuery(owner_id="nobody"),
    ]
    for eq in event_queries:
        everything = await pg.list_events(eq, before_id="", limit=100)
        assert everything == await lite.list_events(eq, before_id="", limit=100), eq
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        paged = await pages(functools.partial(pg.list_events, eq, limit=2))
        assert paged == [e.id for e in everything]
    delivery_queries = [
        DeliveryQuery(),
        DeliveryQuery(event_id=writes[0].event.id),
        DeliveryQuery(endpoint_ids=[a1.id, b1.id]),
        DeliveryQuery(owner_id="acme", event_type="b"),
        DeliveryQuery(statuses=[DeliveryStatus.SCHEDULED, DeliveryStatus.RETRY]),
        DeliveryQuery(statuses=[DeliveryStatus.FAILURE]),
        DeliveryQuery(created_after=150.0, created_before=250.0),
    ]
    for dq in delivery_queries:
        found = await pg.list_deliveries(dq, before_id="", limit=100)
        assert found == await lite.list_deliveries(dq, before_id="", limit=100), dq
        assert await pg.count_deliveries(dq) == len(found) == await lite.count_deliveries(dq)
        paged = await pages(functools.partial(pg.list_deliveries, dq, limit=2))
        assert paged == [d.id for d in found]
    assert len(await pg.list_deliveries(DeliveryQuery(), before_id="", limit=100)) == 4


async def pages(page: Callable[..., Awaitable[Sequence[Any]]]) -> list[str]:
    """Every id of a listing, fetched a page at a time as a client pages through it."""
    seen: list[str] = []
    while True:
        got = [item.id for item in await page(before_id=seen[-1] if seen else "")]
        seen += got
        if len(got) < 2:
            return seen


async def test_not_found_errors_say_what_sqlite_says(lite: SqliteStore, pg: PgEventTables) -> None:
    for store in (lite, pg):
        with pytest.raises(NotFoundError, match=r"^event ev_x not found$"):
            await store.get_event("ev_x")
        with pytest.raises(NotFoundError, match=r"^delivery dl_x not found$"):
            await store.get_delivery("dl_x")
        with pytest.raises(NotFoundError, match=r"^delivery dl_x not found$"):
            await store.modify_delivery("dl_x", lambda d, ep: (d, ep))
        assert await store.list_attempts("dl_x", after_number=0, limit=10) == []


async def test_ingest_stores_nothing_when_build_raises(
    db: PgConnections, pg: PgEventTables
) -> None:
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)

    def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
        assert list(snapshot.endpoints([a1.id, "ep_none"])) == [a1.id]
        raise AlreadyExistsError("refused")

    with pytest.raises(AlreadyExistsError, match="refused"):
        await pg.ingest(IngestNeeds(endpoint_ids=frozenset({a1.id, "ep_none"})), build)
    assert await event_count(db) == 0


async def test_snapshot_has_endpoints_by_id_and_owner_without_secrets(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    secret = Secret(id="sec_1", value="whsec_abc", created_at=1.0, expires_at=None)
    a1, a2, b1 = endpoint("acme", secrets=(secret,)), endpoint("acme"), endpoint("bolt")
    await insert_both(lite, db, a1, a2, b1)
    needs = IngestNeeds(endpoint_ids=frozenset({b1.id}), owner_ids=frozenset({"acme", "none"}))
    seen: list[IngestSnapshot] = []

    def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
        seen.append(snapshot)
        return []

    assert await pg.ingest(needs, build) == []
    assert await lite.ingest(needs, build) == []
    assert seen[0] == seen[1]
    assert seen[0].by_id[a1.id] == dataclasses.replace(a1, secrets=())
    assert seen[0].owner_endpoints("acme") == [dataclasses.replace(a1, secrets=()), a2]
    assert set(seen[0].by_id) == {a1.id, a2.id, b1.id}


async def test_ingest_waits_for_a_concurrent_endpoint_change_and_sees_it(
    db: PgConnections, pg: PgEventTables, pg_dsn: str
) -> None:
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)
    other = await asyncpg.connect(pg_dsn)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM endpoints WHERE id = $1 FOR UPDATE", a1.id)
        await other.execute("UPDATE endpoints SET status = 'paused' WHERE id = $1", a1.id)
        seen: list[IngestSnapshot] = []

        def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
            seen.append(snapshot)
            return []

        task = asyncio.create_task(pg.ingest(IngestNeeds(endpoint_ids=frozenset({a1.id})), build))
        await lock_waiters(other, 1)
        await tx.commit()
        await task
    finally:
        await other.close()
    assert [s.by_id[a1.id].status for s in seen] == [EndpointStatus.PAUSED]


async def test_ingest_reruns_build_when_its_endpoint_went_away(
    db: PgConnections, pg: PgEventTables
) -> None:
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)
    gone = endpoint("acme")  # never stored: as if deleted between snapshot and insert
    calls: list[IngestSnapshot] = []

    def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
        calls.append(snapshot)
        if len(calls) == 1:
            return [event("a", [a1, gone])]
        if gone.id not in snapshot.by_id:
            raise NotFoundError(f"endpoint {gone.id} not found")
        raise AssertionError("the endpoint never existed")

    with pytest.raises(NotFoundError, match=gone.id):
        await pg.ingest(IngestNeeds(endpoint_ids=frozenset({a1.id, gone.id})), build)
    assert len(calls) == 2
    assert await event_count(db) == 0
    assert await pg.count_deliveries(DeliveryQuery()) == 0


async def test_concurrent_ingests_of_one_key_insert_one_event(
    db: PgConnections, db2: PgConnections, pg_dsn: str
) -> None:
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)
    first, second = PgEventTables(db), PgEventTables(db2)

    def needs_of(key: str) -> IngestNeeds:
        return IngestNeeds(endpoint_ids=frozenset({a1.id}), idempotency_keys=frozenset({key}))

    reruns = 0
    gate = await asyncpg.connect(pg_dsn)
    try:
        for round_ in range(5):
            key = f"key-{round_}"
            calls: list[IngestSnapshot] = []
            # Both ingests queue behind this lock on the endpoint and start together when
            # it goes, so both read the key as unused before either commits.
            tx = gate.transaction()
            await tx.start()
            await gate.execute("SELECT 1 FROM endpoints WHERE id = $1 FOR UPDATE", a1.id)
            both = asyncio.gather(
                first.ingest(needs_of(key), keyed(event("a", [a1], key=key), key, calls)),
                second.ingest(needs_of(key), keyed(event("a", [a1], key=key), key, calls)),
            )
            await lock_waiters(gate, 2)
            await tx.commit()
            one, other = await both
            assert one[0].event == other[0].event
            assert sorted([one[0].replay, other[0].replay]) == [False, True]
            reruns += len(calls) - 2
            rows = await db.fetch("SELECT id FROM events WHERE idempotency_key = $1", key)
            assert [r["id"] for r in rows] == [one[0].event.id]
            assert len(await first.list_deliveries(DeliveryQuery(), before_id="", limit=99)) == (
                round_ + 1
            )
    finally:
        await gate.close()
    assert reruns > 0  # the race was run: some ingest lost the key and built again


async def test_a_key_claimed_by_a_later_commit_is_not_taken_from_it(
    db: PgConnections, pg: PgEventTables, pg_dsn: str
) -> None:
    """The other transaction claims the key before this ingest's insert starts and commits
    while that insert waits: the insert must not see the key's event as gone."""
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)
    theirs = event("a", [], key="k")
    other = await asyncpg.connect(pg_dsn)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            f"INSERT INTO events ({', '.join(codec.EVENT_INSERT_NAMES)})"  # noqa: S608 - constant columns
            f" VALUES ({', '.join(f'${n}' for n in range(1, len(codec.EVENT_INSERT_NAMES) + 1))})",
            *codec.event_insert_row(theirs.event, theirs.payload_hash),
        )
        await other.execute(
            "INSERT INTO idempotency_keys (key, event_id, created_at) VALUES ($1, $2, $3)",
            "k",
            theirs.event.id,
            codec.to_us(theirs.event.created_at),
        )
        calls: list[IngestSnapshot] = []
        needs = IngestNeeds(endpoint_ids=frozenset({a1.id}), idempotency_keys=frozenset({"k"}))
        task = asyncio.create_task(pg.ingest(needs, keyed(event("a", [a1], key="k"), "k", calls)))
        await lock_waiters(other, 1)  # the ingest's insert, on the key's row
        await tx.commit()
        got = await task
    finally:
        await other.close()
    assert got == [IngestWrite(event=theirs.event, payload_hash=theirs.payload_hash, replay=True)]
    assert len(calls) == 2
    assert await event_count(db) == 1
    assert await pg.count_deliveries(DeliveryQuery()) == 0


async def test_a_key_older_than_the_window_is_taken_over(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    a1 = endpoint("acme")
    await insert_both(lite, db, a1)
    old, new = event("a", [a1], key="k", at=10.0), event("a", [a1], key="k", at=30.0)
    results = []
    for store in (lite, pg):
        for since, write in ((0.0, old), (20.0, new), (20.0, event("a", [a1], key="k"))):
            needs = IngestNeeds(idempotency_keys=frozenset({"k"}), idempotency_since=since)
            results.append(await store.ingest(needs, keyed(write, "k")))
    assert results[:3] == results[3:]
    assert [w[0].event.id for w in results[:3]] == [old.event.id, new.event.id, new.event.id]
    assert [w[0].replay for w in results[:3]] == [False, False, True]
    rows = await db.fetch("SELECT event_id FROM idempotency_keys WHERE key = 'k'")
    assert [r["event_id"] for r in rows] == [new.event.id]
    assert await event_count(db) == 2


async def test_a_live_key_whose_event_is_gone_is_taken_over(
    db: PgConnections, pg: PgEventTables
) -> None:
    await db.execute(
        "INSERT INTO idempotency_keys (key, event_id, created_at) VALUES ('k', 'ev_gone', $1)",
        codec.to_us(100.0),
    )
    write = event("a", [], key="k", at=110.0)
    needs = IngestNeeds(idempotency_keys=frozenset({"k"}), idempotency_since=50.0)
    assert await pg.ingest(needs, keyed(write, "k")) == [write]
    again = await pg.ingest(needs, keyed(event("a", [], key="k"), "k"))
    assert [(w.event, w.replay) for w in again] == [(write.event, True)]


async def test_record_keeps_the_latest_change_and_skips_gone_deliveries(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    a1, doomed = endpoint("acme"), endpoint("acme")
    await insert_both(lite, db, a1, doomed)
    write = event("a", [a1, doomed])
    for store in (lite, pg):
        await store.ingest(IngestNeeds(), fixed([write]))
    d, gone = write.deliveries
    await lite.delete_endpoint(doomed.id)
    await db.execute("DELETE FROM endpoints WHERE id = $1", doomed.id)
    first, second = (
        attempt(d, 1, result=AttemptResult.HTTP_ERROR),
        attempt(d, 2, result=AttemptResult.SUCCESS),
    )
    retrying = dataclasses.replace(
        d, status=DeliveryStatus.RETRY, attempt_count=1, next_attempt_at=205.0, updated_at=201.0
    )
    done = dataclasses.replace(
        d,
        status=DeliveryStatus.SUCCESS,
        attempt_count=2,
        next_attempt_at=None,
        last_attempt_at=202.0,
        last_http_status=200,
        updated_at=202.0,
    )
    batch = [
        AttemptRecord(attempt=first, delivery=retrying),
        AttemptRecord(attempt=attempt(gone, 1, result=AttemptResult.TIMEOUT), delivery=gone),
        AttemptRecord(attempt=second, delivery=done),
        AttemptRecord(attempt=None, delivery=done),
    ]
    for store in (lite, pg):
        await store.record(batch)
    assert await pg.get_delivery(d.id) == done == await lite.get_delivery(d.id)
    attempts = await pg.list_attempts(d.id, after_number=0, limit=10)
    assert attempts == [first, second] == await lite.list_attempts(d.id, after_number=0, limit=10)
    assert await pg.list_attempts(d.id, after_number=1, limit=10) == [second]
    assert await pg.list_attempts(d.id, after_number=0, limit=1) == [first]
    rows = await db.fetch("SELECT count(*) AS n FROM attempts")
    assert rows[0]["n"] == 2
    # A batch sent again (after a lost connection) changes nothing and fails nothing.
    await pg.record(batch)
    assert await pg.list_attempts(d.id, after_number=0, limit=10) == [first, second]
    await pg.record([])


async def test_concurrent_modifies_of_one_delivery_all_count(
    db: PgConnections, db2: PgConnections, pg: PgEventTables
) -> None:
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)
    write = event("a", [a1])
    await pg.ingest(IngestNeeds(), fixed([write]))
    d = write.deliveries[0]
    other = PgEventTables(db2)

    def bump(delivery: Delivery, ep: Endpoint) -> tuple[Delivery, Endpoint]:
        return dataclasses.replace(delivery, attempt_count=delivery.attempt_count + 1), ep

    got = await asyncio.gather(
        *((pg if n % 2 else other).modify_delivery(d.id, bump) for n in range(20))
    )
    assert sorted(g.attempt_count for g in got) == list(range(1, 21))
    assert (await pg.get_delivery(d.id)).attempt_count == 20


async def test_modify_delivery_writes_the_endpoint_and_its_secrets_as_sqlite_does(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    old = Secret(id="sec_old", value="whsec_old", created_at=1.0, expires_at=50.0)
    kept = Secret(id="sec_kept", value="whsec_kept", created_at=2.0, expires_at=None)
    twin = Secret(id="sec_twin", value="whsec_twin", created_at=2.0, expires_at=None)
    a1 = endpoint("acme", secrets=(old, kept, twin))
    await insert_both(lite, db, a1)
    write = event("a", [a1])
    d = write.deliveries[0]
    seen: list[tuple[Delivery, Endpoint]] = []
    new = Secret(id="sec_new", value="whsec_new", created_at=3.0, expires_at=None)

    def probe(delivery: Delivery, ep: Endpoint) -> tuple[Delivery, Endpoint]:
        seen.append((delivery, ep))
        return (
            dataclasses.replace(delivery, status=DeliveryStatus.SCHEDULED, status_reason="probe"),
            dataclasses.replace(
                ep, status=EndpointStatus.PENDING, secrets=(new, kept), updated_at=9.0
            ),
        )

    results = []
    for store in (lite, pg):
        await store.ingest(IngestNeeds(), fixed([write]))
        results.append(await store.modify_delivery(d.id, probe))
    assert seen[0] == seen[1]
    assert [s.id for s in seen[1][1].secrets] == ["sec_twin", "sec_kept", "sec_old"]
    assert results[0] == results[1] == await pg.get_delivery(d.id)
    stored = await pg_get_endpoint(db, a1.id)
    assert stored == await lite.get_endpoint(a1.id)
    assert (stored.status, [s.id for s in stored.secrets]) == (
        EndpointStatus.PENDING,
        ["sec_new", "sec_kept"],
    )
    # An edit that leaves the endpoint as it was does not rewrite it.
    unchanged = await pg.modify_delivery(d.id, lambda dl, ep: (dl, ep))
    assert unchanged == results[1]
    assert await pg_get_endpoint(db, a1.id) == stored


async def test_modify_delivery_of_an_endpoint_gone_says_which(
    db: PgConnections, pg: PgEventTables
) -> None:
    a1 = endpoint("acme")
    await pg_insert_endpoint(db, a1)
    write = event("a", [a1])
    await pg.ingest(IngestNeeds(), fixed([write]))
    # Only possible without the foreign key's cascade, e.g. a row written by hand: the
    # message is SQLite's read_endpoint's.
    await db.execute("ALTER TABLE deliveries DROP CONSTRAINT deliveries_endpoint_id_fkey")
    await db.execute("DELETE FROM endpoints WHERE id = $1", a1.id)
    with pytest.raises(NotFoundError, match=rf"^endpoint {a1.id} not found$"):
        await pg.modify_delivery(write.deliveries[0].id, lambda dl, ep: (dl, ep))


async def test_reschedule_gives_what_sqlite_gives(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    a1, b1 = endpoint("acme"), endpoint("bolt")
    await insert_both(lite, db, a1, b1)
    writes = [event("a", [a1, b1]) for _ in range(3)]
    statuses = itertools.cycle(
        [DeliveryStatus.FAILURE, DeliveryStatus.DISCARDED, DeliveryStatus.SUCCESS]
    )
    ended = [
        dataclasses.replace(d, status=next(statuses), attempt_count=n % 3, next_attempt_at=None)
        for n, d in enumerate(d for w in writes for d in w.deliveries)
    ]
    for store in (lite, pg):
        await store.ingest(IngestNeeds(), fixed(writes))
        await store.record([AttemptRecord(attempt=None, delivery=d) for d in ended])
    query = DeliveryQuery(statuses=[DeliveryStatus.FAILURE, DeliveryStatus.DISCARDED])
    rounds = []
    for store in (lite, pg):
        for _ in range(3):
            rounds.append(await store.reschedule_deliveries(query, now=500.0, reason="r", limit=3))
    assert rounds[:3] == rounds[3:]
    assert [len(r) for r in rounds[:3]] == [3, 1, 0]
    expected = sorted(d.id for d in ended if d.status is not DeliveryStatus.SUCCESS)
    assert [d.id for r in rounds[:3] for d in r] == expected
    for d in rounds[3] + rounds[4]:
        assert (d.status, d.status_reason, d.next_attempt_at, d.updated_at) == (
            DeliveryStatus.SCHEDULED,
            "r",
            500.0,
            500.0,
        )
        assert d.attempt_limit == d.attempt_count + 1
        assert await pg.get_delivery(d.id) == d == await lite.get_delivery(d.id)
    # Rows the rule refuses (being sent now, or succeeded) are left as they are, on both.
    by_endpoint = DeliveryQuery(
        endpoint_ids=[b1.id], statuses=[DeliveryStatus.SCHEDULED, DeliveryStatus.SUCCESS]
    )
    for store in (lite, pg):
        rounds.append(
            await store.reschedule_deliveries(by_endpoint, now=600.0, reason="b", limit=9)
        )
    assert rounds[-1] == rounds[-2] == []
    for d in rounds[3] + rounds[4]:
        assert await pg.get_delivery(d.id) == d == await lite.get_delivery(d.id)


async def test_due_deliveries_and_status_counts_give_what_sqlite_gives(
    lite: SqliteStore, db: PgConnections, pg: PgEventTables
) -> None:
    a1, a2 = endpoint("acme"), endpoint("acme")
    paused = dataclasses.replace(endpoint("bolt"), status=EndpointStatus.PAUSED)
    await insert_both(lite, db, a1, a2, paused)
    write = event("a", [a1, a2, paused])
    ds = [
        dataclasses.replace(write.deliveries[0], status=DeliveryStatus.RETRY, next_attempt_at=30.0),
        dataclasses.replace(
            write.deliveries[1], status=DeliveryStatus.PROCESSING, next_attempt_at=20.0
        ),
        dataclasses.replace(
            write.deliveries[2], status=DeliveryStatus.SUCCESS, next_attempt_at=20.0
        ),
    ]
    more = event("b", [a1, a2], at=20.0)  # two SCHEDULED due at 20, same time: by id
    for store in (lite, pg):
        await store.ingest(IngestNeeds(), fixed([dataclasses.replace(write, deliveries=ds), more]))
    windows = [(None, 30.0), (None, 19.0), (20.0, 30.0), (19.0, 20.0), (30.0, 99.0)]
    for after, until in windows:
        due = await pg.due_deliveries(after=after, until=until)
        assert due == await lite.due_deliveries(after=after, until=until), (after, until)
    assert [d.id for d in await pg.due_deliveries(after=None, until=30.0)] == [
        ds[1].id,
        *(d.id for d in more.deliveries),
        ds[0].id,
    ]
    counts = await pg.status_counts()
    assert counts == await lite.status_counts()
    assert counts.deliveries == {"scheduled": 2, "processing": 1, "retry": 1}
    assert counts.endpoints == {"active": 2, "paused": 1}


async def test_due_deliveries_use_the_partial_index(db: PgConnections) -> None:
    assert filters.PENDING == "'processing', 'retry', 'scheduled'"  # as pg_schema's index

    async def plan(conn: asyncpg.Connection) -> str:
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(
            "EXPLAIN SELECT id FROM deliveries"  # noqa: S608 - constant statuses
            f" WHERE status IN ({filters.PENDING})"
            " AND next_attempt_at > 1 AND next_attempt_at <= 2"
        )
        return "\n".join(r[0] for r in rows)

    text = await db.transaction(plan)
    assert "next_attempt_at_idx" in text, text
    assert "Filter" not in text, text  # the status condition is the index's predicate
