"""kill -9 in the middle of a load: after a restart every accepted event reaches every target."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable

import pytest

from convoyd.client import Client, ConvoydClientError, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess
from tests.receivers import Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

EVENTS = 3000
BATCH = 100
TARGETS = 3


async def test_nothing_accepted_is_lost_across_kill_9(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    # A receiver slow enough that a backlog is in flight when the daemon dies.
    receiver = await receivers(delay=0.002)
    running = daemon.start()
    accepted: list[int] = []
    async with Client(running.grpc_target, token=running.token) as client:
        for n in range(TARGETS):
            await client.create_endpoint(pb.Endpoint(url=f"{receiver.url}/{n}", owner_id="crash"))

        async def ingest() -> None:
            for start in range(0, EVENTS, BATCH):
                batch = [
                    event_request(event_type="load", data={"i": i}, owner_id="crash")
                    for i in range(start, start + BATCH)
                ]
                try:
                    await client.batch_create_events(batch)
                except ConvoydClientError:
                    return  # the daemon died under this call: this batch was not accepted
                accepted.extend(range(start, start + BATCH))

        loader = asyncio.create_task(ingest())
        await eventually(lambda: len(accepted) >= EVENTS // 2, timeout=60)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGKILL)
        await loader
    daemon.stop()
    before_restart = len(receiver.requests)
    assert len(accepted) < EVENTS or before_restart < EVENTS * TARGETS, "the kill came too late"

    daemon.start()

    def delivered() -> set[tuple[str, int]]:
        return {(r.path, json.loads(r.body)["i"]) for r in receiver.requests}

    expected = {(f"/hook/{n}", i) for n in range(TARGETS) for i in accepted}
    await eventually(lambda: expected <= delivered(), timeout=90, interval=0.2)
    # At-least-once: the same delivery may come twice, always with the same webhook-id.
    ids_per_target = {}
    for r in receiver.requests:
        key = (r.path, json.loads(r.body)["i"])
        ids_per_target.setdefault(key, set()).add(r.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in ids_per_target.values())
    duplicates = len(receiver.requests) - len(delivered())
    print(
        f"accepted={len(accepted)} delivered_before_kill={before_restart} duplicates={duplicates}"
    )
    assert daemon.stop() == 0
