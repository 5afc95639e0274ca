"""The Store contract (store/base.py) for ingest, events, deliveries and their attempts
(record, reschedule, edits of one delivery at once), on the SQLite and the PostgreSQL store
alike (tests/store/conftest.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import asyncpg
import pytest

from convoyd.core.model import Delivery, DeliveryStatus, Endpoint, EndpointStatus
from convoyd.errors import FailedPreconditionError, NotFoundError
from convoyd.store.base import (
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
from tests.store.contract_data import (
    EDITORS,
    T0,
    delivery,
    endpoint,
    event_write,
    new_event,
    one_delivery,
    outcome,
    refuse,
    secret,
    seed,
    snapshot_of,
    without_secrets,
)

pytestmark = pytest.mark.both_stores


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
