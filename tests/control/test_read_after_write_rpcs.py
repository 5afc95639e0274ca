"""Read-your-writes over the real gRPC server and real SQLite: whatever a call returned as done
is visible to every read that starts after it, whoever makes it.

Eight callers at once, each writing then reading back at once: the reads of one caller run
beside the writes and reads of the others, which is what once let a read see an old snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from convoyd.client import Client, NotFoundError
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.receivers import Receiver

pytestmark = pytest.mark.both_stores

CALLERS = 8
EVENT_PAIRS = 10_000  # in total over the callers
ENDPOINT_ROUNDS = 1_000

Make = Callable[..., Awaitable[Receiver]]


async def in_parallel(total: int, round_: Callable[[int], Awaitable[None]]) -> None:
    """Runs ``round_(i)`` for i in range(total), CALLERS at a time, each caller in turn."""

    async def caller(first: int) -> None:
        for i in range(first, total, CALLERS):
            await round_(i)

    await asyncio.gather(*(caller(c) for c in range(CALLERS)))


async def test_an_accepted_event_is_visible_to_every_later_read(
    client: Client, receivers: Make
) -> None:
    receiver = await receivers()
    endpoint = await client.create_endpoint(endpoint_pb2.Endpoint(url=receiver.url))
    misses: Counter[str] = Counter()

    async def round_(i: int) -> None:
        event = await client.create_event(event_type="t", data={"i": i}, endpoint_ids=[endpoint.id])
        try:
            got = await client.get_event(event.id)
        except NotFoundError:
            misses["GetEvent NOT_FOUND"] += 1
        else:
            if got.id != event.id or got.delivery_count != 1:
                misses["GetEvent wrong"] += 1
        listed = await client.list_deliveries(event_id=event.id)
        if [d.event_id for d in listed.deliveries] != [event.id]:
            misses[f"ListDeliveries(event_id) gave {len(listed.deliveries)}"] += 1

    await in_parallel(EVENT_PAIRS, round_)
    assert dict(misses) == {}


async def test_endpoint_writes_are_visible_to_every_later_read(client: Client) -> None:
    misses: Counter[str] = Counter()

    async def round_(i: int) -> None:
        owner = f"owner-{i}"
        # No event is ever sent to these endpoints.
        spec = endpoint_pb2.Endpoint(url=f"https://ryw-{i}.invalid/hook", owner_id=owner)
        created = await client.create_endpoint(spec)
        try:
            got = await client.get_endpoint(created.id)
        except NotFoundError:
            misses["GetEndpoint NOT_FOUND after create"] += 1
        else:
            if not got.secrets:
                misses["GetEndpoint without its secret"] += 1
        listed = await client.list_endpoints(owner_id=owner)
        if [e.id for e in listed.endpoints] != [created.id]:
            misses["ListEndpoints(owner_id) without it"] += 1
        change = endpoint_pb2.Endpoint(id=created.id, description=f"changed {i}")
        await client.update_endpoint(change, ["description"])
        if (await client.get_endpoint(created.id)).description != f"changed {i}":
            misses["GetEndpoint without the update"] += 1
        paused = await client.pause_endpoint(created.id, reason="ryw")
        again = await client.get_endpoint(created.id)
        if again.status != paused.status or again.status != endpoint_pb2.ENDPOINT_STATUS_PAUSED:
            misses["GetEndpoint without the pause"] += 1

    await in_parallel(ENDPOINT_ROUNDS, round_)
    assert dict(misses) == {}


async def test_retried_and_watched_deliveries_read_back_as_reported(
    client: Client, receivers: Make
) -> None:
    """RetryDelivery / ForceResendDelivery → GetDelivery, and every change WatchDeliveries
    reports → GetDelivery: the read shows that state or a later one, never an earlier one."""
    # Four first attempts fail, then every answer is 200: fewer attempts than the breaker's
    # min_requests fail, so it never opens and no delivery is held back.
    failing = await receivers(script=[500] * 4)
    once = endpoint_pb2.RetryPolicy()
    once.linear.max_retries = 0
    flaky = await client.create_endpoint(endpoint_pb2.Endpoint(url=failing.url, retry_policy=once))
    healthy = await client.create_endpoint(endpoint_pb2.Endpoint(url=(await receivers()).url))
    misses: Counter[str] = Counter()
    loop = asyncio.get_running_loop()

    async def check(delivery: delivery_pb2.Delivery, what: str) -> None:
        got = await client.get_delivery(delivery.id)
        if (got.attempt_count, got.updated_at.ToNanoseconds()) < (
            delivery.attempt_count,
            delivery.updated_at.ToNanoseconds(),
        ):
            misses[f"GetDelivery older than {what}"] += 1

    async def until(delivery_id: str, status: int) -> None:
        deadline = loop.time() + 20
        while (await client.get_delivery(delivery_id)).status != status:
            assert loop.time() < deadline, f"{delivery_id} never reached {status}"
            await asyncio.sleep(0.01)

    async def deliveries_of(endpoint_id: str, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            event = await client.create_event(event_type="t", data={}, endpoint_ids=[endpoint_id])
            ids.extend(d.id for d in (await client.list_deliveries(event_id=event.id)).deliveries)
        return ids

    watched = 0
    first_change = asyncio.Event()
    checks: list[asyncio.Task[None]] = []

    async def watch() -> None:
        nonlocal watched
        async for change in client.watch_deliveries():
            if change.HasField("delivery"):
                checks.append(asyncio.create_task(check(change.delivery, "the watch")))
                watched += 1
                first_change.set()

    watcher = asyncio.create_task(watch())
    try:
        deadline = loop.time() + 10
        while not first_change.is_set():  # the stream is open once it shows a change
            assert loop.time() < deadline, "WatchDeliveries showed nothing"
            await deliveries_of(healthy.id, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_change.wait(), 0.2)
        flaky_ids = await deliveries_of(flaky.id, 4)
        for delivery_id in flaky_ids:
            await until(delivery_id, delivery_pb2.DELIVERY_STATUS_FAILURE)

        async def retry(delivery_id: str) -> None:
            await check(await client.retry_delivery(delivery_id), "RetryDelivery")

        await asyncio.gather(*(retry(i) for i in flaky_ids))
        healthy_ids = await deliveries_of(healthy.id, CALLERS)

        async def round_(i: int) -> None:
            delivery_id = healthy_ids[i % CALLERS]
            await until(delivery_id, delivery_pb2.DELIVERY_STATUS_SUCCESS)
            await check(await client.force_resend_delivery(delivery_id), "ForceResendDelivery")

        await in_parallel(CALLERS * 40, round_)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    await asyncio.gather(*checks)
    assert watched > CALLERS * 40
    assert dict(misses) == {}
