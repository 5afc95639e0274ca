"""FIFO endpoints through the real API, engine and store: one attempt at a time, in acceptance
order; a failing head holds the queue; a retried old delivery goes to the front; order holds
across a restart. A concurrent endpoint beside it is unaffected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.protobuf import duration_pb2

from convoyd.client import Client
from convoyd.client.config import event_request
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import LOOPBACK_ALLOWED, running_app
from tests.receivers import eventually

pytestmark = pytest.mark.both_stores


def retries(*delays: float) -> pb.RetryPolicy:
    return pb.RetryPolicy(
        schedule=pb.ScheduleRetry(
            delays=[duration_pb2.Duration(seconds=int(d), nanos=int(d % 1 * 1e9)) for d in delays]
        ),
        jitter=0.0,
    )


class Recorder:
    """A receiver that notes the order events arrive in (their "n") and how many requests it
    held at once. ``fail`` answers 500 to an event that many times; ``hold`` keeps an event's
    first request unanswered until its asyncio.Event is set."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        fail: dict[int, int] | None = None,
        hold: dict[int, asyncio.Event] | None = None,
    ) -> None:
        self.delay = delay
        self.fail = dict(fail or {})
        self.hold = dict(hold or {})
        self.order: list[int] = []
        self.open = 0
        self.most = 0
        self.server: TestServer | None = None
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        n = json.loads(await request.read())["n"]
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            async with self._arrived:
                self.order.append(n)
                self._arrived.notify_all()
            held = self.hold.pop(n, None)
            if held is not None:
                await held.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail.get(n, 0) > 0:
                self.fail[n] -= 1
                return web.Response(status=500, text="nope")
            return web.Response(text="ok")
        finally:
            self.open -= 1

    async def wait_for(self, count: int, within: float = 20.0) -> list[int]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.order) >= count), within)
        return self.order

    async def start(self) -> Recorder:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        for event in self.hold.values():
            event.set()
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def made() -> AsyncIterator[list[Recorder]]:
    receivers: list[Recorder] = []
    yield receivers
    for r in receivers:
        await r.close()


async def receiver(made: list[Recorder], **kwargs: object) -> Recorder:
    r = await Recorder(**kwargs).start()  # type: ignore[arg-type]
    made.append(r)
    return r


async def send(client: Client, endpoint_ids: Sequence[str], numbers: range, batch: int) -> None:
    """Events {"n": i} in batches of ``batch``, one batch after another."""
    for start in range(numbers.start, numbers.stop, batch):
        chunk = range(start, min(start + batch, numbers.stop))
        await client.batch_create_events(
            [event_request(event_type="t", data={"n": i}, endpoint_ids=endpoint_ids) for i in chunk]
        )


async def fifo_endpoint(client: Client, url: str, **fields: object) -> pb.Endpoint:
    ep = await client.create_endpoint(
        pb.Endpoint(url=url, ordering=pb.ORDERING_FIFO, **fields)  # type: ignore[arg-type]
    )
    assert ep.ordering == pb.ORDERING_FIFO
    return ep


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with (
        running_app(tmp_path / "data", delivery=LOOPBACK_ALLOWED) as (_, running),
        Client(running.grpc_target, token=running.token) as c,
    ):
        yield c


async def test_batches_arrive_in_acceptance_order_one_at_a_time(
    client: Client, made: list[Recorder]
) -> None:
    ordered = await receiver(made, delay=0.005)
    beside = await receiver(made, delay=0.05)
    fifo = await fifo_endpoint(client, ordered.url)
    concurrent = await client.create_endpoint(pb.Endpoint(url=beside.url))

    await send(client, [fifo.id, concurrent.id], range(50), batch=10)
    assert await ordered.wait_for(50) == list(range(50))
    assert ordered.most == 1
    # The concurrent endpoint got the same events side by side, in no promised order.
    assert sorted(await beside.wait_for(50)) == list(range(50))
    assert beside.most > 1


