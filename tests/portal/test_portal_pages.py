"""The web portal against the real App on loopback: scope, rights, CSRF, links, headers, log."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest

from convoyd.app import App
from convoyd.client import Client
from convoyd.v1 import endpoint_pb2, portal_pb2
from tests.conftest import Running
from tests.receivers import Receiver

pytestmark = pytest.mark.both_stores

LONG_LIVED = portal_pb2.PORTAL_LINK_KIND_LONG_LIVED
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class Browser:
    """An aiohttp session that keeps cookies for 127.0.0.1 (as browsers do) and posts forms
    with the CSRF token of the last page it loaded."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.location = ""

    async def open(self, url: str) -> aiohttp.ClientResponse:
        response = await self.session.get(url)
        await self._read(response)
        return response

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        text = await response.text()
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        if found:
            self.csrf = found[1]

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            text = await response.text()
            await self._read(response)
            return response.status, text

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True
    ) -> tuple[int, str]:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf
        async with self.session.post(
            self.base + path, data=form, allow_redirects=False
        ) as response:
            self.location = response.headers.get("Location", "")
            return response.status, await response.text()

    async def submit(self, path: str, data: dict[str, str] | None = None) -> tuple[str, str]:
        """A form as a browser sends it: the POST must answer 303 See Other (post/redirect/
        get); the page it leads to is loaded. Returns that page's path and text."""
        status, text = await self.post(path, data)
        assert status == 303, (path, status, text[:500])
        assert self.location.startswith("/portal/"), self.location
        got, page = await self.get(self.location)
        assert got == 200, (self.location, page[:500])
        return self.location, page

    async def close(self) -> None:
        await self.session.close()


@dataclass
class World:
    """Two owners' endpoints with a delivered event each, and a way to open portal links."""

    app: App
    running: Running
    client: Client
    acme: list[endpoint_pb2.Endpoint]
    other: endpoint_pb2.Endpoint
    acme_delivery: str
    acme_event: str
    other_delivery: str
    other_event: str
    browsers: list[Browser]

    async def browser(self, **link_args: object) -> tuple[Browser, portal_pb2.PortalLink]:
        link = await self.client.create_portal_link(**link_args)  # type: ignore[arg-type]
        browser = Browser(self.running.http_url)
        self.browsers.append(browser)
        response = await browser.open(link.url)
        assert response.status == 200, await response.text()
        return browser, link


async def _delivered(client: Client, endpoint_id: str) -> tuple[str, str]:
    event = await client.create_event(
        endpoint_ids=[endpoint_id], event_type="order.created", data={"order": 1}
    )
    deliveries = (await client.list_deliveries(event_id=event.id)).deliveries
    return deliveries[0].id, event.id


@pytest.fixture
async def world(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
) -> AsyncIterator[World]:
    app, running = delivering
    hook = await receivers()
    acme = [
        await client.create_endpoint(
            endpoint_pb2.Endpoint(url=hook.url, owner_id="acme", name=f"acme-{i}")
        )
        for i in range(2)
    ]
    other = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=hook.url, owner_id="other", name="other-0")
    )
    acme_delivery, acme_event = await _delivered(client, acme[0].id)
    other_delivery, other_event = await _delivered(client, other.id)
    await hook.wait_for(2)
    made = World(
        app,
        running,
        client,
        acme,
        other,
        acme_delivery,
        acme_event,
        other_delivery,
        other_event,
        [],
    )
    yield made
    for browser in made.browsers:
        await browser.close()


