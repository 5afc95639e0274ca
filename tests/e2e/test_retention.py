"""Retention in the real daemon (period 3 s, a run every second), on both stores: an event
whose delivery succeeded goes with its delivery and attempts, and its idempotency key stops
matching; an event whose delivery waits to retry stays whole, across a restart too."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from convoyd.client import Client, ConvoydClientError
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess, Running
from tests.receivers import Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

PERIOD = 3


async def metric(running: Running, name: str) -> float:
    """The sum of every series of ``name`` on /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{running.http_url}/metrics") as r:
        text = await r.text()
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(v) for v in pattern.findall(text))


async def is_gone(call: Callable[[], Awaitable[object]]) -> bool:
    try:
        await call()
    except ConvoydClientError as exc:
        assert exc.code == grpc.StatusCode.NOT_FOUND, exc
        return True
    return False


async def test_ended_events_go_and_waiting_ones_stay_across_a_restart(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env.update(
        CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
        CONVOYD_RETENTION_PERIOD=str(PERIOD),
        CONVOYD_RETENTION_INTERVAL="1",
    )
    ok, failing = await receivers(), await receivers(default_status=500)
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        hour = pb.RetryPolicy(linear=pb.LinearRetry(interval=Duration(seconds=3600), max_retries=5))
        waiting_ep = await client.create_endpoint(pb.Endpoint(url=failing.url, retry_policy=hour))
        ok_ep = await client.create_endpoint(pb.Endpoint(url=ok.url))
        waiting = await client.create_event(
            event_type="t", data={"n": 1}, endpoint_ids=[waiting_ep.id]
        )
        (retrying,) = (await client.list_deliveries(event_id=waiting.id)).deliveries

        async def retry_scheduled() -> bool:
            got = await client.get_delivery(retrying.id)
            return got.status == dpb.DELIVERY_STATUS_RETRY

        await eventually(retry_scheduled, timeout=20)
        done = await client.create_event(
            event_type="t", data={"n": 2}, endpoint_ids=[ok_ep.id], idempotency_key="k-1"
        )
        (succeeded,) = (await client.list_deliveries(event_id=done.id)).deliveries
        await ok.wait_for(1, within=20)

        await eventually(lambda: is_gone(lambda: client.get_event(done.id)), timeout=30)
        assert await is_gone(lambda: client.get_delivery(succeeded.id))
        assert (await client.list_deliveries(event_id=done.id)).deliveries == []
        assert await metric(running, 'convoyd_retention_pruned_total{kind="attempts"}') >= 1
        assert await metric(running, "convoyd_store_size_bytes") > 0
        # The key named an event that is gone: it takes a new one now.
        again = await client.create_event(
            event_type="t", data={"n": 2}, endpoint_ids=[ok_ep.id], idempotency_key="k-1"
        )
        assert again.id != done.id

        # The waiting event was older still, and stays whole.
        assert (await client.get_event(waiting.id)).id == waiting.id
        kept = await client.get_delivery(retrying.id)
        assert kept.status == dpb.DELIVERY_STATUS_RETRY
        attempts = await client.list_delivery_attempts(retrying.id)
        assert len(attempts.attempts) == kept.attempt_count >= 1

    assert daemon.stop() == 0
    restarted = time.time()
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:

        async def ran_since_restart() -> bool:
            last = await metric(running, "convoyd_retention_last_run_timestamp_seconds")
            return last > restarted

        await eventually(ran_since_restart, timeout=30, interval=0.2)
        assert (await client.get_event(waiting.id)).id == waiting.id
        kept = await client.get_delivery(retrying.id)
        assert kept.status == dpb.DELIVERY_STATUS_RETRY
        attempts = await client.list_delivery_attempts(retrying.id)
        assert len(attempts.attempts) == kept.attempt_count >= 1
    assert daemon.stop() == 0
