"""Endpoint health with the real daemon: breaker, INACTIVE, the PENDING probe, pause, rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from google.protobuf import duration_pb2

from convoyd.client import Client
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess
from tests.receivers import Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]
Make = Callable[..., Awaitable[Receiver]]
COOLDOWN = 0.4


def ms(value: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(nanos=value * 1_000_000)


@pytest.fixture
def health_daemon(daemon: DaemonProcess) -> DaemonProcess:
    daemon.env.update(
        CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
        # Open after 3 failures in a row (the rate rule is kept out of the way), keep the
        # cooldown constant, and call the endpoint failing after 3 openings in a row.
        CONVOYD_BREAKER_CONSECUTIVE_FAILURES="3",
        CONVOYD_BREAKER_MIN_REQUESTS="1000",
        CONVOYD_BREAKER_COOLDOWN=str(COOLDOWN),
        CONVOYD_BREAKER_COOLDOWN_MULTIPLIER="1",
        CONVOYD_DELIVERY_INACTIVE_AFTER_TRIPS="3",
    )
    return daemon


async def status_of(client: Client, endpoint_id: str) -> int:
    return (await client.get_endpoint(endpoint_id)).status


async def test_failing_endpoint_goes_inactive_and_comes_back_through_the_probe(
    health_daemon: DaemonProcess, receivers: Make
) -> None:
    receiver = await receivers(default_status=500)
    running = health_daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        retries = pb.RetryPolicy(schedule=pb.ScheduleRetry(delays=[ms(50)] * 30), jitter=0.0)
        ep = await client.create_endpoint(pb.Endpoint(url=receiver.url, retry_policy=retries))
        first = await client.create_event(event_type="t", data={"n": 1}, endpoint_ids=[ep.id])

        # 3 failures open the breaker; while it is open the receiver hears nothing.
        async def breaker_open() -> bool:
            got = await client.get_endpoint(ep.id)
            return got.circuit_breaker.state == pb.CIRCUIT_BREAKER_STATE_OPEN

        await eventually(breaker_open)
        seen = len(receiver.requests)
        assert seen == 3
        await asyncio.sleep(COOLDOWN * 0.6)
        assert len(receiver.requests) == seen, "a request reached the endpoint while open"

        # Each half-open probe fails and re-opens; the third opening makes it INACTIVE.
        async def inactive() -> bool:
            return await status_of(client, ep.id) == pb.ENDPOINT_STATUS_INACTIVE

        await eventually(inactive, timeout=20)
        got = await client.get_endpoint(ep.id)
        assert "circuit breaker opened 3 times" in got.status_reason
        assert len(receiver.requests) == 5  # 3 failures, then one probe per reopening

        discarded_event = await client.create_event(
            event_type="t", data={"n": 2}, endpoint_ids=[ep.id]
        )
        (discarded,) = (await client.list_deliveries(event_id=discarded_event.id)).deliveries
        assert discarded.status == dpb.DELIVERY_STATUS_DISCARDED

        # The receiver is fixed; retrying one delivery probes the endpoint (PENDING) ...
        receiver.default_status = 200
        retried = await client.retry_delivery(discarded.id)
        assert retried.status == dpb.DELIVERY_STATUS_SCHEDULED

        async def active() -> bool:
            return await status_of(client, ep.id) == pb.ENDPOINT_STATUS_ACTIVE

        await eventually(active)
        assert (await client.get_delivery(discarded.id)).status == dpb.DELIVERY_STATUS_SUCCESS
        # ... and the held first delivery continues now that the endpoint is ACTIVE.
        (held,) = (await client.list_deliveries(event_id=first.id)).deliveries

        async def first_done() -> bool:
            return (await client.get_delivery(held.id)).status == dpb.DELIVERY_STATUS_SUCCESS

        await eventually(first_done)

        # BatchRetryDeliveries resends what the endpoint missed while inactive.
        missed = await client.create_event(event_type="t", data={"n": 3}, endpoint_ids=[ep.id])
        await client.pause_endpoint(ep.id)
        while_paused = await client.create_event(
            event_type="t", data={"n": 4}, endpoint_ids=[ep.id]
        )
        await client.resume_endpoint(ep.id)
        count = await client.batch_retry_deliveries(endpoint_id=ep.id, dry_run=True)
        assert count.queued_count == 1
        await client.batch_retry_deliveries(endpoint_id=ep.id)
        for event in (missed, while_paused):
            (d,) = (await client.list_deliveries(event_id=event.id)).deliveries

            async def done(delivery_id: str = d.id) -> bool:
                return (
                    await client.get_delivery(delivery_id)
                ).status == dpb.DELIVERY_STATUS_SUCCESS

            await eventually(done)

        # The operator can also skip the probe.
        await client.pause_endpoint(ep.id)
        with pytest.raises(Exception, match="FAILED_PRECONDITION"):
            await client.activate_endpoint(ep.id)
    assert health_daemon.stop() == 0


async def test_pause_holds_queued_deliveries_until_resume(
    health_daemon: DaemonProcess, receivers: Make
) -> None:
    receiver = await receivers(script=[500])
    running = health_daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        retries = pb.RetryPolicy(schedule=pb.ScheduleRetry(delays=[ms(300)]), jitter=0.0)
        ep = await client.create_endpoint(pb.Endpoint(url=receiver.url, retry_policy=retries))
        queued = await client.create_event(event_type="t", data={"q": 1}, endpoint_ids=[ep.id])
        await receiver.wait_for(1)  # the first attempt failed; a retry is queued
        await client.pause_endpoint(ep.id)
        paused_event = await client.create_event(
            event_type="t", data={"q": 2}, endpoint_ids=[ep.id]
        )
        (paused_delivery,) = (await client.list_deliveries(event_id=paused_event.id)).deliveries
        assert paused_delivery.status == dpb.DELIVERY_STATUS_DISCARDED
        await asyncio.sleep(0.6)  # the retry came due while paused: it is held, not sent
        assert len(receiver.requests) == 1
        await client.resume_endpoint(ep.id)
        await receiver.wait_for(2)
        (d,) = (await client.list_deliveries(event_id=queued.id)).deliveries

        async def done() -> bool:
            return (await client.get_delivery(d.id)).status == dpb.DELIVERY_STATUS_SUCCESS

        await eventually(done)
        assert (
            await client.get_delivery(paused_delivery.id)
        ).status == dpb.DELIVERY_STATUS_DISCARDED
    health_daemon.stop()


async def test_rate_limit_holds_at_the_receiver(
    health_daemon: DaemonProcess, receivers: Make
) -> None:
    receiver = await receivers()
    running = health_daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        ep = await client.create_endpoint(
            pb.Endpoint(
                url=receiver.url,
                rate_limit=10,
                rate_limit_duration=duration_pb2.Duration(seconds=1),
            )
        )
        from convoyd.client import event_request

        await client.batch_create_events(
            [event_request(event_type="t", data={"i": i}, endpoint_ids=[ep.id]) for i in range(35)]
        )
        await receiver.wait_for(35, within=15)

        async def all_done() -> bool:
            page = await client.list_deliveries(endpoint_id=ep.id, page_size=100)
            return all(d.status == dpb.DELIVERY_STATUS_SUCCESS for d in page.deliveries)

        await eventually(all_done)
        attempts = (await client.list_deliveries(endpoint_id=ep.id, page_size=100)).deliveries
        assert all(d.attempt_count == 1 for d in attempts)  # waiting used up no attempts
    arrivals = sorted(r.at for r in receiver.requests)
    worst = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert worst <= 10, f"{worst} requests arrived within one second"
    health_daemon.stop()