async def test_scope_matrix(world: World) -> None:
    """Every page and action: inside the scope it works, outside it does not exist (404)."""
    browser, _ = await world.browser(owner_id="acme", can_manage_endpoints=True)
    mine, theirs = world.acme[0].id, world.other.id
    pages = [
        "/portal/endpoints/{ep}",
        "/portal/endpoints/{ep}/edit",
        "/portal/endpoints/{ep}/batch-retry",
        "/portal/endpoints/{ep}/delete",
        "/portal/deliveries/{dl}",
        "/portal/events/{ev}",
        "/portal/deliveries?endpoint={ep}",
    ]
    for template in pages:
        inside = template.format(ep=mine, dl=world.acme_delivery, ev=world.acme_event)
        outside = template.format(ep=theirs, dl=world.other_delivery, ev=world.other_event)
        assert (await browser.get(inside))[0] == 200, inside
        status, text = await browser.get(outside)
        assert status == 404 and "Not found" in text, outside
        assert "other-0" not in text
    # The live streams of those pages (convoyd/portal/live.py): the same scope.
    for template in ("/portal/stream/deliveries/{dl}", "/portal/stream/deliveries?endpoint={ep}"):
        inside = template.format(ep=mine, dl=world.acme_delivery)
        outside = template.format(ep=theirs, dl=world.other_delivery)
        async with browser.session.get(browser.base + inside) as response:
            assert response.status == 200, inside
            assert response.content_type == "text/event-stream", inside
        status, text = await browser.get(outside)
        assert status == 404 and "Not found" in text and "other-0" not in text, outside
    actions = [
        ("/portal/endpoints/{ep}/pause", {}),
        ("/portal/endpoints/{ep}/resume", {}),
        ("/portal/endpoints/{ep}/rotate-secret", {"overlap": "3600"}),
        ("/portal/endpoints/{ep}/secret", {}),
        ("/portal/endpoints/{ep}/test-event", {}),
        ("/portal/endpoints/{ep}/batch-retry", {}),
        ("/portal/endpoints/{ep}/edit", {"url": "https://hooks.example.invalid/x", "name": "x"}),
        ("/portal/deliveries/{dl}/retry", {}),
        ("/portal/deliveries/{dl}/resend", {}),
        ("/portal/endpoints/{ep}/delete", {}),  # last: it deletes the endpoint inside
    ]
    await browser.get("/portal/")
    for template, form in actions:
        outside = template.format(ep=theirs, dl=world.other_delivery)
        status, _ = await browser.post(outside, form)
        assert status == 404, outside
    for template, form in actions:
        inside = template.format(ep=mine, dl=world.acme_delivery)
        status, text = await browser.post(inside, form)
        # Every form answers 303 (a refusal too: retrying a delivery that succeeded is refused
        # by the service, as over gRPC, and said on the page it leads to).
        assert status == 303, (inside, status, text[:300])
    # Nothing of the other owner changed.
    other = await world.client.get_endpoint(theirs)
    assert other.status == endpoint_pb2.ENDPOINT_STATUS_ACTIVE and len(other.secrets) == 1
    # Made-up and malformed ids are 404s too.
    for path in ("/portal/endpoints/ep_" + "0" * 26, "/portal/deliveries/<x>", "/portal/nope"):
        assert (await browser.get(path))[0] == 404


async def test_lists_show_only_the_scope(world: World) -> None:
    browser, _ = await world.browser(owner_id="acme")
    _, endpoints = await browser.get("/portal/")
    assert "acme-0" in endpoints and "acme-1" in endpoints and "other-0" not in endpoints
    _, deliveries = await browser.get("/portal/deliveries")
    assert world.acme_delivery in deliveries and world.other_delivery not in deliveries
    status, filtered = await browser.get("/portal/deliveries?status=failure")
    assert status == 200 and "No deliveries match" in filtered
    _, by_type = await browser.get("/portal/deliveries?event_type=order.created")
    assert world.acme_delivery in by_type
    status, bad = await browser.get("/portal/deliveries?since=yesterday")
    assert status == 400 and "since" in bad

    listed, _ = await world.browser(endpoint_ids=[world.acme[1].id])
    _, text = await listed.get("/portal/")
    assert "acme-1" in text and "acme-0" not in text
    assert (await listed.get(f"/portal/deliveries/{world.acme_delivery}"))[0] == 404

    operator, _ = await world.browser(all_owners=True, can_manage_endpoints=True)
    _, text = await operator.get("/portal/")
    assert "acme-0" in text and "other-0" in text
    assert (await operator.get(f"/portal/events/{world.other_event}"))[0] == 200


async def test_pages_show_attempts_and_payload(world: World) -> None:
    browser, _ = await world.browser(owner_id="acme")
    status, text = await browser.get(f"/portal/deliveries/{world.acme_delivery}")
    assert status == 200 and "Attempt 1" in text and "webhook-signature" in text
    assert "127.0.0.1" in text and "SUCCESS" in text
    status, text = await browser.get(f"/portal/events/{world.acme_event}")
    assert status == 200 and "order.created" in text and world.acme_delivery in text


