"""The Store contract for retention (Store.prune, Store.size_bytes) on both stores: ended
events past the period go with their deliveries and attempts, anything still waiting stays
whole, and a run is made of bounded steps.

Ids carry their creation time (contract_data.ident: today, a millisecond apart), and the
period is under a day so that PostgreSQL prunes by rows within today's partition as SQLite
does; whole-day partition drops are PostgreSQL's own tests (test_pg_retention.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from convoyd.core.model import DeliveryStatus, Endpoint
from convoyd.retention import add
from convoyd.store.base import IngestNeeds, IngestWrite, Pruned, Store
from tests.store.contract_data import T0, endpoint, event_write, gone, made_at, outcome, whole

pytestmark = pytest.mark.both_stores

S = DeliveryStatus
# Every id contract_data makes lies within a few seconds of T0: a run at LATER with PERIOD
# finds them all past the cutoff, and ids made at YOUNG are not.
PERIOD = 600.0
LATER = T0 + 3600.0
YOUNG = LATER - PERIOD / 2


async def prune_all(store: Store, *, now: float = LATER, batch: int = 100) -> list[Pruned]:
    return [step async for step in store.prune(now=now, period=PERIOD, batch=batch)]


def total(steps: Sequence[Pruned]) -> Pruned:
    out = Pruned()
    for step in steps:
        out = add(out, step)
    return out


async def stored(store: Store, ep: Endpoint, statuses: Sequence[DeliveryStatus]) -> IngestWrite:
    """An event with one delivery per status, each after one attempt (none for DISCARDED)."""
    initial = [S.DISCARDED if s is S.DISCARDED else S.SCHEDULED for s in statuses]
    w = event_write([ep] * len(statuses), statuses=initial)
    await store.ingest(IngestNeeds(), lambda _: [w])
    records = [
        outcome(d, 1, status, http=200 if status is S.SUCCESS else 500)
        for d, status in zip(w.deliveries, statuses, strict=True)
        if status is not S.DISCARDED
    ]
    await store.record(records)
    return w


@pytest.mark.parametrize(
    ("statuses", "pruned"),
    [
        ([S.SUCCESS], True),
        ([S.FAILURE, S.DISCARDED], True),
        ([S.SUCCESS, S.SUCCESS, S.FAILURE], True),
        ([S.SUCCESS, S.RETRY], False),
        ([S.SCHEDULED], False),
        ([S.DISCARDED, S.PROCESSING], False),
    ],
    ids=["success", "failure-discarded", "all-ended", "one-retrying", "scheduled", "processing"],
)
async def test_an_old_event_goes_only_once_every_delivery_has_ended(
    store: Store, statuses: list[DeliveryStatus], pruned: bool
) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    w = await stored(store, ep, statuses)

    removed = total(await prune_all(store))

    if pruned:
        attempts = sum(s is not S.DISCARDED for s in statuses)
        assert removed == Pruned(events=1, deliveries=len(statuses), attempts=attempts)
        assert await gone(store, w)
    else:
        assert removed == Pruned()
        assert await whole(store, w)


async def test_young_events_stay_and_a_zero_period_keeps_everything(store: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    old = await stored(store, ep, [S.SUCCESS])
    young = made_at(event_write([ep], statuses=[S.SUCCESS]), YOUNG)
    await store.ingest(IngestNeeds(), lambda _: [young])

    assert [s async for s in store.prune(now=LATER, period=0, batch=100)] == []
    assert await whole(store, old)

    assert total(await prune_all(store)).events == 1
    assert await gone(store, old)
    assert await whole(store, young)


async def test_a_run_is_made_of_bounded_steps_and_ends(store: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    writes = [await stored(store, ep, [S.SUCCESS]) for _ in range(7)]
    kept = await stored(store, ep, [S.RETRY])  # looked at by every run, never removed

    steps = await prune_all(store, batch=2)

    assert all(step.events <= 2 for step in steps)
    assert total(steps) == Pruned(events=7, deliveries=7, attempts=7)
    for w in writes:
        assert await gone(store, w)
    assert await whole(store, kept)
    assert total(await prune_all(store, batch=2)) == Pruned()


async def test_a_delivery_sent_again_before_the_run_keeps_its_event(store: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    w = await stored(store, ep, [S.FAILURE])
    (d,) = w.deliveries

    def send_again(current, endpoint):  # type: ignore[no-untyped-def]
        return dataclasses.replace(current, status=S.SCHEDULED, next_attempt_at=LATER), endpoint

    await store.modify_delivery(d.id, send_again)

    assert total(await prune_all(store)) == Pruned()
    assert (await store.get_delivery(d.id)).status is S.SCHEDULED


async def test_the_size_is_the_stores_bytes_on_disk(store: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    before = await store.size_bytes()
    assert before > 0
    for _ in range(20):
        await stored(store, ep, [S.SUCCESS])
    assert await store.size_bytes() >= before


async def test_a_period_reaching_before_1970_prunes_nothing(store: Store) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    w = await stored(store, ep, [S.SUCCESS])
    century = 100 * 365 * 86400.0

    assert [s async for s in store.prune(now=LATER, period=century, batch=100)] == []
    assert await whole(store, w)
