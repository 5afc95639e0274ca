"""The portal's live stream in a cluster: a stream open on one node gets the changes another
node commits (the same path as WatchDeliveries: the nodes learn at a heartbeat that someone
watches, then tell each other what they committed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.cluster_support import Cluster, Node
from tests.e2e.test_cluster_shared import _endpoint_owned_by
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def two(tmp_path: Path, postgres_dsn: str) -> AsyncIterator[tuple[Cluster, Node, Node]]:
    cluster = Cluster(tmp_path, postgres_dsn)
    try:
        first, second = await cluster.start_new(2)
        await cluster.wait_spread([first, second])
        yield cluster, first, second
    finally:
        await cluster.close()


async def test_a_stream_on_one_node_gets_what_another_node_delivered(
    two: tuple[Cluster, Node, Node],
) -> None:
    cluster, watcher, delivering = two
    assert watcher.client is not None and watcher.running is not None
    client = watcher.client
    receiver = await Receiver().start()
    try:
        # Every attempt to this endpoint is the other node's: the watcher holds no shard of it.
        target = await _endpoint_owned_by(cluster, client, delivering, receiver.url)
        link = await client.create_portal_link(owner_id="w")
        parts = urllib.parse.urlsplit(link.url)
        base = watcher.running.http_url
        seen: list[dict[str, object]] = []
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(f"{base}{parts.path}?{parts.query}") as response:
                assert response.status == 200
            stream = await browser.get(f"{base}/portal/stream/deliveries?endpoint={target.id}")
            assert stream.status == 200

            async def read() -> None:
                async for raw in stream.content:
                    line = raw.decode().strip()
                    if line.startswith("data:"):
                        seen.append(json.loads(line.partition(":")[2]))

            reading = asyncio.create_task(read())
            sent: list[str] = []

            async def delivered_seen() -> bool:
                # The other node learns at its next heartbeat that this one watches: keep
                # sending until a delivery it made shows on the stream.
                event = await client.create_event(
                    event_type="w", data={"n": len(sent)}, endpoint_ids=[target.id]
                )
                sent.append(event.id)
                return any(m["status"] == "success" for m in seen)

            try:
                await eventually(delivered_seen, timeout=30, interval=0.2)
            finally:
                stream.close()
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                    await reading
        assert all(m["endpoint_id"] == target.id for m in seen)
        assert receiver.requests, "the other node delivered nothing"
    finally:
        await receiver.close()
