"""The Store contract (store/base.py), run on the SQLite and the PostgreSQL store alike.

Each test writes through ``store`` and reads through a ``peer``: on PostgreSQL another store
object on the same database (another node, in effect), so every read checks read-your-writes
too; on SQLite the store itself, since one data directory takes one SqliteStore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from convoyd.core.model import (
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    PortalLink,
    PortalLinkKind,
    PortalSession,
)
from convoyd.errors import (
    FailedPreconditionError,
    NotFoundError,
    UnauthenticatedError,
)
from convoyd.service.portal import OpenedSession, PortalLinkRequest, PortalManager
from convoyd.settings import Settings
from convoyd.store.base import (
    ApiToken,
    AttemptRecord,
    DeliveryQuery,
    EventQuery,
    IngestNeeds,
    IngestSnapshot,
    IngestWrite,
    Payload,
    StatusCounts,
    Store,
)
from convoyd.store.factory import make_store
from tests.conftest import current_store, loopback_settings
from tests.store.contract_data import (
    T0,
    delivery,
    endpoint,
    event_write,
    ident,
    key_hash,
    new_event,
    one_delivery,
    opening,
    outcome,
    portal_link,
    portal_session,
    refuse,
    secret,
    seed,
    snapshot_of,
    without_secrets,
)

pytestmark = pytest.mark.both_stores

PEERS = 3


def _settings(tmp_path: Path) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return loopback_settings(data_dir)


async def _open(settings: Settings) -> Store:
    store = make_store(settings)
    await store.open()
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await _open(_settings(tmp_path))
    yield opened
    await opened.close()


async def _others(store: Store, tmp_path: Path, count: int) -> list[Store]:
    """``count`` store objects on the store's database: others on PostgreSQL, the store
    itself on SQLite (one data directory takes one SqliteStore)."""
    if current_store()[0] == "sqlite":
        return [store] * count
    return [await _open(_settings(tmp_path)) for _ in range(count)]


@pytest.fixture
async def peers(store: Store, tmp_path: Path) -> AsyncIterator[list[Store]]:
    others = await _others(store, tmp_path, PEERS)
    yield others
    for other in set(others) - {store}:
        await other.close()


@pytest.fixture
async def peer(store: Store, tmp_path: Path) -> AsyncIterator[Store]:
    (other,) = await _others(store, tmp_path, 1)
    yield other
    if other is not store:
        await other.close()


# -- endpoints and tokens --------------------------------------------------------------------


async def test_ping_answers(store: Store) -> None:
    assert await store.ping() is True


async def test_endpoint_round_trips_with_its_secrets_newest_first(
    store: Store, peer: Store
) -> None:
    ep = endpoint(secrets=(secret(2000.0, expires_at=5000.0), secret(1000.0)))
    await store.insert_endpoint(ep)
    assert await peer.get_endpoint(ep.id) == ep


async def test_list_endpoints_filters_and_pages_newest_first(store: Store, peer: Store) -> None:
    statuses = [EndpointStatus.ACTIVE, EndpointStatus.PAUSED, EndpointStatus.ACTIVE]
    statuses += [EndpointStatus.INACTIVE, EndpointStatus.ACTIVE, EndpointStatus.PAUSED]
    eps = [endpoint("acme" if n % 2 == 0 else "globex", status=s) for n, s in enumerate(statuses)]
    for ep in eps:
        await store.insert_endpoint(ep)
    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({}, [5, 4, 3, 2, 1, 0]),
        ({"owner_id": "acme"}, [4, 2, 0]),
        ({"status": EndpointStatus.PAUSED}, [5, 1]),
        ({"owner_id": "globex", "status": EndpointStatus.INACTIVE}, [3]),
        ({"before_id": eps[4].id}, [3, 2, 1, 0]),
        ({"limit": 2}, [5, 4]),
        ({"owner_id": "acme", "before_id": eps[4].id, "limit": 1}, [2]),
        ({"owner_id": "nobody"}, []),
        ({"before_id": eps[0].id}, []),
    ]
    for kwargs, expected in cases:
        got = await peer.list_endpoints(**kwargs)
        assert got == [eps[n] for n in expected], kwargs


async def test_modify_endpoint_stores_and_returns_the_edit(store: Store, peer: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    seen: list[Endpoint] = []
    added = secret(3000.0)

    def change(current: Endpoint) -> Endpoint:
        seen.append(current)
        spec = dataclasses.replace(current.spec, name="renamed", headers={"X-New": "1"})
        return dataclasses.replace(
            current, spec=spec, status=EndpointStatus.PAUSED, secrets=(added,), updated_at=3000.0
        )

    got = await store.modify_endpoint(ep.id, change)
    assert seen[-1] == ep  # the edit gets the row as stored
    assert got == change(ep)
    assert await peer.get_endpoint(ep.id) == got


async def test_modify_endpoint_edit_that_raises_writes_nothing(store: Store, peer: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    for error in (FailedPreconditionError("refused"), ValueError("refused")):

        def change(current: Endpoint, error: Exception = error) -> Endpoint:
            raise error

        with pytest.raises(type(error)) as raised:
            await store.modify_endpoint(ep.id, change)
        assert raised.value is error
    assert await peer.get_endpoint(ep.id) == ep


async def test_delete_endpoint_takes_its_deliveries_and_attempts(store: Store, peer: Store) -> None:
    gone, kept = endpoint(), endpoint()
    for ep in (gone, kept):
        await store.insert_endpoint(ep)
    w = event_write([gone, kept])
    await store.ingest(IngestNeeds(), lambda _: [w])
    d_gone, d_kept = w.deliveries
    await store.record([outcome(d, 1, DeliveryStatus.RETRY) for d in w.deliveries])

    await store.delete_endpoint(gone.id)
    with pytest.raises(NotFoundError):
        await peer.get_endpoint(gone.id)
    with pytest.raises(NotFoundError):
        await peer.get_delivery(d_gone.id)
    assert await peer.list_attempts(d_gone.id, after_number=0, limit=10) == []
    assert await peer.count_deliveries(DeliveryQuery(endpoint_ids=[gone.id])) == 0
    assert [e.id for e in await peer.list_endpoints()] == [kept.id]
    assert (await peer.get_delivery(d_kept.id)).attempt_count == 1
    assert len(await peer.list_attempts(d_kept.id, after_number=0, limit=10)) == 1
    # Its secrets went too: the same endpoint, secrets and all, can be inserted again.
    await store.insert_endpoint(gone)
    assert await peer.get_endpoint(gone.id) == gone


async def test_api_tokens_are_listed_by_id(store: Store, peer: Store) -> None:
    assert await peer.list_api_tokens() == []
    first, second = (
        ApiToken(
            id=ident("tok"),
            name=name,
            token_hash=hashlib.sha256(name.encode()).digest(),
            created_at=1000.5,
        )
        for name in ("ci", "ops")
    )
    await store.insert_api_token(second)
    await store.insert_api_token(first)
    assert await peer.list_api_tokens() == [first, second]


async def test_missing_rows_are_not_found(store: Store) -> None:
    # The service layer shows these messages to callers: both stores word them alike.
    def opens(_: PortalLink) -> tuple[PortalLink, PortalSession]:
        raise AssertionError("no link to open")

    cases: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: store.get_endpoint("ep_missing"), "endpoint ep_missing not found"),
        (lambda: store.modify_endpoint("ep_missing", refuse), "endpoint ep_missing not found"),
        (lambda: store.delete_endpoint("ep_missing"), "endpoint ep_missing not found"),
        (lambda: store.get_event("ev_missing"), "event ev_missing not found"),
        (lambda: store.get_delivery("dl_missing"), "delivery dl_missing not found"),
        (lambda: store.modify_delivery("dl_missing", refuse), "delivery dl_missing not found"),
        (lambda: store.get_portal_link("pl_missing"), "portal link pl_missing not found"),
        (
            lambda: store.modify_portal_link("pl_missing", refuse),
            "portal link pl_missing not found",
        ),
        (
            lambda: store.open_portal_session(b"\x01" * 32, b"\x02" * 32, opens),
            "portal link not found",
        ),
        (lambda: store.get_portal_session(b"\x03" * 32), "portal session not found"),
    ]
    for call, message in cases:
        with pytest.raises(NotFoundError) as raised:
            await call()
        assert str(raised.value) == message


# -- ingest ------------------------------------------------------------------------------------


async def test_ingest_commits_events_with_their_deliveries(store: Store, peer: Store) -> None:
    a, b = endpoint(), endpoint()
    for ep in (a, b):
        await store.insert_endpoint(ep)
    both, one = event_write([a, b]), event_write([a], event_type="order.sent")

    assert await store.ingest(IngestNeeds(), lambda _: [both, one]) == [both, one]
    for w in (both, one):
        assert await peer.get_event(w.event.id) == w.event
        for d in w.deliveries:
            assert await peer.get_delivery(d.id) == d
    listed = await peer.list_deliveries(
        DeliveryQuery(event_id=both.event.id), before_id="", limit=10
    )
    assert listed == list(reversed(both.deliveries))


async def test_ingest_stores_nothing_when_build_raises(store: Store, peer: Store) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    for error in (NotFoundError("endpoint ep_x not found"), ValueError("refused")):

        def build(_: IngestSnapshot, error: Exception = error) -> list[IngestWrite]:
            raise error

        with pytest.raises(type(error)) as raised:
            await store.ingest(IngestNeeds(endpoint_ids=frozenset({a.id})), build)
        assert raised.value is error
    assert await peer.list_events(EventQuery(), before_id="", limit=10) == []
    assert await peer.count_deliveries(DeliveryQuery()) == 0


async def test_ingest_stores_nothing_when_a_row_cannot_be_written(
    store: Store, peer: Store
) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    fine = event_write([a])
    # Its second delivery names an endpoint that does not exist: the whole ingest fails.
    broken = event_write([a, endpoint()])
    with pytest.raises((sqlite3.IntegrityError, asyncpg.ForeignKeyViolationError)):
        await store.ingest(IngestNeeds(), lambda _: [fine, broken])
    assert await peer.list_events(EventQuery(), before_id="", limit=10) == []
    assert await peer.count_deliveries(DeliveryQuery()) == 0


async def test_ingest_snapshot_holds_the_endpoints_asked_for(store: Store) -> None:
    acme = [endpoint("acme", secrets=(secret(1.0),)), endpoint("acme")]
    globex = endpoint("globex")
    for ep in [*acme, globex]:
        await store.insert_endpoint(ep)
    needs = IngestNeeds(
        endpoint_ids=frozenset({globex.id, "ep_missing"}), owner_ids=frozenset({"acme", "nobody"})
    )
    snapshot = await snapshot_of(store, needs)
    assert snapshot.endpoints([globex.id, "ep_missing"]) == {globex.id: without_secrets(globex)}
    assert snapshot.owner_endpoints("acme") == [without_secrets(e) for e in acme]
    assert snapshot.owner_endpoints("nobody") == []
    assert snapshot.idempotent == {}


async def test_ingest_snapshot_finds_idempotent_events_within_the_window(store: Store) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    early, late = event_write([a], key="k1", at=100.0), event_write([a], key="k2", at=200.0)
    await store.ingest(IngestNeeds(), lambda _: [early, late])
    found = {w.event.idempotency_key: (w.event, w.payload_hash) for w in (early, late)}
    cases = [
        (100.0, {"k1": found["k1"], "k2": found["k2"]}),  # created at `since`: inside
        (150.0, {"k2": found["k2"]}),
        (200.5, {}),
    ]
    keys = frozenset({"k1", "k2", "k3"})
    for since, expected in cases:
        needs = IngestNeeds(idempotency_keys=keys, idempotency_since=since)
        snapshot = await snapshot_of(store, needs)
        assert dict(snapshot.idempotent) == expected, since
        assert snapshot.idempotent_event("k3") is None


async def test_idempotency_key_outside_the_window_goes_to_a_new_event(
    store: Store, peer: Store
) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    old, new = event_write([a], key="k", at=100.0), event_write([a], key="k", at=1000.0)
    await store.ingest(IngestNeeds(idempotency_keys=frozenset({"k"})), lambda _: [old])

    def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
        assert snapshot.idempotent_event("k") is None  # `old` is outside the window
        return [new]

    await store.ingest(
        IngestNeeds(idempotency_keys=frozenset({"k"}), idempotency_since=500.0), build
    )
    snapshot = await snapshot_of(peer, IngestNeeds(idempotency_keys=frozenset({"k"})))
    assert snapshot.idempotent_event("k") == (new.event, new.payload_hash)  # the newest
    assert await peer.get_event(old.event.id) == old.event


async def test_a_replayed_write_is_returned_and_not_stored_again(store: Store, peer: Store) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    original, fresh = event_write([a], key="k"), event_write([a])
    await store.ingest(IngestNeeds(), lambda _: [original])
    replay = dataclasses.replace(original, replay=True)

    assert await store.ingest(IngestNeeds(), lambda _: [replay, fresh]) == [replay, fresh]
    assert await store.ingest(IngestNeeds(), lambda _: [replay]) == [replay]
    events = await peer.list_events(EventQuery(), before_id="", limit=10)
    assert events == [fresh.event, original.event]
    assert await peer.count_deliveries(DeliveryQuery()) == 2


async def test_concurrent_ingests_of_one_key_store_one_event(
    store: Store, peers: list[Store]
) -> None:
    """Callers on several store objects race for each key; the build reruns as often as the
    store needs, and what is stored is what its last run returned."""
    a = endpoint()
    await store.insert_endpoint(a)
    stores = [store, *peers]
    keys, callers = [f"key-{k}" for k in range(8)], 3
    runs: dict[tuple[str, int], list[IngestWrite]] = {}

    async def ingest(key: str, caller: int) -> IngestWrite:
        made = runs.setdefault((key, caller), [])

        def build(snapshot: IngestSnapshot) -> list[IngestWrite]:
            found = snapshot.idempotent_event(key)
            if found is not None:
                write = IngestWrite(event=found[0], payload_hash=found[1], replay=True)
            else:
                write = event_write([a], key=key, at=T0)  # new ids on every run
            made.append(write)
            return [write]

        needs = IngestNeeds(
            endpoint_ids=frozenset({a.id}), idempotency_keys=frozenset({key}), idempotency_since=0.0
        )
        (got,) = await stores[caller % len(stores)].ingest(needs, build)
        return got

    pairs = [(k, c) for k in keys for c in range(callers)]
    results = await asyncio.gather(*(ingest(k, c) for k, c in pairs))

    events = await peers[-1].list_events(EventQuery(), before_id="", limit=100)
    assert sorted(e.idempotency_key for e in events) == keys  # one event per key
    assert await peers[-1].count_deliveries(DeliveryQuery()) == len(keys)
    by_key = {e.idempotency_key: e for e in events}
    for (key, caller), got in zip(pairs, results, strict=True):
        made = runs[(key, caller)]
        assert len(made) >= 1
        assert got == made[-1]  # the last run's result
        assert got.event == by_key[key]  # every caller gets the one stored event
    for key in keys:
        winners = [runs[(key, c)][-1] for c in range(callers) if not runs[(key, c)][-1].replay]
        assert len(winners) == 1, key
        assert await peers[-1].get_delivery(winners[0].deliveries[0].id) == winners[0].deliveries[0]


# -- events and deliveries --------------------------------------------------------------------


async def test_list_and_count_deliveries_filter_alike(store: Store, peer: Store) -> None:
    seeded = await seed(store)
    ep, ev = seeded.endpoints, seeded.events
    s = DeliveryStatus
    cases: list[tuple[DeliveryQuery, str]] = [
        (DeliveryQuery(), "d3c d3b d2c d2a d1b d1a"),
        (DeliveryQuery(event_id=ev["e2"].event.id), "d2c d2a"),
        (DeliveryQuery(endpoint_ids=[ep["a"].id]), "d2a d1a"),
        (DeliveryQuery(endpoint_ids=[ep["a"].id, ep["b"].id]), "d3b d2a d1b d1a"),
        (DeliveryQuery(owner_id="acme"), "d3c d2c d2a d1a"),
        (DeliveryQuery(statuses=[s.FAILURE]), "d3c d1b"),
        (DeliveryQuery(statuses=[s.FAILURE, s.RETRY]), "d3c d2a d1b"),
        (DeliveryQuery(created_after=200.0), "d3c d3b d2c d2a"),  # at or after
        (DeliveryQuery(created_before=200.0), "d1b d1a"),  # strictly before
        (DeliveryQuery(created_after=200.0, created_before=300.0), "d2c d2a"),
        (DeliveryQuery(event_type="order.paid"), "d3c d3b d1b d1a"),
        (DeliveryQuery(owner_id="acme", statuses=[s.FAILURE], event_type="order.paid"), "d3c"),
        (DeliveryQuery(owner_id="nobody"), ""),
    ]
    for query, names in cases:
        expected = [seeded.deliveries[n] for n in names.split()]
        assert await peer.list_deliveries(query, before_id="", limit=100) == expected, query
        assert await peer.count_deliveries(query) == len(expected), query


async def test_list_deliveries_pages_newest_first(store: Store, peer: Store) -> None:
    seeded = await seed(store)
    d = seeded.deliveries
    cases: list[tuple[DeliveryQuery, str, int, str]] = [
        (DeliveryQuery(), "", 2, "d3c d3b"),
        (DeliveryQuery(), "d3b", 2, "d2c d2a"),
        (DeliveryQuery(), "d2a", 5, "d1b d1a"),
        (DeliveryQuery(), "d1a", 5, ""),
        (DeliveryQuery(endpoint_ids=[seeded.endpoints["c"].id]), "d3c", 5, "d2c"),
    ]
    for query, before, limit, names in cases:
        before_id = d[before].id if before else ""
        got = await peer.list_deliveries(query, before_id=before_id, limit=limit)
        assert got == [d[n] for n in names.split()], (before, limit)


async def test_list_events_filters_and_pages(store: Store, peer: Store) -> None:
    seeded = await seed(store)
    ev = {name: w.event for name, w in seeded.events.items()}
    cases: list[tuple[EventQuery, str, int, str]] = [
        (EventQuery(), "", 10, "e3 e2 e1"),
        (EventQuery(event_type="order.paid"), "", 10, "e3 e1"),
        (EventQuery(owner_id="acme"), "", 10, "e2"),
        (EventQuery(endpoint_id=seeded.endpoints["b"].id), "", 10, "e3 e1"),
        (EventQuery(created_after=200.0), "", 10, "e3 e2"),
        (EventQuery(created_before=200.0), "", 10, "e1"),
        (EventQuery(), "e3", 1, "e2"),
        (EventQuery(event_type="order.paid"), "e3", 10, "e1"),
    ]
    for query, before, limit, names in cases:
        before_id = ev[before].id if before else ""
        got = await peer.list_events(query, before_id=before_id, limit=limit)
        assert got == [ev[n] for n in names.split()], (query, before)


async def test_load_payloads_of_the_events_that_exist(store: Store, peer: Store) -> None:
    seeded = await seed(store)
    e1, e3 = seeded.events["e1"].event, seeded.events["e3"].event
    got = await peer.load_payloads([e1.id, e3.id, e1.id, "ev_missing"])
    assert got == {e.id: Payload(data=e.data, headers=e.headers) for e in (e1, e3)}
    assert await peer.load_payloads([]) == {}


async def test_status_counts_pending_deliveries_and_endpoints(store: Store, peer: Store) -> None:
    assert await peer.status_counts() == StatusCounts(deliveries={}, endpoints={})
    seeded = await seed(store)
    paused = seeded.endpoints["b"]
    await store.modify_endpoint(
        paused.id, lambda e: dataclasses.replace(e, status=EndpointStatus.PAUSED)
    )
    processing = seeded.deliveries["d1b"]
    await store.record(
        [
            AttemptRecord(
                attempt=None,
                delivery=dataclasses.replace(processing, status=DeliveryStatus.PROCESSING),
            )
        ]
    )
    assert await peer.status_counts() == StatusCounts(
        deliveries={"retry": 1, "scheduled": 1, "processing": 1},
        endpoints={"active": 2, "paused": 1},
    )


async def test_list_attempts_pages_by_number(store: Store, peer: Store) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    w = event_write([a])
    await store.ingest(IngestNeeds(), lambda _: [w])
    d = w.deliveries[0]
    records = [outcome(d, n, DeliveryStatus.RETRY) for n in range(1, 6)]
    await store.record(records)
    attempts = [r.attempt for r in records]
    cases = [(0, 10, attempts), (2, 2, attempts[2:4]), (4, 10, attempts[4:]), (5, 10, [])]
    for after, limit, expected in cases:
        got = await peer.list_attempts(d.id, after_number=after, limit=limit)
        assert got == expected, (after, limit)
    assert await peer.list_attempts("dl_missing", after_number=0, limit=10) == []


async def test_due_deliveries_are_the_pending_ones_due_in_the_window(
    store: Store, peer: Store
) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    s = DeliveryStatus
    plan = {
        "s10": (s.SCHEDULED, 10.0),
        "r20": (s.RETRY, 20.0),
        "p20": (s.PROCESSING, 20.0),
        "s30": (s.SCHEDULED, 30.0),
        "ok20": (s.SUCCESS, 20.0),
        "f20": (s.FAILURE, 20.0),
        "d20": (s.DISCARDED, 20.0),
        "never": (s.RETRY, None),
    }
    ev = new_event(endpoint_ids=[a.id], count=len(plan))
    made = {
        name: delivery(ev, a, status=status, next_attempt_at=at)
        for name, (status, at) in plan.items()
    }
    write = IngestWrite(event=ev, payload_hash=b"h", deliveries=list(made.values()))
    await store.ingest(IngestNeeds(), lambda _: [write])
    cases: list[tuple[float | None, float, str]] = [
        (None, 20.0, "s10 r20 p20"),  # by time, then id
        (10.0, 30.0, "r20 p20 s30"),  # after is excluded, until included
        (20.0, 20.0, ""),
        (30.0, 1e9, ""),
        (None, 9.999, ""),
    ]
    for after, until, names in cases:
        got = await peer.due_deliveries(after=after, until=until)
        assert got == [made[n] for n in names.split()], (after, until)


async def test_record_keeps_the_latest_state_of_a_delivery_in_a_batch(
    store: Store, peer: Store
) -> None:
    first, second = await one_delivery(store), await one_delivery(store)
    retry = outcome(first, 1, DeliveryStatus.RETRY)
    done = outcome(first, 2, DeliveryStatus.SUCCESS, http=204)
    other = outcome(second, 1, DeliveryStatus.FAILURE)
    await store.record([retry, other, done])
    assert await peer.get_delivery(first.id) == done.delivery
    assert await peer.get_delivery(second.id) == other.delivery
    got = await peer.list_attempts(first.id, after_number=0, limit=10)
    assert got == [retry.attempt, done.attempt]


async def test_record_without_an_attempt_changes_the_delivery_only(
    store: Store, peer: Store
) -> None:
    d = await one_delivery(store)
    changed = dataclasses.replace(d, status=DeliveryStatus.PROCESSING, updated_at=150.0)
    await store.record([AttemptRecord(attempt=None, delivery=changed)])
    assert await peer.get_delivery(d.id) == changed
    assert await peer.list_attempts(d.id, after_number=0, limit=10) == []


async def test_record_skips_the_attempt_of_a_deleted_delivery(store: Store, peer: Store) -> None:
    gone_ep = endpoint()
    await store.insert_endpoint(gone_ep)
    gone, kept = await one_delivery(store, gone_ep), await one_delivery(store)
    await store.delete_endpoint(gone_ep.id)  # while its attempt was in flight
    late, fine = outcome(gone, 1, DeliveryStatus.SUCCESS), outcome(kept, 1, DeliveryStatus.RETRY)
    await store.record([late, fine])
    with pytest.raises(NotFoundError):
        await peer.get_delivery(gone.id)
    assert await peer.list_attempts(gone.id, after_number=0, limit=10) == []
    assert await peer.get_delivery(kept.id) == fine.delivery
    assert await peer.list_attempts(kept.id, after_number=0, limit=10) == [fine.attempt]


async def test_record_retried_with_the_same_attempts_neither_fails_nor_doubles(
    store: Store, peer: Store
) -> None:
    """A batch whose commit was not known to succeed (a lost connection) is sent again."""
    d = await one_delivery(store)
    batch = [outcome(d, 1, DeliveryStatus.RETRY), outcome(d, 2, DeliveryStatus.RETRY)]
    await store.record(batch)
    await store.record(batch)
    assert await peer.get_delivery(d.id) == batch[-1].delivery
    got = await peer.list_attempts(d.id, after_number=0, limit=10)
    assert got == [r.attempt for r in batch]


async def test_modify_delivery_changes_it_and_its_endpoint_together(
    store: Store, peer: Store
) -> None:
    ep = endpoint(status=EndpointStatus.INACTIVE)
    await store.insert_endpoint(ep)
    d = await one_delivery(store, ep, status=DeliveryStatus.FAILURE)
    seen: list[tuple[Delivery, Endpoint]] = []

    def probe(current: Delivery, target: Endpoint) -> tuple[Delivery, Endpoint]:
        seen.append((current, target))
        return (
            dataclasses.replace(current, status=DeliveryStatus.SCHEDULED, next_attempt_at=500.0),
            dataclasses.replace(target, status=EndpointStatus.PENDING, status_reason="probe"),
        )

    got = await store.modify_delivery(d.id, probe)
    assert seen[-1] == (d, ep)  # the rows as stored, the endpoint with its secrets
    new_delivery, new_endpoint = probe(d, ep)
    assert got == new_delivery
    assert await peer.get_delivery(d.id) == new_delivery
    assert await peer.get_endpoint(ep.id) == new_endpoint


async def test_modify_delivery_edit_that_raises_writes_nothing(store: Store, peer: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    d = await one_delivery(store, ep)
    with pytest.raises(FailedPreconditionError, match="refused"):
        await store.modify_delivery(d.id, refuse)
    assert await peer.get_delivery(d.id) == d
    assert await peer.get_endpoint(ep.id) == ep


async def test_reschedule_makes_matches_due_with_one_more_attempt(
    store: Store, peer: Store
) -> None:
    a, b = endpoint(), endpoint()
    for ep in (a, b):
        await store.insert_endpoint(ep)
    failed = []
    for count in range(1, 6):
        d = await one_delivery(store, a, status=DeliveryStatus.FAILURE)
        changed = dataclasses.replace(d, attempt_count=count)
        await store.record([AttemptRecord(attempt=None, delivery=changed)])
        failed.append(changed)
    others = [
        await one_delivery(store, b, status=DeliveryStatus.FAILURE),
        await one_delivery(store, a, status=DeliveryStatus.SUCCESS),
    ]
    query = DeliveryQuery(endpoint_ids=[a.id], statuses=[DeliveryStatus.FAILURE])

    def rescheduled(d: Delivery) -> Delivery:
        return dataclasses.replace(
            d,
            status=DeliveryStatus.SCHEDULED,
            status_reason="retried by hand",
            next_attempt_at=T0,
            updated_at=T0,
            attempt_limit=d.attempt_count + 1,
        )

    first = await store.reschedule_deliveries(query, now=T0, reason="retried by hand", limit=3)
    assert first == [rescheduled(d) for d in failed[:3]]  # oldest first
    rest = await store.reschedule_deliveries(query, now=T0, reason="retried by hand", limit=10)
    assert rest == [rescheduled(d) for d in failed[3:]]
    assert await store.reschedule_deliveries(query, now=T0, reason="again", limit=10) == []
    for d in failed:
        assert await peer.get_delivery(d.id) == rescheduled(d)
    for d in others:
        assert await peer.get_delivery(d.id) == d
    due = await peer.due_deliveries(after=T0 - 1, until=T0)
    assert [d.id for d in due] == [d.id for d in failed]


# -- concurrent read-modify-write -------------------------------------------------------------

EDITORS = 20


async def test_concurrent_endpoint_edits_all_stay(store: Store, peers: list[Store]) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    stores = [store, *peers]

    def append(n: int) -> Callable[[Endpoint], Endpoint]:
        def change(current: Endpoint) -> Endpoint:
            spec = dataclasses.replace(current.spec, name=f"{current.spec.name}<{n}>")
            return dataclasses.replace(current, spec=spec)

        return change

    await asyncio.gather(
        *(stores[n % len(stores)].modify_endpoint(ep.id, append(n)) for n in range(EDITORS))
    )
    name = (await peers[-1].get_endpoint(ep.id)).spec.name
    tags = name.removeprefix(ep.spec.name).removeprefix("<").removesuffix(">").split("><")
    assert sorted(tags, key=int) == [str(n) for n in range(EDITORS)]


async def test_concurrent_delivery_edits_all_stay(store: Store, peers: list[Store]) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    d = await one_delivery(store, ep)
    stores = [store, *peers]

    def bump(current: Delivery, target: Endpoint) -> tuple[Delivery, Endpoint]:
        spec = dataclasses.replace(target.spec, rate_limit=target.spec.rate_limit + 1)
        return (
            dataclasses.replace(current, attempt_count=current.attempt_count + 1),
            dataclasses.replace(target, spec=spec),
        )

    await asyncio.gather(
        *(stores[n % len(stores)].modify_delivery(d.id, bump) for n in range(EDITORS))
    )
    assert (await peers[-1].get_delivery(d.id)).attempt_count == d.attempt_count + EDITORS
    assert (await peers[-1].get_endpoint(ep.id)).spec.rate_limit == ep.spec.rate_limit + EDITORS


# -- portal links and sessions ----------------------------------------------------------------


async def test_portal_links_round_trip_in_every_scope(store: Store, peer: Store) -> None:
    links = [
        portal_link(kind=PortalLinkKind.ONE_TIME),
        portal_link(endpoint_ids=("ep_1", "ep_2")),
        portal_link(all_owners=True, revoked_at=1500.0),
    ]
    for link in links:
        await store.insert_portal_link(link, key_hash(link.id))
    for link in links:
        assert await peer.get_portal_link(link.id) == link


async def test_list_portal_links_filters_and_pages_newest_first(store: Store, peer: Store) -> None:
    links = [
        portal_link(owner_id="acme"),
        portal_link(owner_id="acme", revoked_at=1500.0),
        portal_link(owner_id="globex", expires_at=1500.0),
        portal_link(owner_id="acme", expires_at=2000.0),  # not live at 2000 itself
        portal_link(owner_id="globex"),
        portal_link(owner_id="acme", kind=PortalLinkKind.ONE_TIME),
    ]
    for link in links:
        await store.insert_portal_link(link, key_hash(link.id))
    cases: list[tuple[str, float | None, int, int, list[int]]] = [
        ("", None, -1, 50, [5, 4, 3, 2, 1, 0]),
        ("acme", None, -1, 50, [5, 3, 1, 0]),
        ("", 2000.0, -1, 50, [5, 4, 0]),
        ("acme", 2000.0, -1, 50, [5, 0]),
        ("", 1999.0, -1, 50, [5, 4, 3, 0]),
        ("", None, 3, 2, [2, 1]),
        ("acme", None, 5, 1, [3]),
        ("globex", 2000.0, 4, 50, []),
    ]
    for owner, live_at, before, limit, expected in cases:
        got = await peer.list_portal_links(
            owner_id=owner,
            live_at=live_at,
            before_id=links[before].id if before >= 0 else "",
            limit=limit,
        )
        assert got == [links[n] for n in expected], (owner, live_at, before, limit)


async def test_revoking_a_link_revokes_its_sessions(store: Store, peer: Store) -> None:
    link, other = portal_link(), portal_link()
    for each in (link, other):
        await store.insert_portal_link(each, key_hash(each.id))
    sessions = {
        name: portal_session(on, created_at=1000.0, expires_at=50_000.0)
        for name, on in (("open", link), ("ended", link), ("other", other))
    }
    for name, session in sessions.items():
        on = link if session.link_id == link.id else other
        await store.open_portal_session(key_hash(on.id), key_hash(name), opening(session))
    await store.end_portal_session(key_hash("ended"), now=1100.0)

    got = await store.modify_portal_link(
        link.id, lambda current: dataclasses.replace(current, revoked_at=1200.0)
    )
    revoked = dataclasses.replace(link, revoked_at=1200.0)
    assert got == revoked
    assert await peer.get_portal_link(link.id) == revoked
    cases = [("open", 1200.0, revoked), ("ended", 1100.0, revoked), ("other", None, other)]
    for name, revoked_at, of in cases:
        expected = dataclasses.replace(sessions[name], revoked_at=revoked_at)
        assert await peer.get_portal_session(key_hash(name)) == (expected, of), name


async def test_modify_portal_link_edit_that_raises_writes_nothing(
    store: Store, peer: Store
) -> None:
    link = portal_link()
    await store.insert_portal_link(link, key_hash(link.id))
    session = portal_session(link, created_at=1000.0, expires_at=50_000.0)
    await store.open_portal_session(key_hash(link.id), key_hash("s"), opening(session))
    with pytest.raises(FailedPreconditionError, match="refused"):
        await store.modify_portal_link(link.id, refuse)
    assert await peer.get_portal_link(link.id) == link
    assert await peer.get_portal_session(key_hash("s")) == (session, link)


async def test_an_open_callback_that_raises_writes_nothing(store: Store, peer: Store) -> None:
    link = portal_link(kind=PortalLinkKind.ONE_TIME)
    await store.insert_portal_link(link, key_hash(link.id))
    with pytest.raises(FailedPreconditionError, match="refused"):
        await store.open_portal_session(key_hash(link.id), key_hash("s"), refuse)
    assert await peer.get_portal_link(link.id) == link
    with pytest.raises(NotFoundError):
        await peer.get_portal_session(key_hash("s"))


async def test_one_time_link_opened_by_many_at_once_gives_one_session(
    store: Store, peers: list[Store]
) -> None:
    link = portal_link(kind=PortalLinkKind.ONE_TIME)
    await store.insert_portal_link(link, key_hash(link.id))
    stores = [store, *peers]
    sessions = [portal_session(link, created_at=1000.0 + n, expires_at=50_000.0) for n in range(30)]
    results = await asyncio.gather(
        *(
            stores[n % len(stores)].open_portal_session(
                key_hash(link.id), key_hash(f"s{n}"), opening(session)
            )
            for n, session in enumerate(sessions)
        ),
        return_exceptions=True,
    )
    opened = [(n, r) for n, r in enumerate(results) if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(opened) == 1
    assert all(isinstance(r, UnauthenticatedError) for r in refused), refused
    ((winner, (used, session)),) = opened
    assert session == sessions[winner]
    assert used == dataclasses.replace(link, used_at=session.created_at)
    assert await peers[-1].get_portal_link(link.id) == used
    for n in range(30):
        if n == winner:
            assert await peers[-1].get_portal_session(key_hash(f"s{n}")) == (session, used)
        else:
            with pytest.raises(NotFoundError):
                await peers[-1].get_portal_session(key_hash(f"s{n}"))


async def test_portal_manager_opens_a_one_time_link_once(store: Store, peers: list[Store]) -> None:
    """The same race through the service layer's own open callback."""
    managers = [
        PortalManager(s, clock=lambda: T0, rng=random.Random(n))
        for n, s in enumerate([store, *peers])
    ]
    link, token = await managers[0].create(PortalLinkRequest(owner_id="acme"))
    results = await asyncio.gather(
        *(managers[n % len(managers)].open(token) for n in range(30)), return_exceptions=True
    )
    opened = [r for r in results if isinstance(r, OpenedSession)]
    assert len(opened) == 1, results
    assert all(isinstance(r, UnauthenticatedError) for r in results if r not in opened)
    assert (await peers[-1].get_portal_link(link.id)).used_at == T0
    session, of = await managers[-1].session(opened[0].token)
    assert (session, of) == (opened[0].session, opened[0].link)

    long_lived = PortalLinkRequest(owner_id="acme", kind=PortalLinkKind.LONG_LIVED)
    _, token = await managers[0].create(long_lived)
    again = await asyncio.gather(*(m.open(token) for m in managers))
    assert len({o.session.id for o in again}) == len(managers)
    assert all(o.link.used_at is None for o in again)


