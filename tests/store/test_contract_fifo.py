"""The Store contract for FIFO endpoints (store/base.py fifo_heads, fifo_backlog): an
endpoint's head is its pending delivery with the smallest id, due or not, on both stores."""

from __future__ import annotations

import dataclasses

import pytest

from convoyd.core.model import DeliveryStatus, Endpoint
from convoyd.store.base import AttemptRecord, DeliveryQuery, IngestNeeds, IngestWrite, Store
from tests.store.contract_data import T0, endpoint, event_write, outcome

pytestmark = pytest.mark.both_stores


async def _queue(store: Store, target: Endpoint, n: int) -> list[IngestWrite]:
    """``n`` events to ``target`` (ids ascending), committed."""
    writes = [event_write([target]) for _ in range(n)]
    await store.ingest(IngestNeeds(), lambda _: writes)
    return writes


async def test_the_head_is_the_smallest_pending_id_of_each_endpoint(
    store: Store, peer: Store
) -> None:
    a, b, idle = endpoint(), endpoint(), endpoint()
    for ep in (a, b, idle):
        await store.insert_endpoint(ep)
    wa = await _queue(store, a, 4)
    wb = await _queue(store, b, 2)
    first_a, second_a = wa[0].deliveries[0], wa[1].deliveries[0]
    first_b = wb[0].deliveries[0]

    heads = await peer.fifo_heads([a.id, b.id, idle.id, "ep_unknown"])
    assert heads == {a.id: first_a, b.id: first_b}
    assert await peer.fifo_backlog(a.id) == (first_a, 3)
    assert await peer.fifo_backlog(idle.id) == (None, 0)
    assert await peer.fifo_heads([]) == {}

    # A head waiting for a retry far ahead is still the head: it holds the others.
    await store.record([outcome(first_a, 1, DeliveryStatus.RETRY)])
    retrying = dataclasses.replace(
        (await peer.fifo_heads([a.id]))[a.id], next_attempt_at=None, updated_at=0.0
    )
    assert retrying.id == first_a.id
    assert retrying.status is DeliveryStatus.RETRY
    assert (await peer.fifo_backlog(a.id))[1] == 3

    # It ends (FAILURE after its last retry): the next by id is the head.
    await store.record([outcome(first_a, 2, DeliveryStatus.FAILURE)])
    assert (await peer.fifo_heads([a.id]))[a.id] == second_a
    assert await peer.fifo_backlog(a.id) == (second_a, 2)


async def test_ended_and_discarded_deliveries_are_no_head(store: Store, peer: Store) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    writes = [
        event_write([a], statuses=[DeliveryStatus.DISCARDED]),
        event_write([a]),
        event_write([a]),
    ]
    await store.ingest(IngestNeeds(), lambda _: writes)
    second, third = writes[1].deliveries[0], writes[2].deliveries[0]
    assert (await peer.fifo_heads([a.id]))[a.id] == second
    await store.record([outcome(second, 1, DeliveryStatus.SUCCESS, http=200)])
    assert await peer.fifo_backlog(a.id) == (third, 0)
    # PROCESSING (an attempt running, or left by a crash) is pending: still the head.
    processing = dataclasses.replace(third, status=DeliveryStatus.PROCESSING, updated_at=T0)
    await store.record([AttemptRecord(attempt=None, delivery=processing)])
    assert (await peer.fifo_heads([a.id]))[a.id] == processing
    await store.record([outcome(third, 1, DeliveryStatus.SUCCESS, http=200)])
    assert await peer.fifo_heads([a.id]) == {}
    assert await peer.fifo_backlog(a.id) == (None, 0)


async def test_a_retried_old_delivery_goes_to_the_front(store: Store, peer: Store) -> None:
    a = endpoint()
    await store.insert_endpoint(a)
    writes = await _queue(store, a, 3)
    old, head = writes[0].deliveries[0], writes[1].deliveries[0]
    await store.record([outcome(old, 1, DeliveryStatus.FAILURE)])
    assert (await peer.fifo_heads([a.id]))[a.id] == head

    await store.reschedule_deliveries(
        DeliveryQuery(event_id=old.event_id), now=T0, reason="retried", limit=10
    )
    retried, behind = await peer.fifo_backlog(a.id)
    assert retried is not None
    assert (retried.id, retried.status, behind) == (old.id, DeliveryStatus.SCHEDULED, 2)
