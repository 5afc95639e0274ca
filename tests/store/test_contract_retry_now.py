"""Retry now on both stores: RetryDelivery's rule (convoyd.core.lifecycle.sent_again) applied
through modify_delivery to a delivery waiting for its next try makes it due now with its attempt
count and attempts kept, visible to the due-deliveries read and, on a FIFO endpoint, still the
head with the same queue behind it. The batch retry shares the rule (reschedule_deliveries)."""

from __future__ import annotations

import pytest

from convoyd.core.lifecycle import Again, sent_again
from convoyd.core.model import Delivery, DeliveryStatus, Endpoint, Ordering
from convoyd.errors import FailedPreconditionError
from convoyd.store.base import AttemptRecord, DeliveryQuery, IngestNeeds, Store
from tests.store.contract_data import endpoint, event_write, one_delivery, outcome

# After the attempts contract_data.outcome makes (at 200 + n), before the next try (300 + n).
NOW = 250.0

pytestmark = pytest.mark.both_stores


def retry_now(current: Delivery, target: Endpoint) -> tuple[Delivery, Endpoint]:
    """The change DeliveryManager.retry makes on an ACTIVE endpoint."""
    return sent_again(current, Again.RETRY, now=NOW, reason="retry now requested"), target


async def waiting_to_retry(store: Store, d: Delivery, attempts: int) -> Delivery:
    """``d`` after ``attempts`` failed attempts, the last one leaving it RETRY (due later)."""
    records: list[AttemptRecord] = []
    current = d
    for number in range(1, attempts + 1):
        record = outcome(current, number, DeliveryStatus.RETRY)
        records.append(record)
        current = record.delivery
    await store.record(records)
    return current


async def test_retry_now_makes_a_waiting_delivery_due_now_keeping_its_count(
    store: Store, peer: Store
) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    before = await waiting_to_retry(store, await one_delivery(store, ep), attempts=2)
    assert before.next_attempt_at == 302.0
    assert await peer.due_deliveries(after=NOW - 1, until=NOW) == []

    got = await store.modify_delivery(before.id, retry_now)
    assert (got.status, got.attempt_count, got.next_attempt_at) == (DeliveryStatus.RETRY, 2, NOW)
    assert got.attempt_limit is None  # its schedule goes on after this try
    assert got.status_reason == "retry now requested"
    assert await peer.get_delivery(before.id) == got
    assert await peer.due_deliveries(after=NOW - 1, until=NOW) == [got]
    attempts = await peer.list_attempts(before.id, after_number=0, limit=10)
    assert [a.number for a in attempts] == [1, 2]  # nothing made up, nothing lost


async def test_retry_now_of_a_fifo_head_keeps_it_the_head(store: Store, peer: Store) -> None:
    ep = endpoint(ordering=Ordering.FIFO)
    await store.insert_endpoint(ep)
    writes = [event_write([ep]) for _ in range(3)]
    await store.ingest(IngestNeeds(), lambda _: writes)
    head = await waiting_to_retry(store, writes[0].deliveries[0], attempts=1)
    assert await peer.fifo_backlog(ep.id) == (head, 2)

    got = await store.modify_delivery(head.id, retry_now)
    assert await peer.fifo_backlog(ep.id) == (got, 2)
    assert (await peer.fifo_heads([ep.id]))[ep.id].next_attempt_at == NOW


async def test_a_refused_retry_writes_nothing(store: Store, peer: Store) -> None:
    d = await one_delivery(store)  # SCHEDULED: being sent now
    with pytest.raises(FailedPreconditionError, match="it is being sent now"):
        await store.modify_delivery(d.id, retry_now)
    assert await peer.get_delivery(d.id) == d


async def test_the_batch_retry_leaves_deliveries_waiting_to_retry_alone(
    store: Store, peer: Store
) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    failed = await one_delivery(store, ep, status=DeliveryStatus.FAILURE)
    waiting = await waiting_to_retry(store, await one_delivery(store, ep), attempts=1)
    query = DeliveryQuery(
        endpoint_ids=[ep.id], statuses=[DeliveryStatus.FAILURE, DeliveryStatus.DISCARDED]
    )
    (again,) = await store.reschedule_deliveries(query, now=NOW, reason="batch", limit=10)
    assert again == sent_again(failed, Again.RETRY, now=NOW, reason="batch")
    assert (again.status, again.attempt_limit) == (DeliveryStatus.SCHEDULED, 1)
    assert await peer.get_delivery(waiting.id) == waiting