async def test_portal_sessions_are_found_and_ended(store: Store, peer: Store) -> None:
    link = portal_link(kind=PortalLinkKind.ONE_TIME)
    await store.insert_portal_link(link, key_hash(link.id))
    session = portal_session(link, created_at=1000.0, expires_at=50_000.0)
    used, got = await store.open_portal_session(key_hash(link.id), key_hash("s"), opening(session))
    assert (used, got) == (dataclasses.replace(link, used_at=1000.0), session)
    assert await peer.get_portal_session(key_hash("s")) == (session, used)

    await store.end_portal_session(key_hash("s"), now=1500.0)
    await store.end_portal_session(key_hash("s"), now=1600.0)  # signed out already: kept as was
    await store.end_portal_session(key_hash("unknown"), now=1600.0)  # ignored
    ended = dataclasses.replace(session, revoked_at=1500.0)
    assert await peer.get_portal_session(key_hash("s")) == (ended, used)


async def test_opening_a_session_removes_sessions_long_expired(store: Store, peer: Store) -> None:
    link = portal_link(expires_at=1e9)
    await store.insert_portal_link(link, key_hash(link.id))
    day = 86400.0
    old = portal_session(link, created_at=1000.0, expires_at=2000.0)
    live = portal_session(link, created_at=1000.0, expires_at=1e8)
    for name, session in (("old", old), ("live", live)):
        await store.open_portal_session(key_hash(link.id), key_hash(name), opening(session))
    new = portal_session(link, created_at=2000.0 + 30 * day, expires_at=1e8)
    await store.open_portal_session(key_hash(link.id), key_hash("new"), opening(new))
    with pytest.raises(NotFoundError):
        await peer.get_portal_session(key_hash("old"))
    assert await peer.get_portal_session(key_hash("live")) == (live, link)
    assert await peer.get_portal_session(key_hash("new")) == (new, link)


