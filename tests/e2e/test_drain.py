"""SIGTERM drains: in-flight attempts finish within shutdown_grace, the daemon exits 0, and after
a restart every accepted event is delivered. A second SIGTERM exits at once (status 1)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from convoyd.client import Client, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess
from tests.receivers import Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

EVENTS = 1500
BATCH = 250
TARGETS = 2
GRACE = 2.0


async def wait_exit(daemon: DaemonProcess, within: float) -> tuple[int, float]:
    """The exit status and how long it took, polling without blocking the receivers' loop."""
    assert daemon.proc is not None
    started = time.monotonic()
    while (code := daemon.proc.poll()) is None:
        assert time.monotonic() - started < within, f"still running after {within}s"
        await asyncio.sleep(0.01)
    return code, time.monotonic() - started


async def test_sigterm_under_load_drains_and_loses_nothing(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    daemon.env["CONVOYD_SHUTDOWN_GRACE"] = str(GRACE)
    receiver = await receivers(delay=0.02)  # slow-ish: a backlog builds up
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        for n in range(TARGETS):
            await client.create_endpoint(pb.Endpoint(url=f"{receiver.url}/{n}", owner_id="drain"))
        for start in range(0, EVENTS, BATCH):
            await client.batch_create_events(
                [
                    event_request(event_type="load", data={"i": i}, owner_id="drain")
                    for i in range(start, start + BATCH)
                ]
            )
    total = EVENTS * TARGETS
    await receiver.wait_for(200, within=30)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    code, took = await wait_exit(daemon, within=GRACE + 5)
    assert code == 0, daemon.log()
    assert took < GRACE + 2, took
    before_restart = len(receiver.requests)
    assert before_restart < total, "the load finished before SIGTERM: nothing was drained"
    daemon.stop()

    daemon.start()

    def delivered() -> set[tuple[str, int]]:
        return {(r.path, json.loads(r.body)["i"]) for r in receiver.requests}

    expected = {(f"/hook/{n}", i) for n in range(TARGETS) for i in range(EVENTS)}
    await eventually(lambda: expected <= delivered(), timeout=60, interval=0.1)
    # The drain let every attempt in flight finish and recorded it: nothing is sent twice.
    assert len(receiver.requests) == total
    assert daemon.stop() == 0
    print(f"delivered before SIGTERM exit: {before_restart}/{total}, drain took {took:.2f}s")


async def test_attempts_that_outlast_the_grace_are_sent_again_after_restart(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    daemon.env["CONVOYD_SHUTDOWN_GRACE"] = "1"
    receiver = await receivers(hang=asyncio.Event())  # never answers until released
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        endpoint = await client.create_endpoint(pb.Endpoint(url=receiver.url))
        for i in range(3):
            await client.create_event(event_type="t", data={"i": i}, endpoint_ids=[endpoint.id])
    await receiver.wait_for(3)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    code, took = await wait_exit(daemon, within=10)
    assert code == 0, daemon.log()
    assert 0.9 < took < 3, took  # waited the grace, then cut the attempts short
    daemon.stop()

    assert receiver.hang is not None
    receiver.hang.set()
    daemon.start()
    # At least once: the cut-short attempts go out again, with the same webhook-id.
    await receiver.wait_for(6)
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(ids)) == 3
    assert daemon.stop() == 0


async def test_a_second_sigterm_exits_at_once(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    daemon.env["CONVOYD_SHUTDOWN_GRACE"] = "60"
    receiver = await receivers(hang=asyncio.Event())
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        endpoint = await client.create_endpoint(pb.Endpoint(url=receiver.url))
        await client.create_event(event_type="t", data={}, endpoint_ids=[endpoint.id])
    await receiver.wait_for(1)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    await eventually(lambda: "shutting down" in daemon.log())
    daemon.proc.send_signal(signal.SIGTERM)
    code, took = await wait_exit(daemon, within=5)
    assert code == 1  # not a clean stop: in-flight attempts are sent again after a restart
    assert took < 2
    assert "second signal" in daemon.log()
