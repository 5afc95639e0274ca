"""kill -9 in the middle of a FIFO endpoint's backlog: after the restart the rest arrive in
acceptance order; at-least-once may send the head again, never one out of order."""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Awaitable, Callable

import pytest

from convoyd.client import Client, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess
from tests.receivers import Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

EVENTS = 40


async def test_fifo_order_holds_across_kill_9(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    receiver = await receivers(delay=0.05)  # slow enough that a backlog waits at the kill
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        ep = await client.create_endpoint(pb.Endpoint(url=receiver.url, ordering=pb.ORDERING_FIFO))
        for start in range(0, EVENTS, 10):
            await client.batch_create_events(
                [
                    event_request(event_type="t", data={"i": i}, endpoint_ids=[ep.id])
                    for i in range(start, start + 10)
                ]
            )
        await eventually(lambda: len(receiver.requests) >= 5, timeout=30)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.stop()
    before = len(receiver.requests)
    assert before < EVENTS, "the kill came too late"

    daemon.start()

    def seen() -> list[int]:
        return [json.loads(r.body)["i"] for r in receiver.requests]

    await eventually(lambda: set(seen()) == set(range(EVENTS)), timeout=60, interval=0.1)
    # Each arrival is the next event or the one just sent again (the head of the crash).
    order = seen()
    for previous, current in itertools.pairwise(order):
        assert current in (previous, previous + 1), order
    assert order[0] == 0
    print(f"delivered before the kill: {before}; repeats: {len(order) - EVENTS}")
    assert daemon.stop() == 0
