"""RetryDelivery on a delivery waiting for its next try ("retry now"), through the real gRPC API,
engine and store, to real loopback receivers: the try goes at once, the attempt count and the
rest of the schedule are kept, a FIFO endpoint keeps its order, and the guard story of a newcomer
(a refused delivery, the allow-list reloaded, retry now) ends in a delivered webhook."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from convoyd.app import App
from convoyd.client import Client, FailedPreconditionError
from convoyd.core.states import Trigger
from convoyd.settings import Settings
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import LOOPBACK_ALLOWED, loopback_settings
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.both_stores

Make = Callable[..., Awaitable[Receiver]]


def schedule(*seconds: float) -> pb.RetryPolicy:
    delays = [duration_pb2.Duration(seconds=int(s), nanos=int(s % 1 * 1e9)) for s in seconds]
    return pb.RetryPolicy(schedule=pb.ScheduleRetry(delays=delays), jitter=0.0)


@dataclasses.dataclass
class Daemon:
    app: App
    client: Client
    loaded: list[Settings]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """convoyd in-process allowing loopback, with a reload that reads ``loaded[-1]``."""
    settings = loopback_settings(tmp_path / "data", delivery=LOOPBACK_ALLOWED)
    loaded = [settings]
    app = App(settings, reload_settings=lambda: loaded[-1])
    await app.start()
    token = (tmp_path / "data" / "admin.token").read_text().strip()
    try:
        async with Client(app.grpc_address, token=token) as client:
            yield Daemon(app, client, loaded)
    finally:
        await app.stop()


async def only_delivery(client: Client, event_id: str) -> dpb.Delivery:
    (d,) = (await client.list_deliveries(event_id=event_id)).deliveries
    return d


async def waiting(client: Client, delivery_id: str, attempts: int) -> dpb.Delivery:
    """The delivery once it waits for its next try after ``attempts`` attempts."""

    async def check() -> bool:
        d = await client.get_delivery(delivery_id)
        return d.status == dpb.DELIVERY_STATUS_RETRY and d.attempt_count == attempts

    await eventually(check)
    return await client.get_delivery(delivery_id)


async def succeeded(client: Client, delivery_id: str) -> dpb.Delivery:
    async def check() -> bool:
        return (await client.get_delivery(delivery_id)).status == dpb.DELIVERY_STATUS_SUCCESS

    await eventually(check)
    return await client.get_delivery(delivery_id)


async def test_a_refused_delivery_goes_once_the_guard_allows_it(
    daemon: Daemon, receivers: Make
) -> None:
    """The newcomer's story: a daemon without the allow-list refuses the loopback receiver and
    says so on the endpoint; allowed by a reload, retry now delivers without waiting 10 min."""
    client = daemon.client
    blocked = dataclasses.replace(
        daemon.loaded[0], delivery=dataclasses.replace(daemon.loaded[0].delivery, allow_cidrs=())
    )
    daemon.loaded.append(blocked)
    assert await daemon.app.reload()
    receiver = await receivers()
    ep = await client.create_endpoint(pb.Endpoint(url=receiver.url, retry_policy=schedule(600)))
    assert "refuses 127.0.0.1 (loopback)" in ep.warnings[0]
    event = await client.create_event(event_type="t", data={"n": 1}, endpoint_ids=[ep.id])
    d = await waiting(client, (await only_delivery(client, event.id)).id, attempts=1)
    (refused,) = (await client.list_delivery_attempts(d.id)).attempts
    assert "blocked (loopback)" in refused.error
    assert receiver.requests == []

    daemon.loaded.append(daemon.loaded[0])  # loopback allowed again
    assert await daemon.app.reload()
    assert list((await client.get_endpoint(ep.id)).warnings) == []
    now = await client.retry_delivery(d.id)
    assert (now.status, now.attempt_count) == (dpb.DELIVERY_STATUS_RETRY, 1)
    assert now.status_reason == "retry now requested"
    assert now.next_attempt_at.ToDatetime() < d.next_attempt_at.ToDatetime()
    await receiver.wait_for(1)
    done = await succeeded(client, d.id)
    assert done.attempt_count == 2


async def test_retry_now_of_a_try_timed_in_memory_goes_at_once(
    daemon: Daemon, receivers: Make
) -> None:
    """A next try due within the engine's timer horizon (seconds away) waits on a timer in
    memory: retry now replaces it, and the attempt starts long before the old time."""
    client = daemon.client
    receiver = await receivers(script=[500])
    ep = await client.create_endpoint(pb.Endpoint(url=receiver.url, retry_policy=schedule(8)))
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    d = await waiting(client, (await only_delivery(client, event.id)).id, attempts=1)
    await client.retry_delivery(d.id)
    await receiver.wait_for(2)
    done = await succeeded(client, d.id)
    _, second = (await client.list_delivery_attempts(d.id)).attempts
    old_time = d.next_attempt_at.ToDatetime()
    assert (old_time - second.started_at.ToDatetime()).total_seconds() > 4
    assert done.attempt_count == 2 and len(receiver.requests) == 2


async def test_retry_now_keeps_the_count_and_the_rest_of_the_schedule(
    daemon: Daemon, receivers: Make
) -> None:
    client = daemon.client
    receiver = await receivers(default_status=503)
    ep = await client.create_endpoint(
        pb.Endpoint(url=receiver.url, retry_policy=schedule(600, 900))
    )
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    d = await waiting(client, (await only_delivery(client, event.id)).id, attempts=1)
    await client.retry_delivery(d.id)
    again = await waiting(client, d.id, attempts=2)  # not FAILURE: one try is left
    tried = again.last_attempt_at.ToDatetime()
    assert round((again.next_attempt_at.ToDatetime() - tried).total_seconds()) == 900
    await client.pause_endpoint(ep.id)
    with pytest.raises(FailedPreconditionError, match="is paused; resume it first"):
        await client.retry_delivery(d.id)


async def test_retry_now_of_a_fifo_head_then_the_queue_in_order(
    daemon: Daemon, receivers: Make
) -> None:
    client = daemon.client
    receiver = await receivers(script=[500])
    ep = await client.create_endpoint(
        pb.Endpoint(url=receiver.url, retry_policy=schedule(600), ordering=pb.ORDERING_FIFO)
    )
    events = [
        await client.create_event(event_type="t", data={"n": n}, endpoint_ids=[ep.id])
        for n in range(3)
    ]
    ids = [(await only_delivery(client, e.id)).id for e in events]
    head = await waiting(client, ids[0], attempts=1)
    assert (await client.get_endpoint(ep.id)).fifo.waiting == 2
    assert len(receiver.requests) == 1  # the head holds the queue

    await client.retry_delivery(head.id)
    await receiver.wait_for(4)
    for delivery_id in ids:
        await succeeded(client, delivery_id)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [ids[0], *ids]


async def test_retry_now_on_an_inactive_endpoint_is_its_probe(
    daemon: Daemon, receivers: Make
) -> None:
    """architecture.md §3: the retried delivery decides the endpoint's fate, in one attempt."""
    client = daemon.client
    receiver = await receivers(script=[503, 503])
    ep = await client.create_endpoint(
        pb.Endpoint(url=receiver.url, retry_policy=schedule(600, 600, 600))
    )
    first, second = [
        await client.create_event(event_type="t", data={"n": n}, endpoint_ids=[ep.id])
        for n in range(2)
    ]
    d1 = await waiting(client, (await only_delivery(client, first.id)).id, attempts=1)
    d2 = await waiting(client, (await only_delivery(client, second.id)).id, attempts=1)
    # The engine's verdict after failures in a row, through the one state table.
    await daemon.app.endpoints.change_status(ep.id, Trigger.FAILING, "failing in a test")

    probe = await client.retry_delivery(d1.id)
    assert (probe.status, probe.attempt_count) == (dpb.DELIVERY_STATUS_RETRY, 1)
    await receiver.wait_for(3)  # the probe answers 200
    await succeeded(client, d1.id)

    async def active() -> bool:
        return (await client.get_endpoint(ep.id)).status == pb.ENDPOINT_STATUS_ACTIVE

    await eventually(active)
    # PENDING → ACTIVE by the probe's own outcome (the reason names it), not by an activation.
    assert (await client.get_endpoint(ep.id)).status_reason == f"delivery {d1.id}: HTTP 200"
    # The other delivery kept waiting for its own next try all along.
    assert (await client.get_delivery(d2.id)).next_attempt_at == d2.next_attempt_at
