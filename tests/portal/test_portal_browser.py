"""The portal in real headless Chromium against the real App: what a customer would do.

Chromium comes from Debian (`make test` installs it); Playwright drives it through its own
executable_path, never `playwright install`. Everything stays on loopback.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from convoyd.app import App
from convoyd.client import Client
from convoyd.v1 import delivery_pb2, endpoint_pb2, portal_pb2
from tests.conftest import Running
from tests.receivers import Receiver, eventually

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
# No other network here: without these Chromium floods the machine with refused connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where a person looks at what the portal shows: screenshots of the main pages at desktop and
# phone width, written by every run (benchmarks/results/ is not tracked by git).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "portal-screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# Every element's right edge, and the page's own width, at most the viewport's: nothing is
# clipped or needs the whole page scrolled sideways. (Scroll containers count by their own
# box: what they hold may scroll inside them.)
TOO_WIDE = """() => {
  const limit = document.documentElement.clientWidth + 1;
  const wide = [];
  const whole = document.documentElement.scrollWidth;
  if (whole > limit) wide.push("page " + whole);
  for (const node of document.body.querySelectorAll("*")) {
    let inside = node.parentElement, scrolled = false;
    while (inside && inside !== document.body) {
      if (getComputedStyle(inside).overflowX !== "visible") { scrolled = true; break; }
      inside = inside.parentElement;
    }
    const box = node.getBoundingClientRect();
    if (!scrolled && box.width && box.right > limit) {
      wide.push(node.tagName + "." + node.className + " " + Math.round(box.right));
    }
  }
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    if (wrap.scrollWidth > wrap.clientWidth + 1) {
      wide.push("table " + wrap.scrollWidth + " in " + wrap.clientWidth);
    }
  }
  return wide;
}"""

pytestmark = [
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="chromium is not installed (make test installs it)"
    ),
    pytest.mark.both_stores,
]


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A Chromium context with a fresh profile directory."""
    async with playwright_api.async_playwright() as driver:
        context = await driver.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 860},
        )
        try:
            yield context
        finally:
            await context.close()


def retry_once() -> endpoint_pb2.RetryPolicy:
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 0  # one attempt, then FAILURE: retrying is the customer's call
    return policy


async def status_of(client: Client, delivery_id: str) -> int:
    return (await client.get_delivery(delivery_id)).status


