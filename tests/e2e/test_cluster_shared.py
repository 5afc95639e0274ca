"""What every node of a cluster shares: WatchDeliveries on one node streams what another node
delivered, and a portal session opened on one node is served by the other."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from convoyd.client import Client
from convoyd.v1 import delivery_pb2, endpoint_pb2, portal_pb2
from tests.e2e.cluster_support import Cluster, Node
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e

DELIVERED = delivery_pb2.DELIVERY_STATUS_SUCCESS


@pytest.fixture
async def two(tmp_path: Path, postgres_dsn: str) -> AsyncIterator[tuple[Cluster, Node, Node]]:
    cluster = Cluster(tmp_path, postgres_dsn)
    try:
        first, second = await cluster.start_new(2)
        await cluster.wait_spread([first, second])
        yield cluster, first, second
    finally:
        await cluster.close()


async def _endpoint_owned_by(
    cluster: Cluster, client: Client, node: Node, url: str
) -> endpoint_pb2.Endpoint:
    """An endpoint (to ``url``) whose shard ``node`` holds."""
    for n in range(64):
        made = await client.create_endpoint(endpoint_pb2.Endpoint(url=f"{url}/{n}", owner_id="w"))
        if await cluster.owner_of(made.id) == node.node_id:
            return made
    raise AssertionError(f"no endpoint landed on {node.name}'s shards")


async def test_a_watcher_on_one_node_sees_what_another_node_delivered(
    two: tuple[Cluster, Node, Node],
) -> None:
    cluster, watcher_node, delivering_node = two
    receiver = await Receiver().start()
    try:
        assert watcher_node.client is not None
        client = watcher_node.client
        target = await _endpoint_owned_by(cluster, client, delivering_node, receiver.url)
        seen: list[str] = []

        async def watch() -> None:
            async for change in client.watch_deliveries(endpoint_id=target.id):
                if change.HasField("delivery") and change.delivery.status == DELIVERED:
                    seen.append(change.delivery.id)

        watching = asyncio.create_task(watch())
        sent: list[str] = []

        async def delivered_seen() -> bool:
            # Nodes learn that someone watches at their next heartbeat: keep sending until
            # the watcher sees one delivered by the other node.
            reply = await client.create_event(
                event_type="w", data={"n": len(sent)}, endpoint_ids=[target.id]
            )
            sent.append(reply.id)
            return bool(seen)

        await eventually(delivered_seen, timeout=30, interval=0.2)
        assert receiver.requests, "the other node delivered nothing"
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watching
    finally:
        await receiver.close()


async def test_a_portal_session_opened_on_one_node_is_served_by_the_other(
    two: tuple[Cluster, Node, Node],
) -> None:
    _, first, second = two
    assert first.client is not None and first.running is not None and second.running is not None
    # Never sent to (no event names it): a .invalid host.
    await first.client.create_endpoint(
        endpoint_pb2.Endpoint(url="https://acme-hooks.invalid/in", owner_id="acme")
    )
    link = await first.client.create_portal_link(
        owner_id="acme", kind=portal_pb2.PORTAL_LINK_KIND_LONG_LIVED
    )
    parts = urllib.parse.urlsplit(link.url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        opened = f"{first.running.http_url}{parts.path}?{parts.query}"
        async with browser.get(opened, allow_redirects=False) as response:
            assert response.status in (200, 303), response.status
        cookie = next(c for c in jar if c.key == "convoyd_portal")
        headers = {"Cookie": f"convoyd_portal={cookie.value}"}
        async with aiohttp.ClientSession() as other:
            page = f"{second.running.http_url}/portal/"
            async with other.get(page, headers=headers, allow_redirects=False) as response:
                assert response.status == 200, response.status
                assert "acme-hooks.invalid" in await response.text()
            async with other.get(page, allow_redirects=False) as response:
                assert response.status != 200  # without the session: not served