async def test_a_failing_head_holds_the_others_until_it_succeeds(
    client: Client, made: list[Recorder]
) -> None:
    ordered = await receiver(made, fail={0: 2})
    fifo = await fifo_endpoint(client, ordered.url, retry_policy=retries(0.05, 0.05, 0.05))
    await send(client, [fifo.id], range(10), batch=10)
    assert await ordered.wait_for(12) == [0, 0, 0, *range(1, 10)]
    assert ordered.most == 1


async def test_a_head_exhausting_its_retries_releases_the_next(
    client: Client, made: list[Recorder]
) -> None:
    ordered = await receiver(made, fail={0: 100, 4: 1})
    fifo = await fifo_endpoint(client, ordered.url, retry_policy=retries(0.05, 0.05))
    await send(client, [fifo.id], range(8), batch=4)
    assert await ordered.wait_for(11) == [0, 0, 0, 1, 2, 3, 4, 4, 5, 6, 7]
    first = (await client.list_deliveries(endpoint_id=fifo.id, page_size=100)).deliveries[-1]
    assert first.status == dpb.DELIVERY_STATUS_FAILURE


async def test_a_retried_old_delivery_goes_to_the_front(
    client: Client, made: list[Recorder]
) -> None:
    release = asyncio.Event()
    ordered = await receiver(made, fail={0: 100}, hold={1: release})
    fifo = await fifo_endpoint(client, ordered.url, retry_policy=retries(0.05))
    await send(client, [fifo.id], range(5), batch=5)
    assert await ordered.wait_for(3) == [0, 0, 1]  # 0 failed for good; 1 is in flight

    listed = (await client.list_deliveries(endpoint_id=fifo.id, page_size=100)).deliveries
    first = listed[-1]  # newest first: the last is event 0's
    assert first.status == dpb.DELIVERY_STATUS_FAILURE
    ordered.fail[0] = 0
    await client.retry_delivery(first.id)
    release.set()
    # 0 goes before 2: it was accepted first.
    assert await ordered.wait_for(7) == [0, 0, 1, 0, 2, 3, 4]
    assert ordered.most == 1


async def test_order_holds_across_a_restart_with_a_backlog(
    tmp_path: Path, made: list[Recorder]
) -> None:
    release = asyncio.Event()
    ordered = await receiver(made, hold={5: release})
    data = tmp_path / "data"
    async with (
        running_app(data, delivery=LOOPBACK_ALLOWED) as (_, running),
        Client(running.grpc_target, token=running.token) as client,
    ):
        fifo = await fifo_endpoint(client, ordered.url)
        await send(client, [fifo.id], range(20), batch=7)
        assert await ordered.wait_for(6) == list(range(6))  # 5 hangs: the rest waits
    # The app stopped with 5 in flight (cancelled after the grace) and 14 waiting behind it.
    release.set()
    async with running_app(data, delivery=LOOPBACK_ALLOWED) as (_, running):
        got = await ordered.wait_for(21)
    assert got == [*range(6), *range(5, 20)]  # the head again (at-least-once), then in order
    assert ordered.most == 1


async def test_a_head_waiting_for_its_retry_holds_the_backlog_after_a_restart(
    tmp_path: Path, made: list[Recorder]
) -> None:
    """The head waits for its retry, due later than the restart: after it the head still
    comes from the store, and what waits behind it (due at once) goes only after it."""
    ordered = await receiver(made, fail={0: 1})
    data = tmp_path / "data"
    async with (
        running_app(data, delivery=LOOPBACK_ALLOWED) as (_, running),
        Client(running.grpc_target, token=running.token) as client,
    ):
        fifo = await fifo_endpoint(client, ordered.url, retry_policy=retries(1.5))
        await send(client, [fifo.id], range(3), batch=3)
        assert await ordered.wait_for(1) == [0]

        async def retrying() -> bool:
            page = await client.list_deliveries(endpoint_id=fifo.id, page_size=10)
            return page.deliveries[-1].status == dpb.DELIVERY_STATUS_RETRY

        await eventually(retrying)
    async with running_app(data, delivery=LOOPBACK_ALLOWED):
        assert await ordered.wait_for(4) == [0, 0, 1, 2]
    assert ordered.most == 1
