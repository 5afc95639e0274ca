"""The Store contract for the delivery health counters (Store.health_hours) on both stores:
record() counts each attempt it stores once, in its endpoint's hour, with its response time in
the fixed histogram; reads are per endpoint and hour range; the counters go with their
endpoint and with retention; concurrent recorders (nodes, on PostgreSQL) lose no count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence

import pytest

from convoyd.core.health import (
    HOUR,
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    NO_LATENCY,
    HealthHour,
    latency_bucket,
    percentile_ms,
)
from convoyd.core.model import AttemptResult, DeliveryStatus, Endpoint
from convoyd.store.base import AttemptRecord, IngestNeeds, IngestWrite, Store
from tests.store.contract_data import T0, endpoint, event_write, outcome

pytestmark = pytest.mark.both_stores

S = DeliveryStatus
R = AttemptResult
# Hours of whole-hour starts, a few before T0 (the attempts' times are what counts, not ids').
H0 = (T0 // HOUR) * HOUR - 5 * HOUR
H1 = H0 + HOUR


async def _deliveries(store: Store, ep: Endpoint, count: int) -> list[IngestWrite]:
    writes = [event_write([ep]) for _ in range(count)]
    await store.ingest(IngestNeeds(), lambda _: writes)
    return writes


def _record(
    w: IngestWrite,
    *,
    at: float,
    result: AttemptResult = R.SUCCESS,
    seconds: float = 0.125,
    number: int = 1,
) -> AttemptRecord:
    """Attempt ``number`` of the write's delivery, started ``at``, of ``result`` and duration."""
    http = {R.SUCCESS: 200, R.HTTP_ERROR: 500}.get(result, 0)
    status = S.SUCCESS if result is R.SUCCESS else S.RETRY
    record = outcome(w.deliveries[0], number, status, http=http)
    assert record.attempt is not None
    attempt = dataclasses.replace(record.attempt, started_at=at, duration=seconds, result=result)
    return AttemptRecord(attempt=attempt, delivery=record.delivery)


def _latency(**counts: int) -> tuple[int, ...]:
    """A histogram from {"b<bucket>": count}."""
    out = [0] * LATENCY_BUCKETS
    for name, n in counts.items():
        out[int(name[1:])] = n
    return tuple(out)


async def _hours(store: Store, ids: Sequence[str]) -> list[HealthHour]:
    return await store.health_hours(ids, since=H0 - 10 * HOUR, until=H1 + 10 * HOUR)


async def test_attempts_are_counted_per_endpoint_hour_with_their_response_times(
    store: Store, peer: Store
) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    ws = await _deliveries(store, ep, 6)
    await store.record(
        [
            _record(ws[0], at=H0 + 1, seconds=0.0004),  # under 1 ms: bucket 0
            _record(ws[1], at=H0 + 1800, seconds=0.120),  # [100, 150) ms
            _record(ws[2], at=H0 + 3599.5, result=R.HTTP_ERROR, seconds=0.1),  # [100, 150)
            _record(ws[3], at=H1, result=R.TIMEOUT, seconds=7.5),  # [7.5 s, 10 s)
            _record(ws[4], at=H1 + 10, result=R.NETWORK_ERROR, seconds=0.002),  # no time
            _record(ws[5], at=H1 + 20, result=R.BLOCKED, seconds=0.0),  # no time
        ]
    )
    b100, b7500 = latency_bucket(100_000), latency_bucket(7_500_000)
    assert (b100, b7500) == (LATENCY_BOUNDS_MS.index(100) + 1, LATENCY_BOUNDS_MS.index(7500) + 1)
    assert await _hours(peer, [ep.id]) == [
        HealthHour(
            endpoint_id=ep.id, hour=H0, ok=2, failed=1, latency=_latency(b0=1, **{f"b{b100}": 2})
        ),
        HealthHour(
            endpoint_id=ep.id, hour=H1, ok=0, failed=3, latency=_latency(**{f"b{b7500}": 1})
        ),
    ]


