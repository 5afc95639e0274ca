"""Work notifications between cluster nodes (convoyd/cluster/feed.py) in the moments when a node's
picture is behind: both used to leave a delivery to the slow poll (up to two seconds).

- Receiving: a node sends an endpoint's change ("e") before the work for it ("d"), and the
  receiving node reads the changed endpoint from the store before its engine has a lane for it.
  Work for it that comes meanwhile is held until the change is applied, then taken.
- Sending: a node that handed a shard back had itself as its owner in its last heartbeat
  (convoyd/cluster/membership.py); work for that shard goes to every node until the next one,
  not to this node's own channel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import pytest

from convoyd.cluster import feed
from convoyd.cluster.membership import Membership, Shard
from convoyd.core.model import Delivery, Endpoint
from convoyd.store import codec
from convoyd.store.pg_cluster import Heartbeat
from tests.feed_support import cluster_feed
from tests.store.contract_data import endpoint, event_write


# Like the real engine at its intake: a delivery is taken only when its endpoint has a lane, and
# an endpoint gets a lane from a committed change (convoyd/delivery/engine.py).
class _Engine:
    def __init__(self) -> None:
        self.lanes: set[str] = set()
        self.admitted: list[str] = []
        self.admitting = asyncio.Event()  # set at every call of admit

    def remember_payload(self, event_id: str, payload: object) -> None:
        pass

    def endpoint_changed(self, ep: Endpoint) -> None:
        self.lanes.add(ep.id)

    def endpoint_deleted(self, endpoint_id: str) -> None:
        self.lanes.discard(endpoint_id)

    def admit(self, deliveries: Iterable[Delivery]) -> int:
        taken = [d.id for d in deliveries if d.endpoint_id in self.lanes]
        self.admitted.extend(taken)
        self.admitting.set()
        return len(taken)


class _Membership:
    node_id = "node-b"

    def owns(self, endpoint_id: str) -> bool:
        return True


class _Cluster:
    """The store's endpoint read, held until the test lets it answer."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self._endpoints = {e.id: e for e in endpoints}
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def endpoints(self, ids: list[str]) -> list[Endpoint]:
        self.reading.set()
        await self.answer.wait()
        return [self._endpoints[i] for i in ids if i in self._endpoints]


def _receiving(engine: _Engine, cluster: _Cluster) -> feed.ClusterFeed:
    return cluster_feed(engine=engine, membership=_Membership(), cluster=cluster)


def _work(delivery: Delivery) -> str:
    (message,) = feed._work_messages(
        "node-a", 0.0, {delivery.id: (list(codec.delivery_to_row(delivery)), None)}
    )
    return message


def _changed(ep: Endpoint) -> str:
    return json.dumps({"n": "node-a", "t": 0.0, "e": [ep.id]})


async def _settled(engine: _Engine, count: int) -> None:
    async with asyncio.timeout(5):
        while len(engine.admitted) < count:
            engine.admitting.clear()
            await engine.admitting.wait()


@pytest.mark.parametrize("work_comes", ["with the change unread", "while the change is read"])
async def test_work_for_a_just_created_endpoint_waits_for_its_change(work_comes: str) -> None:
    ep = endpoint()
    (delivery,) = event_write([ep]).deliveries
    engine, cluster = _Engine(), _Cluster([ep])
    receiving = _receiving(engine, cluster)
    mail = asyncio.create_task(receiving._deliver_mail())
    try:
        receiving._on_notification(_changed(ep))
        if work_comes == "while the change is read":
            await cluster.reading.wait()
        receiving._on_notification(_work(delivery))
        assert engine.admitted == []
        cluster.answer.set()
        await _settled(engine, 1)
        assert engine.admitted == [delivery.id]
        assert receiving._parked == []
    finally:
        mail.cancel()
        await asyncio.gather(mail, return_exceptions=True)


async def test_work_for_an_endpoint_already_known_is_taken_at_once() -> None:
    known, changing = endpoint(), endpoint()
    (first,) = event_write([known]).deliveries
    (second,) = event_write([changing]).deliveries
    engine, cluster = _Engine(), _Cluster([known, changing])
    engine.lanes.update({known.id, changing.id})
    receiving = _receiving(engine, cluster)
    receiving._on_notification(_changed(changing))
    receiving._on_notification(_work(first))
    assert engine.admitted == [first.id]  # no read awaited: another endpoint's change is pending
    receiving._on_notification(_work(second))
    assert engine.admitted == [first.id]  # its own change first (a FIFO switch, a new URL)
    mail = asyncio.create_task(receiving._deliver_mail())
    try:
        cluster.answer.set()
        await _settled(engine, 2)
        assert engine.admitted == [first.id, second.id]
    finally:
        mail.cancel()
        await asyncio.gather(mail, return_exceptions=True)


async def test_work_for_an_endpoint_deleted_meanwhile_is_left_to_the_store() -> None:
    ep = endpoint()
    (delivery,) = event_write([ep]).deliveries
    engine, cluster = _Engine(), _Cluster([])  # the read finds it gone
    receiving = _receiving(engine, cluster)
    mail = asyncio.create_task(receiving._deliver_mail())
    try:
        receiving._on_notification(_changed(ep))
        receiving._on_notification(_work(delivery))
        engine.admitting.clear()
        cluster.answer.set()
        async with asyncio.timeout(5):
            await engine.admitting.wait()  # the held work, once the read found no endpoint
        assert engine.admitted == []
        assert receiving._parked == []
    finally:
        mail.cancel()
        await asyncio.gather(mail, return_exceptions=True)


class _Notifying:
    """The store's cluster calls that sending work and membership's answers touch."""

    total_shards = 8

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.done = asyncio.Event()

    async def notify(self, payloads: list[tuple[str, str]]) -> None:
        self.sent.extend(payloads)
        self.done.set()


def _handed_back(cluster: _Notifying, *, releasing: bool) -> Membership:
    """A node whose last heartbeat named it the holder of every shard, that has since handed
    them all back (or is handing them back)."""
    membership = Membership(
        cluster,  # type: ignore[arg-type]
        node_id="node-a",
        lease=10.0,
        version="test",
        addresses=lambda: ("", ""),
    )
    shards = range(cluster.total_shards)
    membership._beat = Heartbeat(
        renewed=dict.fromkeys(shards, 1),
        live=["node-a", "node-b"],
        held={"node-a": cluster.total_shards},
        owners=dict.fromkeys(shards, "node-a"),
        watching=False,
    )
    if releasing:
        membership._shards = {s: Shard(epoch=1, good_until=1e12, releasing=True) for s in shards}
    return membership


@pytest.mark.parametrize("releasing", [False, True], ids=["handed back", "handing back"])
async def test_work_for_a_shard_handed_back_since_the_last_heartbeat_goes_to_every_node(
    releasing: bool,
) -> None:
    ep = endpoint()
    (delivery,) = event_write([ep]).deliveries
    cluster = _Notifying()
    membership = _handed_back(cluster, releasing=releasing)
    assert membership.owner_of(ep.id) is None
    sending = cluster_feed(engine=_Engine(), membership=membership, cluster=cluster)
    sending._send_foreign([delivery], None)
    async with asyncio.timeout(5):
        await cluster.done.wait()
    ((channel, text),) = cluster.sent
    assert channel == feed.CHANNEL
    assert [row[0] for row in json.loads(text)["d"]] == [delivery.id]