async def test_csrf_is_required(world: World) -> None:
    browser, _ = await world.browser(owner_id="acme", can_manage_endpoints=True)
    path = f"/portal/endpoints/{world.acme[0].id}/pause"
    assert (await browser.post(path, csrf=False))[0] == 403
    assert (await browser.post(path, {"csrf": "forged"}, csrf=False))[0] == 403
    assert (await world.client.get_endpoint(world.acme[0].id)).status == (
        endpoint_pb2.ENDPOINT_STATUS_ACTIVE
    )
    assert (await browser.post(path))[0] == 303


async def test_a_link_without_manage_cannot_manage(world: World) -> None:
    browser, _ = await world.browser(owner_id="acme")
    endpoint = world.acme[0].id
    _, page = await browser.get(f"/portal/endpoints/{endpoint}")
    for control in ("Pause", "Rotate secret", "Reveal secret", "Send test event", "/edit"):
        assert control not in page
    assert "/delete" not in page
    assert "New endpoint" not in (await browser.get("/portal/"))[1]
    for action in ("pause", "resume", "rotate-secret", "secret", "test-event", "edit", "delete"):
        status, _ = await browser.post(f"/portal/endpoints/{endpoint}/{action}", {"overlap": "0"})
        assert status == 403, action
    assert (await browser.get(f"/portal/endpoints/{endpoint}/edit"))[0] == 403
    assert (await browser.get(f"/portal/endpoints/{endpoint}/delete"))[0] == 403
    assert (await browser.get("/portal/endpoints/new"))[0] == 403
    # Retrying is for every link.
    assert (await browser.get(f"/portal/endpoints/{endpoint}/batch-retry"))[0] == 200


async def test_manage_actions_use_the_service_rules(world: World) -> None:
    browser, _ = await world.browser(owner_id="acme", can_manage_endpoints=True)
    endpoint = world.acme[0].id
    base = f"/portal/endpoints/{endpoint}"
    await browser.get(base)
    # ACTIVE: resume is not allowed; the service's words show once on the endpoint's page.
    where, text = await browser.submit(f"{base}/resume")
    assert where == base and "cannot resume an endpoint that is active" in text
    assert "notice-error" in text
    assert "cannot resume" not in (await browser.get(base))[1]
    await browser.submit(f"{base}/pause")
    assert (await world.client.get_endpoint(endpoint)).status == (
        endpoint_pb2.ENDPOINT_STATUS_PAUSED
    )
    await browser.submit(f"{base}/resume")

    status, text = await browser.post(f"{base}/edit", {"url": "ftp://nope", "name": "n"})
    assert status == 400 and "must be an http or https URL" in text and 'field-error"' in text
    _, text = await browser.submit(
        f"{base}/edit", {"url": "https://hooks.example.invalid/new", "name": "renamed"}
    )
    assert "Endpoint saved." in text
    updated = await world.client.get_endpoint(endpoint)
    assert updated.url == "https://hooks.example.invalid/new" and updated.name == "renamed"

    _, text = await browser.submit(f"{base}/rotate-secret", {"overlap": "3600"})
    assert "Secret rotated" in text
    live = (await world.client.get_endpoint_secret(endpoint)).secrets
    assert len(live) == 2 and live[0].value in text and live[1].value not in text
    assert live[0].value not in (await browser.get(base))[1]  # shown once: a reload hides it
    _, text = await browser.submit(f"{base}/secret")
    assert all(s.value in text for s in live)
    reloaded = (await browser.get(base))[1]
    assert not any(s.value in reloaded for s in live)

    where, text = await browser.submit(
        "/portal/endpoints/new", {"url": "https://hooks.example.invalid/b", "name": "<b>new</b>"}
    )
    assert "Endpoint created" in text and "&lt;b&gt;new&lt;/b&gt;" in text
    created = [
        e
        for e in (await world.client.list_endpoints(owner_id="acme")).endpoints
        if e.name == "<b>new</b>"
    ]
    assert len(created) == 1 and where == f"/portal/endpoints/{created[0].id}"
    secret = (await world.client.get_endpoint_secret(created[0].id)).secrets[0].value
    assert secret in text