async def test_a_customer_uses_the_portal(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
    browser: Any,
) -> None:
    _, running = delivering
    failing = await receivers(default_status=500)
    healthy = await receivers()
    orders = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=failing.url, owner_id="acme", name="Acme orders", retry_policy=retry_once()
        )
    )
    billing = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=healthy.url, owner_id="acme", name="Acme billing")
    )
    await client.create_endpoint(
        endpoint_pb2.Endpoint(url=healthy.url, owner_id="globex", name="Globex hooks")
    )
    await client.create_event(owner_id="acme", event_type="order.created", data={"order": 42})
    theirs = await client.create_event(owner_id="globex", event_type="invoice.paid", data={})
    (globex_delivery,) = (await client.list_deliveries(event_id=theirs.id)).deliveries
    failed = (await client.list_deliveries(endpoint_id=orders.id)).deliveries[0]

    async def has_failed() -> bool:
        return await status_of(client, failed.id) == delivery_pb2.DELIVERY_STATUS_FAILURE

    await eventually(has_failed)

    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    page = await browser.new_page()
    await page.goto(link.url)
    assert page.url == f"{running.http_url}/portal/"  # the token is gone from the address bar
    body = await page.inner_text("main")
    assert "Acme orders" in body and "Acme billing" in body and "Globex" not in body

    await page.click("nav >> text=Deliveries")
    await page.wait_for_url("**/portal/deliveries")
    listing = await page.inner_text("main")
    assert failed.id in listing and globex_delivery.id not in listing

    # The failed delivery's attempt, then a retry once the receiver is fixed.
    await page.click(f"text={failed.id}")
    await page.wait_for_selector("text=Attempt 1")
    detail = await page.inner_text("main")
    assert "500" in detail and "webhook-id" in detail and "nope" in detail
    failing.default_status = 200
    await page.click("button:has-text('Retry')")
    await page.wait_for_selector("text=Retry queued")

    async def succeeded() -> bool:
        await page.reload()
        return "SUCCESS" in await page.inner_text(".page-head")

    await eventually(succeeded, timeout=15, interval=0.3)
    assert "Attempt 2" in await page.inner_text("main")

    # Pause and resume, then rotate the signing secret.
    await page.goto(f"{running.http_url}/portal/endpoints/{orders.id}")
    await page.click("button:has-text('Pause')")
    await page.wait_for_selector(".page-head >> text=Paused")
    await page.click("button:has-text('Resume')")
    await page.wait_for_selector("text=Endpoint resumed")
    await page.select_option("select[name=overlap]", "3600")
    await page.click("button:has-text('Rotate secret')")
    await page.wait_for_selector("text=Secret rotated")
    newest = (await client.get_endpoint_secret(orders.id)).secrets[0].value
    assert newest in await page.inner_text("main")
    assert (await client.get_endpoint(orders.id)).status == endpoint_pb2.ENDPOINT_STATUS_ACTIVE

    # Another owner's delivery, by editing the URL: it does not exist here.
    response = await page.goto(f"{running.http_url}/portal/deliveries/{globex_delivery.id}")
    assert response.status == 404 and "Not found" in await page.inner_text("main")

    # The ONE_TIME link again (in a fresh session): refused.
    await browser.clear_cookies()
    response = await page.goto(link.url)
    assert response.status == 403
    assert "This link cannot be used" in await page.inner_text("main")

    # A link that may not manage: no management controls.
    viewer = await client.create_portal_link(owner_id="acme")
    await page.goto(viewer.url)
    await page.goto(f"{running.http_url}/portal/endpoints/{billing.id}")
    controls = await page.inner_text("main")
    assert "Acme billing" in controls
    for control in ("Pause", "Rotate secret", "Reveal secret", "Edit", "Send test event", "Delete"):
        assert (
            await page.locator(f"button:has-text('{control}'), a:has-text('{control}')").count()
            == 0
        )

    # A LONG_LIVED link works until it is revoked, and not a moment after.
    embedded = await client.create_portal_link(
        owner_id="acme", kind=portal_pb2.PORTAL_LINK_KIND_LONG_LIVED
    )
    await page.goto(embedded.url)
    assert "Acme orders" in await page.inner_text("main")
    await client.revoke_portal_link(embedded.id)
    await page.reload()
    assert "Your session has ended" in await page.inner_text("main")


async def test_the_endpoint_form_shows_only_the_chosen_method(
    delivering: tuple[App, Running], client: Client, browser: Any
) -> None:
    app, running = delivering
    secret = "oauth2-secret-" + "s" * 24
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url="https://hooks.invalid/in",
            owner_id="acme",
            name="Acme api",
            authentication=endpoint_pb2.EndpointAuthentication(
                basic=endpoint_pb2.BasicAuthentication(username="bob", password="pw-" + "p" * 20)
            ),
        )
    )
    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    page = await browser.new_page()
    await page.goto(link.url)
    edit = f"{running.http_url}/portal/endpoints/{endpoint.id}/edit"
    await page.goto(edit)

    async def visible() -> list[str]:
        groups = page.locator("[data-auth-method]")
        return [
            str(await groups.nth(i).get_attribute("data-auth-method"))
            for i in range(await groups.count())
            if await groups.nth(i).is_visible()
        ]

    assert await visible() == ["basic"]
    assert await page.input_value("#f-basic_password") == "********"
    await page.select_option("#f-auth_method", "oauth2")
    assert await visible() == ["oauth2"]
    await page.fill("#f-oauth2_token_url", "https://auth.invalid/token")
    await page.fill("#f-oauth2_client_id", "convoyd")
    await page.fill("#f-oauth2_client_secret", secret)
    await page.fill("#f-oauth2_scopes", "hooks:write read")
    await page.select_option("#f-oauth2_client_auth", "body")
    await page.click("button:has-text('Save')")
    await page.wait_for_selector("text=Endpoint saved.")
    assert "OAuth2 client credentials: client convoyd" in await page.inner_text("main")
    stored = (await app.endpoints.get(endpoint.id)).spec.auth
    assert getattr(stored, "client_secret", None) == secret
    assert getattr(stored, "scopes", None) == ("hooks:write", "read")
    assert secret not in await page.content()

    await page.goto(edit)
    assert await visible() == ["oauth2"]
    assert await page.input_value("#f-oauth2_client_secret") == "********"
    assert secret not in await page.content()
    await page.select_option("#f-auth_method", "none")
    assert await visible() == []