# -- read-your-writes -------------------------------------------------------------------------


async def test_every_write_is_seen_by_the_next_read_anywhere(
    store: Store, peers: list[Store]
) -> None:
    """Callers at once, each writing through one store object and reading at once through
    another: a read that starts after a write returned never misses it."""
    stores = [store, *peers]
    misses: Counter[str] = Counter()

    def check(what: str, ok: bool) -> None:
        if not ok:
            misses[what] += 1

    async def round_trip(n: int) -> None:
        w, r = stores[n % len(stores)], stores[(n + 1) % len(stores)]
        ep = endpoint(f"owner-{n}")
        await w.insert_endpoint(ep)
        check("get_endpoint", await r.get_endpoint(ep.id) == ep)
        check("list_endpoints", await r.list_endpoints(owner_id=ep.spec.owner_id) == [ep])
        renamed = await w.modify_endpoint(
            ep.id, lambda e: dataclasses.replace(e, status_reason="renamed")
        )
        check("modify_endpoint", await r.get_endpoint(ep.id) == renamed)

        write = event_write([ep])
        await w.ingest(IngestNeeds(), lambda _: [write])
        d = write.deliveries[0]
        check("get_event", await r.get_event(write.event.id) == write.event)
        listed = await r.list_deliveries(
            DeliveryQuery(event_id=write.event.id), before_id="", limit=5
        )
        check("list_deliveries", listed == [d])
        check("load_payloads", write.event.id in await r.load_payloads([write.event.id]))
        result = outcome(d, 1, DeliveryStatus.FAILURE)
        await w.record([result])
        check("record", await r.get_delivery(d.id) == result.delivery)
        check(
            "list_attempts",
            await r.list_attempts(d.id, after_number=0, limit=5) == [result.attempt],
        )
        edited = await w.modify_delivery(
            d.id, lambda x, e: (dataclasses.replace(x, status_reason="edited"), e)
        )
        check("modify_delivery", await r.get_delivery(d.id) == edited)
        query = DeliveryQuery(event_id=write.event.id)
        (again,) = await w.reschedule_deliveries(query, now=T0, reason="again", limit=5)
        check("reschedule_deliveries", await r.get_delivery(d.id) == again)

        link = portal_link(owner_id=ep.spec.owner_id)
        await w.insert_portal_link(link, key_hash(link.id))
        check("get_portal_link", await r.get_portal_link(link.id) == link)
        session = portal_session(link, created_at=1000.0, expires_at=50_000.0)
        await w.open_portal_session(key_hash(link.id), key_hash(session.id), opening(session))
        check(
            "open_portal_session",
            await r.get_portal_session(key_hash(session.id)) == (session, link),
        )
        await w.end_portal_session(key_hash(session.id), now=1100.0)
        ended, _ = await r.get_portal_session(key_hash(session.id))
        check("end_portal_session", ended.revoked_at == 1100.0)
        revoked = await w.modify_portal_link(
            link.id, lambda x: dataclasses.replace(x, revoked_at=1200.0)
        )
        check("modify_portal_link", await r.get_portal_link(link.id) == revoked)

        await w.delete_endpoint(ep.id)
        check("delete_endpoint", await r.list_endpoints(owner_id=ep.spec.owner_id) == [])
        check("delete_endpoint deliveries", await r.count_deliveries(query) == 0)

    async def caller(first: int) -> None:
        for n in range(first, 24, 4):
            await round_trip(n)

    await asyncio.gather(*(caller(c) for c in range(4)))
    assert dict(misses) == {}