async def test_test_event_reaches_only_that_endpoint(
    world: World, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    hook = await receivers()
    browser, _ = await world.browser(owner_id="acme", can_manage_endpoints=True)
    endpoint = world.acme[1].id
    await world.client.update_endpoint(endpoint_pb2.Endpoint(id=endpoint, url=hook.url), ["url"])
    await browser.get(f"/portal/endpoints/{endpoint}")
    _, page = await browser.submit(f"/portal/endpoints/{endpoint}/test-event")
    assert "Test event convoyd.test sent." in page and "notice-ok" in page
    (received,) = await hook.wait_for(1)
    assert b'"convoyd.test"' in received.body


async def test_one_time_links_work_once(world: World) -> None:
    link = await world.client.create_portal_link(owner_id="acme")
    first, second = Browser(world.running.http_url), Browser(world.running.http_url)
    # A HEAD (link previews, mail scanners) does not use the link up.
    async with first.session.head(link.url, allow_redirects=False) as head:
        assert head.status == 405
    world.browsers += [first, second]
    responses = await asyncio.gather(first.open(link.url), second.open(link.url))
    assert sorted(r.status for r in responses) == [200, 403]  # exactly one wins
    third = Browser(world.running.http_url)
    world.browsers.append(third)
    again = await third.open(link.url)
    assert again.status == 403 and "cannot be used" in await again.text()
    assert (await world.client.get_portal_link(link.id)).HasField("used_at")


async def test_revoked_long_lived_link_stops_at_once(world: World) -> None:
    one, link = await world.browser(owner_id="acme", kind=LONG_LIVED)
    two = Browser(world.running.http_url)
    world.browsers.append(two)
    assert (await two.open(link.url)).status == 200  # LONG_LIVED: every open is a session
    assert (await one.get("/portal/"))[0] == 200
    await world.client.revoke_portal_link(link.id)
    for browser in (one, two):
        status, text = await browser.get("/portal/")
        assert status == 403 and "session has ended" in text
        assert "go back to the application that sent you here" in text
    three = Browser(world.running.http_url)
    world.browsers.append(three)
    assert (await three.open(link.url)).status == 403


async def test_security_headers_and_no_token_in_urls(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="convoyd.portal")
    link = await world.client.create_portal_link(owner_id="acme", kind=LONG_LIVED)
    browser = Browser(world.running.http_url)
    world.browsers.append(browser)
    token = link.url.split("token=")[1]
    response = await browser.open(link.url)
    assert "token" not in str(response.url) and str(response.url).endswith("/portal/")
    exchange = response.history[0]
    assert exchange.status == 303 and exchange.headers["Referrer-Policy"] == "no-referrer"
    cookie = exchange.cookies["convoyd_portal"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/portal"
    assert not cookie["secure"]  # http public_url
    for path in ("/portal/", "/portal/deliveries", "/portal/nope", "/portal/static/portal.css"):
        async with browser.session.get(world.running.http_url + path) as got:
            for name, value in SECURITY_HEADERS.items():
                assert got.headers[name] == value, (path, name)
            csp = got.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    records = [r for r in caplog.records if r.name == "convoyd.portal"]
    assert any(getattr(r, "path", "") == "/portal/enter" for r in records)
    pages = [r for r in records if not getattr(r, "path", "").startswith("/portal/static/")]
    assert all(getattr(r, "link_id", "") == link.id for r in pages)
    secret = cookie.value
    for record in records:
        text = record.getMessage() + " ".join(str(v) for v in record.__dict__.values())
        assert token not in text and secret not in text


async def test_frame_ancestors_only_for_long_lived(tmp_path: object) -> None:
    from pathlib import Path

    from convoyd.settings import PortalSettings
    from tests.conftest import running_app

    portal = PortalSettings(frame_ancestors=("https://app.example.com",))
    async with (
        running_app(Path(str(tmp_path)) / "data", portal=portal) as (_, running),
        Client(running.grpc_target, token=running.token) as client,
    ):
        for kind, framed in ((LONG_LIVED, True), (portal_pb2.PORTAL_LINK_KIND_ONE_TIME, False)):
            link = await client.create_portal_link(owner_id="acme", kind=kind)
            browser = Browser(running.http_url)
            try:
                response = await browser.open(link.url)
                csp = response.headers["Content-Security-Policy"]
                if framed:
                    assert "frame-ancestors https://app.example.com" in csp
                    assert "X-Frame-Options" not in response.headers
                else:
                    assert "frame-ancestors 'none'" in csp
                    assert response.headers["X-Frame-Options"] == "DENY"
            finally:
                await browser.close()


async def test_sign_out_ends_the_session(world: World) -> None:
    browser, _ = await world.browser(owner_id="acme")
    await browser.get("/portal/")
    where, text = await browser.submit("/portal/logout")
    assert where == "/portal/signed-out" and "You have signed out" in text
    assert (await browser.get("/portal/"))[0] == 403
