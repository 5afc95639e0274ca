"""Live updates in real headless Chromium: a delivery made while the page is open appears
without a reload, and a delivery's page shows its new attempt."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from convoyd.app import App
from convoyd.client import Client
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.conftest import Running
from tests.portal import test_portal_browser as chromium
from tests.portal.test_portal_live import streams_of
from tests.receivers import Receiver, eventually

browser = chromium.browser  # the Chromium fixture of the portal's browser tests

pytestmark = pytest.mark.skipif(
    shutil.which(chromium.CHROMIUM) is None,
    reason="chromium is not installed (make test installs it)",
)

WITHIN_MS = 10_000  # how long a live change may take to show


async def _stream_open(app: App, count: int) -> None:
    """Waits until the page's script has its stream(s) open on the server."""

    def opened() -> bool:
        return streams_of(app).open == count

    await eventually(opened)


async def test_a_new_delivery_appears_without_a_reload(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
    browser: Any,
) -> None:
    app, running = delivering
    hook = await receivers()
    orders = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=hook.url, owner_id="acme", name="Acme orders")
    )
    theirs = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=hook.url, owner_id="globex", name="Globex hooks")
    )
    link = await client.create_portal_link(owner_id="acme")
    page = await browser.new_page()
    await page.goto(link.url)
    await page.goto(f"{running.http_url}/portal/deliveries")
    live = page.locator("#deliveries-live")
    assert await live.get_attribute("data-stream") == "/portal/stream/deliveries"
    await _stream_open(app, 1)
    await page.evaluate("window.liveMarker = 'not reloaded'")

    other = await client.create_event(endpoint_ids=[theirs.id], event_type="invoice.paid", data={})
    event = await client.create_event(
        endpoint_ids=[orders.id], event_type="order.created", data={"order": 7}
    )
    (made,) = (await client.list_deliveries(event_id=event.id)).deliveries
    row = live.locator("tr", has_text=made.id)
    await row.wait_for(timeout=WITHIN_MS)
    await (
        live.locator("tr", has_text=made.id).filter(has_text="SUCCESS").wait_for(timeout=WITHIN_MS)
    )
    assert await page.evaluate("window.liveMarker") == "not reloaded"
    (globex_delivery,) = (await client.list_deliveries(event_id=other.id)).deliveries
    assert globex_delivery.id not in await live.inner_text()
    # The refreshed part is live too: the stream stays open, a second change shows as well.
    assert await live.get_attribute("data-stream") == "/portal/stream/deliveries"
    second = await client.create_event(
        endpoint_ids=[orders.id], event_type="order.paid", data={"order": 7}
    )
    (made_too,) = (await client.list_deliveries(event_id=second.id)).deliveries
    await live.locator("tr", has_text=made_too.id).wait_for(timeout=WITHIN_MS)
    assert await page.evaluate("window.liveMarker") == "not reloaded"

    # Leaving the page gives the server its stream back at once.
    await page.goto(f"{running.http_url}/portal/")
    await _stream_open(app, 0)


async def test_a_deliverys_page_shows_its_new_attempt(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
    browser: Any,
) -> None:
    app, running = delivering
    failing = await receivers(default_status=500)
    orders = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=failing.url, owner_id="acme", name="Acme orders", retry_policy=chromium.retry_once()
        )
    )
    event = await client.create_event(
        endpoint_ids=[orders.id], event_type="order.created", data={"order": 1}
    )
    (made,) = (await client.list_deliveries(event_id=event.id)).deliveries

    async def has_failed() -> bool:
        return await chromium.status_of(client, made.id) == delivery_pb2.DELIVERY_STATUS_FAILURE

    await eventually(has_failed)
    link = await client.create_portal_link(owner_id="acme")
    page = await browser.new_page()
    await page.goto(link.url)
    await page.goto(f"{running.http_url}/portal/deliveries/{made.id}")
    live = page.locator("#delivery-live")
    assert await live.get_attribute("data-stream") == f"/portal/stream/deliveries/{made.id}"
    await _stream_open(app, 1)
    await page.evaluate("window.liveMarker = 'not reloaded'")
    assert "Attempt 2" not in await live.inner_text()

    failing.default_status = 200
    await client.retry_delivery(made.id)
    await live.locator("text=Attempt 2").first.wait_for(timeout=WITHIN_MS)
    await live.locator("text=SUCCESS").first.wait_for(timeout=WITHIN_MS)
    assert await page.evaluate("window.liveMarker") == "not reloaded"