async def test_batches_add_up_and_only_stored_attempts_count(store: Store, peer: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    ws = await _deliveries(store, ep, 3)
    first = [_record(ws[0], at=H0), _record(ws[1], at=H0, result=R.HTTP_ERROR)]
    await store.record(first)
    await store.record(first)  # stored again (a retry after a lost reply): counted once
    processing = dataclasses.replace(ws[2].deliveries[0], status=S.PROCESSING)
    await store.record(
        [
            AttemptRecord(attempt=None, delivery=processing),  # no attempt: nothing to count
            _record(ws[2], at=H0 + 5),
            _record(ws[0], at=H0 + 6, number=2, result=R.HTTP_ERROR),
            first[0],  # again, inside a batch of new ones
        ]
    )
    (hour,) = await _hours(peer, [ep.id])
    assert (hour.ok, hour.failed, sum(hour.latency)) == (2, 2, 4)


async def test_an_attempt_of_a_deleted_endpoint_counts_nowhere_and_its_rows_go(
    store: Store, peer: Store
) -> None:
    kept, deleted = endpoint(), endpoint()
    for ep in (kept, deleted):
        await store.insert_endpoint(ep)
    (wk,) = await _deliveries(store, kept, 1)
    wd1, wd2 = await _deliveries(store, deleted, 2)
    await store.record([_record(wd1, at=H0)])
    assert len(await _hours(peer, [deleted.id])) == 1
    await store.delete_endpoint(deleted.id)
    assert await _hours(peer, [deleted.id]) == []
    # In flight while the endpoint went: its attempt is skipped, the other one counts.
    await store.record([_record(wd2, at=H0), _record(wk, at=H0)])
    assert await _hours(peer, [deleted.id]) == []
    assert [(h.endpoint_id, h.ok) for h in await _hours(peer, [kept.id, deleted.id])] == [
        (kept.id, 1)
    ]


async def test_reads_are_per_endpoint_and_hour_range(store: Store, peer: Store) -> None:
    a, b, c = endpoint(), endpoint(), endpoint()
    for ep in (a, b, c):
        await store.insert_endpoint(ep)
    wa = await _deliveries(store, a, 3)
    wb = await _deliveries(store, b, 1)
    await store.record(
        [
            _record(wa[0], at=H0 - HOUR),
            _record(wa[1], at=H0 + 10),
            _record(wa[2], at=H1 + 10),
            _record(wb[0], at=H0 + 20, result=R.TIMEOUT, seconds=30.0),
        ]
    )
    # [since, until) of hour starts: H0 and H1 only.
    got = await peer.health_hours([b.id, a.id, c.id, a.id], since=H0, until=H1 + 1)
    assert [(h.endpoint_id, h.hour, h.ok, h.failed) for h in got] == sorted(
        [(a.id, H0, 1, 0), (a.id, H1, 1, 0), (b.id, H0, 0, 1)]
    )
    assert await peer.health_hours([a.id], since=H0 + 1, until=H1) == []  # H0 starts before
    # Counts only: the same rows, without the response times.
    counts = await peer.health_hours([a.id, b.id], since=H0, until=H1 + 1, latency=False)
    assert counts == [dataclasses.replace(h, latency=NO_LATENCY) for h in got]
    assert await peer.health_hours([c.id], since=0.0, until=T0 + HOUR) == []
    assert await peer.health_hours([], since=0.0, until=T0 + HOUR) == []


async def test_percentiles_from_the_stored_histogram_lie_within_its_resolution(
    store: Store, peer: Store
) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    rng = random.Random(7)
    durations = [rng.lognormvariate(-2.0, 1.0) for _ in range(400)]  # seconds, median ~135 ms
    ws = await _deliveries(store, ep, len(durations))
    await store.record(
        [
            _record(w, at=H0 + i, seconds=d)
            for i, (w, d) in enumerate(zip(ws, durations, strict=True))
        ]
    )
    (hour,) = await _hours(peer, [ep.id])
    assert sum(hour.latency) == len(durations)
    ordered = sorted(round(d * 1000, 3) for d in durations)
    for q in (0.5, 0.95, 0.99):
        true_ms = ordered[int(q * len(ordered)) - 1]
        bucket = latency_bucket(round(true_ms * 1000))
        low = 0.0 if bucket == 0 else LATENCY_BOUNDS_MS[bucket - 1]
        high = LATENCY_BOUNDS_MS[bucket] if bucket < len(LATENCY_BOUNDS_MS) else float("inf")
        got = percentile_ms(hour.latency, q)
        assert got is not None and low <= got <= high, (q, true_ms, got)


async def test_retention_prunes_the_counters_of_hours_past_the_period(
    store: Store, peer: Store
) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    ws = await _deliveries(store, ep, 3)
    now, period = H1 + 10 * HOUR, 9.5 * HOUR  # cutoff H1 + 30 min: H0 ended before it
    await store.record(
        [
            _record(ws[0], at=H0 + 3599),
            _record(ws[1], at=H1),  # H1 has not ended by the cutoff: kept
            _record(ws[2], at=now - 60),
        ]
    )
    async for _ in store.prune(now=now, period=period, batch=100):
        pass
    assert [h.hour for h in await _hours(peer, [ep.id])] == [H1, H1 + 9 * HOUR]


async def test_concurrent_recorders_lose_no_count(store: Store, peers: list[Store]) -> None:
    """Batches of several endpoints and hours, recorded at once through several stores (on
    PostgreSQL other nodes in effect, adding to the same rows in different orders)."""
    eps = [endpoint() for _ in range(4)]
    for ep in eps:
        await store.insert_endpoint(ep)
    writes = {ep.id: await _deliveries(store, ep, 60) for ep in eps}
    rng = random.Random(3)
    records = [
        _record(w, at=H0 + (i % 2) * HOUR + i, result=R.SUCCESS if i % 3 else R.HTTP_ERROR)
        for ws in writes.values()
        for i, w in enumerate(ws)
    ]
    rng.shuffle(records)
    batches = [records[n::12] for n in range(12)]
    await asyncio.gather(*(peers[n % len(peers)].record(batch) for n, batch in enumerate(batches)))
    got = await _hours(store, [ep.id for ep in eps])
    assert len(got) == 2 * len(eps)
    for ep in eps:
        mine = [h for h in got if h.endpoint_id == ep.id]
        assert sum(h.ok for h in mine) == 40 and sum(h.failed for h in mine) == 20
        assert sum(sum(h.latency) for h in mine) == 60
