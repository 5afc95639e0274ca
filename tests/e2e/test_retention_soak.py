"""A bounded soak with retention on, on both stores: events at a steady rate for SECONDS with a
period of 3 s; once the first periods are past, the store's size (convoyd_store_size_bytes)
stops following the ingested bytes and stays within a bound.

Without retention the size would grow with every event (about RATE * 1.5 KiB a second, more
than doubling over the measured stretch); the test asserts the last stretch stays within
GROWTH of the size reached when pruning had settled, and reports both (record_figures).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from convoyd.client import Client, event_request
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import DaemonProcess, current_store, record_figures
from tests.e2e.test_retention import metric
from tests.receivers import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

SECONDS = 30.0
RATE = 200  # events a second, in batches of BATCH
BATCH = 20
SETTLED = 10.0  # seconds in: three periods and runs past
GROWTH = 1.5


@pytest.mark.timeout(180)
async def test_the_store_stops_growing_under_a_steady_load(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env.update(
        CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
        CONVOYD_RETENTION_PERIOD="3",
        CONVOYD_RETENTION_INTERVAL="1",
    )
    receiver = await receivers()
    running = daemon.start()
    samples: list[tuple[float, float]] = []
    async with Client(running.grpc_target, token=running.token) as client:
        ep = await client.create_endpoint(pb.Endpoint(url=receiver.url))
        body = {"filler": "x" * 1000}
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < SECONDS:
            # Paced by the clock: behind schedule, the next batch goes at once.
            if sent > elapsed * RATE:
                await asyncio.sleep(sent / RATE - elapsed)
                continue
            batch = [
                event_request(event_type="soak", data={**body, "i": sent + i}, endpoint_ids=[ep.id])
                for i in range(BATCH)
            ]
            await client.batch_create_events(batch)
            sent += BATCH
            if not samples or elapsed - samples[-1][0] >= 1.0:
                samples.append((elapsed, await metric(running, "convoyd_store_size_bytes")))
        pruned = await metric(running, 'convoyd_retention_pruned_total{kind="events"}')
    assert daemon.stop() == 0

    settled = max(size for at, size in samples if SETTLED <= at < SETTLED + 5)
    late = max(size for at, size in samples if at >= SECONDS - 10)
    figures = {
        "store": current_store()[0],
        "events_sent": sent,
        "events_pruned": pruned,
        "size_at_settled_bytes": settled,
        "size_late_max_bytes": late,
        "late_over_settled": round(late / settled, 3),
        "samples": samples,
    }
    record_figures(f"retention_soak_{current_store()[0]}", figures)
    print(figures)
    assert pruned >= sent * 0.5, figures
    assert late <= settled * GROWTH, figures
