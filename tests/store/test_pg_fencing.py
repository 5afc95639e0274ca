"""The cluster's fence on a real PostgreSQL: outcomes and the engine's endpoint status changes
are written only by the node holding the endpoint's shard at the epoch it took it with."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from convoyd.core.model import DeliveryStatus, EndpointStatus
from convoyd.core.shards import shard_of
from convoyd.errors import FailedPreconditionError
from convoyd.settings import PostgresSettings
from convoyd.store.base import Guard
from convoyd.store.pg import PostgresStore
from tests.store.contract_data import endpoint, one_delivery, outcome

NODE = "nd_A"


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(PostgresSettings(dsn=postgres_dsn))
    await s.open()
    await s.cluster.setup(4)
    await s.cluster.register(NODE, grpc_address="a", http_address="b", version="t")
    taken = await s.cluster.acquire(NODE, lease=30, count=4)
    assert sorted(t.shard for t in taken) == [0, 1, 2, 3]
    yield s
    await s.close()


async def test_outcomes_are_written_only_under_the_current_epoch(store: PostgresStore) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    d = await one_delivery(store, ep)
    shard = shard_of(ep.id, 4)
    for fence, node, written in (
        (lambda _: (shard, 2), NODE, False),  # an epoch this node does not hold
        (lambda _: (shard, 1), "nd_B", False),  # another node
        (lambda _: None, NODE, False),  # not held at all: nothing is even sent
        (lambda _: (shard, 1), NODE, True),
    ):
        await store.record([outcome(d, 1, DeliveryStatus.SUCCESS)], fence=fence, node_id=node)
        stored = await store.get_delivery(d.id)
        assert (stored.status is DeliveryStatus.SUCCESS) is written, (node, written)
        assert len(await store.list_attempts(d.id, after_number=0, limit=10)) == int(written)


async def test_guarded_status_changes_need_the_lease(store: PostgresStore) -> None:
    ep = endpoint()
    await store.insert_endpoint(ep)
    shard = shard_of(ep.id, 4)

    def pause(current: object) -> object:
        return dataclasses.replace(current, status=EndpointStatus.PAUSED)  # type: ignore[type-var]

    stale = Guard(node_id=NODE, fence=lambda _: (shard, 7))
    with pytest.raises(FailedPreconditionError, match="no longer holds its shard"):
        await store.modify_endpoint(ep.id, pause, guard=stale)  # type: ignore[arg-type]
    assert (await store.get_endpoint(ep.id)).status is EndpointStatus.ACTIVE
    await store.cluster.release(NODE, [shard])
    released = Guard(node_id=NODE, fence=lambda _: (shard, 1))
    with pytest.raises(FailedPreconditionError):
        await store.modify_endpoint(ep.id, pause, guard=released)  # type: ignore[arg-type]
    (taken,) = await store.cluster.acquire(NODE, lease=30, count=1)
    current = Guard(node_id=NODE, fence=lambda _: (shard, taken.epoch))
    changed = await store.modify_endpoint(ep.id, pause, guard=current)  # type: ignore[arg-type]
    assert changed.status is EndpointStatus.PAUSED