async def test_reloading_after_a_form_repeats_nothing(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
    browser: Any,
) -> None:
    """Each form in Chromium, then a reload: the reload is a GET of the page the form led to,
    it makes no endpoint, secret or delivery, and the result is not shown again."""
    _, running = delivering
    hook = await receivers()
    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    await browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=running.http_url)
    page = await browser.new_page()
    await page.goto(link.url)

    async def counts() -> tuple[int, int, int]:
        endpoints = (await client.list_endpoints(owner_id="acme")).endpoints
        deliveries = (await client.list_deliveries(owner_id="acme")).deliveries
        return len(endpoints), sum(len(e.secrets) for e in endpoints), len(deliveries)

    async def reload_repeats_nothing(result: str) -> tuple[int, int, int]:
        await page.locator(".notice", has_text=result).wait_for()
        before = await counts()
        response = await page.reload()
        assert response is not None and response.request.method == "GET" and response.ok
        assert await page.locator(".notice", has_text=result).count() == 0
        assert await counts() == before
        return before

    await page.goto(f"{running.http_url}/portal/endpoints/new")
    await page.fill("#f-name", "Acme orders")
    await page.fill("#f-url", hook.url)
    await page.fill("#f-event_types", "order.*")
    await page.click("button:has-text('Save')")
    await page.locator(".notice", has_text="Endpoint created").wait_for()
    (endpoint,) = (await client.list_endpoints(owner_id="acme")).endpoints
    secret = (await client.get_endpoint_secret(endpoint.id)).secrets[0].value
    # The new secret, shown this once, copied with its button (portal.js; the CSP stays strict).
    copy = page.locator(".card-secret button[data-copy]")
    await copy.click()
    await page.locator(".card-secret button:has-text('Copied')").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    assert await reload_repeats_nothing("Endpoint created") == (1, 1, 0)
    assert secret not in await page.content()

    await page.select_option("select[name=overlap]", "3600")
    await page.click("button:has-text('Rotate secret')")
    assert await reload_repeats_nothing("Secret rotated") == (1, 2, 0)

    await page.select_option("#test-type", "order.test")
    await page.click("button:has-text('Send test event')")
    assert await reload_repeats_nothing("Test event order.test sent") == (1, 2, 1)
    (delivery,) = (await client.list_deliveries(owner_id="acme")).deliveries

    await page.click("a:has-text('Edit')")
    await page.fill("#f-http_timeout", "30")
    await page.click("button:has-text('Save')")
    await reload_repeats_nothing("Endpoint saved")
    assert "HTTP timeout\n30 s" in await page.inner_text("main")

    await page.click("button:has-text('Pause')")
    await reload_repeats_nothing("Endpoint paused")
    await page.click("button:has-text('Resume')")
    await reload_repeats_nothing("Endpoint resumed")

    async def succeeded() -> bool:
        return await status_of(client, delivery.id) == delivery_pb2.DELIVERY_STATUS_SUCCESS

    await eventually(succeeded)
    await page.goto(f"{running.http_url}/portal/deliveries/{delivery.id}")
    await page.click("button:has-text('Resend')")
    await reload_repeats_nothing("Resend queued")
    await hook.wait_for(2)

    await page.goto(f"{running.http_url}/portal/endpoints/{endpoint.id}")
    await page.click("a:has-text('Delete')")
    assert "loses, for good" in await page.inner_text("main")
    await page.click("button:has-text('Delete Acme orders')")
    assert await reload_repeats_nothing("Endpoint Acme orders deleted") == (0, 0, 0)
    assert page.url == f"{running.http_url}/portal/"


