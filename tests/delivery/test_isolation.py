"""Hanging endpoints, however many, never hold the slots a healthy endpoint needs.

One loopback receiver that reads each request and never answers plays every hanging endpoint
(one URL path each); their timeout (60 s) is far beyond the test, so every hanging attempt is
still open when the healthy deliveries are checked: the order is the assertion, not a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from google.protobuf import duration_pb2

from convoyd.app import App
from convoyd.client import Client, event_request
from convoyd.settings import DeliverySettings
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import running_app
from tests.receivers import Receiver, eventually

Make = Callable[..., Awaitable[Receiver]]
HANGING = 200
FINISHED = (
    dpb.DELIVERY_STATUS_SUCCESS,
    dpb.DELIVERY_STATUS_RETRY,
    dpb.DELIVERY_STATUS_FAILURE,
)


@contextlib.asynccontextmanager
async def serving(
    data_dir: Path, max_in_flight: int, max_slow_in_flight: int
) -> AsyncIterator[tuple[App, Client]]:
    delivery = DeliverySettings(
        allow_cidrs=("127.0.0.0/8",),
        sender_workers=0,
        max_in_flight=max_in_flight,
        max_slow_in_flight=max_slow_in_flight,
    )
    async with (
        running_app(data_dir, delivery=delivery) as (app, running),
        Client(running.grpc_target, token=running.token) as client,
    ):
        yield app, client


async def hang_many(client: Client, hang: Receiver) -> None:
    """HANGING endpoints on the never-answering receiver, one event each."""
    base = hang.url.rsplit("/", 1)[0]
    ids = [
        (
            await client.create_endpoint(
                pb.Endpoint(
                    url=f"{base}/hang/{i}",
                    owner_id="hang",
                    http_timeout=duration_pb2.Duration(seconds=60),
                )
            )
        ).id
        for i in range(HANGING)
    ]
    await client.batch_create_events(
        [
            event_request(event_type="t", data={"i": i}, endpoint_ids=[ids[i]])
            for i in range(HANGING)
        ]
    )


async def deliver(client: Client, healthy: Receiver, endpoint_id: str, count: int) -> None:
    before = len(healthy.requests)
    await client.batch_create_events(
        [
            event_request(event_type="t", data={"n": n}, endpoint_ids=[endpoint_id])
            for n in range(count)
        ]
    )
    await healthy.wait_for(before + count, within=30)


async def no_hanging_attempt_ended(client: Client) -> bool:
    page = await client.list_deliveries(owner_id="hang", statuses=FINISHED)
    return not page.deliveries


async def test_a_known_healthy_endpoint_is_served_beside_more_hanging_ones_than_slots(
    tmp_path: Path, receivers: Make
) -> None:
    # 200 hanging endpoints against 20 + 40 slots: the budget is full of them, and stays bounded.
    healthy, hang = await receivers(), await receivers(hang=asyncio.Event())
    async with serving(tmp_path / "data", 20, 40) as (app, client):
        ep = await client.create_endpoint(pb.Endpoint(url=healthy.url))
        await deliver(client, healthy, ep.id, 1)  # it has answered quickly once
        await hang_many(client, hang)
        # All 40 slow slots and the 10 the main pool lends endpoints with no history.
        await hang.wait_for(50, within=30)
        await eventually(lambda: app.engine.in_flight == 50)

        await deliver(client, healthy, ep.id, 30)

        assert await no_hanging_attempt_ended(client)
        assert len(hang.requests) == 50 and app.engine.in_flight == 50  # the bound held
        assert app.engine.queued() == HANGING - 50  # the others wait their turn, in memory


async def test_a_new_endpoint_is_served_at_once_beside_hanging_ones(
    tmp_path: Path, receivers: Make
) -> None:
    healthy, hang = await receivers(), await receivers(hang=asyncio.Event())
    async with serving(tmp_path / "data", 40, 400) as (app, client):
        await hang_many(client, hang)
        # Far more hanging attempts than the main pool holds, all open at once: each left
        # the main pool when it had run past the slow threshold.
        await hang.wait_for(HANGING, within=30)

        ep = await client.create_endpoint(pb.Endpoint(url=healthy.url))  # no history yet
        await deliver(client, healthy, ep.id, 30)
        await hang_many(client, hang)  # a second wave, while the first still hangs
        await deliver(client, healthy, ep.id, 30)

        assert await no_hanging_attempt_ended(client)
        assert app.engine.in_flight <= 40 + 400