async def test_the_main_pages_at_desktop_and_phone_width(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
    browser: Any,
) -> None:
    """Screenshots of the main pages at 1280 and 390 px; at 390 px nothing is wider than the
    screen. Every time says UTC; an endpoint that fails is red, one that works green."""
    _, running = delivering
    failing = await receivers(default_status=500)
    healthy = await receivers()
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 1
    policy.linear.interval.FromMilliseconds(100)
    orders = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=failing.url,
            owner_id="acme",
            name="Acme orders",
            description="Orders as they are placed, paid and shipped",
            event_types=["order.*"],
            retry_policy=policy,
            headers={"X-Tenant": "acme-eu-west-1", "Authorization": "Bearer sk_" + "q" * 40},
        )
    )
    billing = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=healthy.url, owner_id="acme", name="Acme billing")
    )
    event = await client.create_event(
        owner_id="acme",
        event_type="order.created",
        data={"order": 42, "lines": [{"sku": "SKU-" + "9" * 30, "quantity": 3}]},
    )
    deliveries = (await client.list_deliveries(event_id=event.id)).deliveries
    failed = next(d for d in deliveries if d.endpoint_id == orders.id)

    async def settled() -> bool:
        statuses = {await status_of(client, d.id) for d in deliveries}
        return statuses == {
            delivery_pb2.DELIVERY_STATUS_FAILURE,
            delivery_pb2.DELIVERY_STATUS_SUCCESS,
        }

    await eventually(settled)
    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    page = await browser.new_page()
    await page.goto(link.url)
    base = running.http_url
    pages = {
        "endpoints": f"{base}/portal/",
        "endpoint": f"{base}/portal/endpoints/{orders.id}",
        "deliveries": f"{base}/portal/deliveries",
        "delivery": f"{base}/portal/deliveries/{failed.id}",
        "event": f"{base}/portal/events/{event.id}",
        "endpoint-form": f"{base}/portal/endpoints/{orders.id}/edit",
        "delete": f"{base}/portal/endpoints/{orders.id}/delete",
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        for name, address in pages.items():
            response = await page.goto(address)
            assert response is not None and response.ok, name
            await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
            if width == "phone":
                assert await page.evaluate(TOO_WIDE) == [], name
            times = await page.eval_on_selector_all(
                "time", "nodes => nodes.map(n => [n.textContent, n.title])"
            )
            assert times or name.startswith(("endpoint-form", "delete")), name
            for text, title in times:
                assert text.endswith(" UTC") and title.startswith("Your local time: "), (name, text)

    await page.goto(pages["endpoints"])
    red = page.locator("tr", has_text="Acme orders").locator(".status")
    green = page.locator("tr", has_text="Acme billing").locator(".status")
    assert await red.inner_text() == "Failing"
    assert await red.evaluate("n => getComputedStyle(n).color") == "rgb(180, 35, 24)"
    assert await green.inner_text() == "Healthy"
    assert await green.evaluate("n => getComputedStyle(n).color") == "rgb(6, 118, 71)"
    assert billing.id in await page.content()
    # The delivery's newest attempt is open, the older one folded.
    await page.goto(pages["delivery"])
    attempts = page.locator("details.attempt")
    assert await attempts.count() == 2
    assert await attempts.nth(0).evaluate("n => n.open") is True
    assert await attempts.nth(1).evaluate("n => n.open") is False
    assert "request body" in (await attempts.nth(0).inner_text()).lower()
    # The health chart and the sparklines, drawn from the attempts just made.
    await page.goto(pages["endpoint"])
    charts = page.locator("section.health svg")
    assert await charts.count() >= 2  # the last 24 hours and the last 7 days
    assert await charts.first.is_visible()
    box = await charts.first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 40
    summary = await page.locator(".health-summary").first.inner_text()
    assert summary.startswith("0 ok, 2 failed"), summary
    await page.goto(pages["endpoints"])
    spark = page.locator("tr", has_text="Acme billing").locator(".sparkline")
    assert await spark.count() == 1
    assert "100" in await spark.inner_text()  # "100 % ok"
