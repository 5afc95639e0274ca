"""The portal's forms and pages as a customer uses them, against the real App on loopback:
post/redirect/get (a reload repeats nothing), the one status of an endpoint, test events of a
type it takes, delete, resend, attempts, settings, times in UTC, and the pages without a session."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from convoyd.app import App
from convoyd.client import Client
from convoyd.core.breaker import BreakerConfig
from convoyd.core.model import ApiKeyAuth
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.conftest import LOOPBACK_ALLOWED, Running, running_app
from tests.portal.test_portal_pages import Browser
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.both_stores

SUCCESS = delivery_pb2.DELIVERY_STATUS_SUCCESS
FAILURE = delivery_pb2.DELIVERY_STATUS_FAILURE
BEARER = "Bearer sk_live_" + "z" * 30


@pytest.fixture
async def portal(
    delivering: tuple[App, Running], client: Client
) -> AsyncIterator[Callable[..., Awaitable[Browser]]]:
    """Opens portal links (for owner acme, may manage unless told) in browsers of their own."""
    _, running = delivering
    opened: list[Browser] = []

    async def open_(**link_args: object) -> Browser:
        link_args.setdefault("owner_id", "acme")
        link_args.setdefault("can_manage_endpoints", True)
        link = await client.create_portal_link(**link_args)  # type: ignore[arg-type]
        browser = Browser(running.http_url)
        opened.append(browser)
        response = await browser.open(link.url)
        assert response.status == 200, await response.text()
        return browser

    yield open_
    for browser in opened:
        await browser.close()


def retry_once() -> endpoint_pb2.RetryPolicy:
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 0
    return policy


def text_of(html: str) -> str:
    """The page as read: tags dropped, white space collapsed, entities as characters."""
    plain = re.sub(r"<[^>]+>", " ", html).replace("&#x27;", "'").replace("&amp;", "&")
    return " ".join(plain.split())


async def delivered(client: Client, endpoint_id: str, event_type: str = "order.created") -> str:
    event = await client.create_event(endpoint_ids=[endpoint_id], event_type=event_type, data={})
    (made,) = (await client.list_deliveries(event_id=event.id)).deliveries
    return made.id


async def status_is(client: Client, delivery_id: str, status: int) -> bool:
    return (await client.get_delivery(delivery_id)).status == status


async def test_reload_after_every_form_repeats_nothing(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    """Every form answers 303 to a page; loading that page again (a reload) changes nothing
    and does not show the result again."""
    hook = await receivers()
    failing = await receivers(default_status=500)
    browser = await portal()

    async def counts() -> tuple[int, int, int]:
        # (Attempts are counted where they are awaited: they happen after the answer.)
        endpoints = (await client.list_endpoints(owner_id="acme")).endpoints
        deliveries = (await client.list_deliveries(owner_id="acme", page_size=1000)).deliveries
        return len(endpoints), sum(len(e.secrets) for e in endpoints), len(deliveries)

    async def once(path: str, data: dict[str, str], result: str) -> str:
        where, page = await browser.submit(path, data)
        assert result in page, (path, text_of(page)[:400])
        before = await counts()
        for _ in range(2):  # reload, twice
            status, again = await browser.get(where)
            assert status == 200 and result not in again, path
        assert await counts() == before, path
        return where

    where = await once(
        "/portal/endpoints/new",
        {"url": hook.url, "name": "orders", "event_types": "order.*"},
        "Endpoint created",
    )
    endpoint_id = where.rsplit("/", 1)[1]
    base = where
    assert (await counts())[:2] == (1, 1)
    await once(
        f"{base}/edit",
        {"url": hook.url, "name": "orders 2", "event_types": "order.*"},
        "Endpoint saved.",
    )
    stamp = (await client.get_endpoint(endpoint_id)).updated_at
    await browser.get(base)
    assert (await client.get_endpoint(endpoint_id)).updated_at == stamp
    await once(f"{base}/rotate-secret", {"overlap": "3600"}, "Secret rotated")
    assert (await counts())[1] == 2
    await once(f"{base}/secret", {}, "values are shown below")
    await once(f"{base}/test-event", {"event_type": "order.test"}, "Test event order.test sent.")
    assert (await counts())[2] == 1
    await hook.wait_for(1)
    await once(f"{base}/pause", {}, "Endpoint paused")
    await once(f"{base}/resume", {}, "Endpoint resumed")

    # A delivery that failed for good: retried once, and a batch retry of the rest.
    broken = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=failing.url, owner_id="acme", name="broken", retry_policy=retry_once()
        )
    )
    failed = await delivered(client, broken.id)
    await eventually(lambda: status_is(client, failed, FAILURE))
    failing.default_status = 200
    await once(f"/portal/deliveries/{failed}/retry", {}, "Retry queued")
    await eventually(lambda: status_is(client, failed, SUCCESS))
    resent = (await client.get_delivery(failed)).attempt_count
    await once(f"/portal/deliveries/{failed}/resend", {}, "Resend queued")

    async def attempted() -> bool:
        got = await client.get_delivery(failed)
        return got.attempt_count == resent + 1 and got.status == SUCCESS

    await eventually(attempted)
    await browser.get(f"/portal/deliveries/{failed}")
    assert (await client.get_delivery(failed)).status == SUCCESS  # nothing was resent again
    await once(f"/portal/endpoints/{broken.id}/batch-retry", {}, "Nothing to retry")

    await once(f"{base}/delete", {}, "deleted")
    assert (await counts())[0] == 1
    assert (await browser.post(f"{base}/delete"))[0] == 404  # gone: nothing to do twice


async def test_an_open_breaker_says_failing_and_when_it_tries_next(
    tmp_path: Path, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    """ACTIVE with its breaker OPEN is not healthy: the endpoint is "Failing", paused by
    convoyd until the next try, said as a time ahead; no jargon, no green."""
    failing = await receivers(default_status=503)
    breaker = BreakerConfig(consecutive_failures=1, cooldown=600, max_cooldown=600)
    async with (
        running_app(tmp_path / "data", delivery=LOOPBACK_ALLOWED, breaker=breaker) as (
            app,
            running,
        ),
        Client(running.grpc_target, token=running.token) as client,
    ):
        endpoint = await client.create_endpoint(
            endpoint_pb2.Endpoint(
                url=failing.url, owner_id="acme", name="down", retry_policy=retry_once()
            )
        )
        await delivered(client, endpoint.id)

        def opened() -> bool:
            status = app.engine.breaker_status(endpoint.id)
            return status is not None and status.state == "open"

        await eventually(opened)
        status = app.engine.breaker_status(endpoint.id)
        assert status is not None and status.next_probe_at is not None
        until = datetime.fromtimestamp(status.next_probe_at, UTC).strftime("%H:%M UTC")
        link = await client.create_portal_link(owner_id="acme")
        browser = Browser(running.http_url)
        try:
            await browser.open(link.url)
            _, listing = await browser.get("/portal/")
            _, page = await browser.get(f"/portal/endpoints/{endpoint.id}")
        finally:
            await browser.close()
    for markup in (listing, page):
        read = text_of(markup)
        assert f"Failing — paused by convoyd until {until} (in 10 min), next try then" in read
        assert 'class="status status-bad"' in markup
        for jargon in ("trips in a row", "Next probe", "CLOSED", "badge-active", "ACTIVE"):
            assert jargon not in markup, jargon
    assert "status-card-bad" in page


async def test_the_test_event_is_of_a_type_the_endpoint_takes(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    hook = await receivers()
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=hook.url, owner_id="acme", event_types=["order.*", "invoice.paid"]
        )
    )
    base = f"/portal/endpoints/{endpoint.id}"
    browser = await portal()
    _, page = await browser.get(base)
    select = re.search(r'<select id="test-type" name="event_type">(.*?)</select>', page, re.S)
    assert select is not None
    assert re.findall(r'<option value="([^"]+)"', select[1]) == ["order.test", "invoice.paid"]

    _, page = await browser.submit(f"{base}/test-event", {"event_type": "invoice.paid"})
    assert "Test event invoice.paid sent." in page and "notice-ok" in page
    (received,) = await hook.wait_for(1)
    assert json.loads(received.body)["type"] == "invoice.paid"

    # A type it does not take is refused before anything is made.
    events = len((await client.list_events()).events)
    _, page = await browser.submit(f"{base}/test-event", {"event_type": "convoyd.test"})
    assert "Choose an event type this endpoint subscribes to" in page and "notice-error" in page
    assert len((await client.list_events()).events) == events

    # Paused: the test event is recorded, not sent, and that is a warning, not a success.
    await client.pause_endpoint(endpoint.id)
    _, page = await browser.submit(f"{base}/test-event", {"event_type": "order.test"})
    assert "notice-warn" in page and "notice-ok" not in page
    assert "recorded but not sent: the endpoint is paused" in text_of(page)


async def test_delete_says_what_is_lost_then_deletes(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    hook = await receivers()
    hook.hang = asyncio.Event()  # its deliveries stay in flight: not sent yet
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=hook.url, owner_id="acme", name="to go")
    )
    for _ in range(2):
        await delivered(client, endpoint.id)
    base = f"/portal/endpoints/{endpoint.id}"
    viewer = await portal(can_manage_endpoints=False)
    assert (await viewer.get(f"{base}/delete"))[0] == 403
    browser = await portal()
    _, page = await browser.get(base)
    assert f'href="{base}/delete"' in page
    status, confirm = await browser.get(f"{base}/delete")
    read = text_of(confirm)
    assert status == 200 and "Deleting to go (" in read and hook.url in read
    assert "1 signing secret" in read and "every delivery to it" in read
    assert "2 deliveries not sent yet: they are never sent" in read
    assert "cannot be undone" in read
    assert (await browser.post(f"{base}/delete", csrf=False))[0] == 403
    assert len((await client.list_endpoints(owner_id="acme")).endpoints) == 1
    where, listing = await browser.submit(f"{base}/delete")
    hook.hang.set()
    assert where == "/portal/" and "Endpoint to go deleted" in listing
    assert (await client.list_endpoints(owner_id="acme")).endpoints == []
    assert (await browser.get(base))[0] == 404


async def test_resend_sends_a_delivery_that_succeeded_once_more(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    hook = await receivers()
    endpoint = await client.create_endpoint(endpoint_pb2.Endpoint(url=hook.url, owner_id="acme"))
    done = await delivered(client, endpoint.id)
    await eventually(lambda: status_is(client, done, SUCCESS))
    browser = await portal(can_manage_endpoints=False)  # sending again is for every link
    _, page = await browser.get(f"/portal/deliveries/{done}")
    assert f'action="/portal/deliveries/{done}/resend"' in page and "/retry" not in page
    _, page = await browser.submit(f"/portal/deliveries/{done}/resend")
    assert "Resend queued" in page
    await hook.wait_for(2)

    async def twice() -> bool:
        got = await client.get_delivery(done)
        return got.status == SUCCESS and got.attempt_count == 2

    await eventually(twice)
    _, page = await browser.get(f"/portal/deliveries/{done}")
    assert page.count('<details class="attempt"') == 2


async def test_retry_now_sends_a_waiting_delivery_at_once_keeping_its_count(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    hook = await receivers(script=[503])
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 3
    policy.linear.interval.seconds = 3600  # the next try would be an hour away
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=hook.url, owner_id="acme", retry_policy=policy)
    )
    waiting = await delivered(client, endpoint.id)
    await eventually(lambda: status_is(client, waiting, delivery_pb2.DELIVERY_STATUS_RETRY))
    browser = await portal(can_manage_endpoints=False)
    _, page = await browser.get(f"/portal/deliveries/{waiting}")
    assert "Retry now" in page
    _, page = await browser.submit(f"/portal/deliveries/{waiting}/retry")
    assert "next try is now" in page
    await hook.wait_for(2)

    async def succeeded_on_its_second_attempt() -> bool:
        got = await client.get_delivery(waiting)
        return got.status == SUCCESS and got.attempt_count == 2

    await eventually(succeeded_on_its_second_attempt)


async def test_attempts_newest_open_with_the_body_they_sent(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    hook = await receivers(script=[500])
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 1
    policy.linear.interval.FromMilliseconds(100)
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=hook.url, owner_id="acme", retry_policy=policy)
    )
    big = await client.create_event(
        endpoint_ids=[endpoint.id], event_type="order.big", data={"blob": "x" * 100_000}
    )
    (big_delivery,) = (await client.list_deliveries(event_id=big.id)).deliveries
    await eventually(lambda: status_is(client, big_delivery.id, SUCCESS))
    small = await client.create_event(
        endpoint_ids=[endpoint.id], event_type="order.small", data={"order": 7}
    )
    (small_delivery,) = (await client.list_deliveries(event_id=small.id)).deliveries
    await eventually(lambda: status_is(client, small_delivery.id, SUCCESS))
    browser = await portal(can_manage_endpoints=False)
    pages = {}
    for made in (big_delivery, small_delivery):
        pages[made.id] = (await browser.get(f"/portal/deliveries/{made.id}"))[1]
    assert (await client.get_delivery(big_delivery.id)).attempt_count == 2
    big_page = pages[big_delivery.id]
    assert re.findall(r'<details class="attempt"( open)?>', big_page) == [" open", ""]
    assert "Showing the first 64 KiB of 98 KiB" in big_page
    shown = re.search(r"Showing the first.*?<pre>(.*?)</pre>", big_page, re.S)
    assert shown is not None and len(html.unescape(shown[1])) == 64 * 1024
    assert 'href="/portal/events/' + big.id + '"' in big_page
    small_page = pages[small_delivery.id]
    assert "<h3>Request body</h3><pre>{\n  &quot;order&quot;: 7\n}</pre>" in small_page
    assert 'id="delivery-live" data-stream="/portal/stream/deliveries/' in small_page


async def test_every_time_says_utc_as_the_filters_do(
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    hook = await receivers()
    endpoint = await client.create_endpoint(endpoint_pb2.Endpoint(url=hook.url, owner_id="acme"))
    delivery_id = await delivered(client, endpoint.id)
    await eventually(lambda: status_is(client, delivery_id, SUCCESS))
    made = await client.get_delivery(delivery_id)
    browser = await portal()
    paths = [
        "/portal/",
        f"/portal/endpoints/{endpoint.id}",
        "/portal/deliveries",
        f"/portal/deliveries/{delivery_id}",
        f"/portal/events/{made.event_id}",
    ]
    for path in paths:
        _, page = await browser.get(path)
        times = re.findall(r"<time [^>]*>([^<]*)</time>", page)
        assert times and all(t.endswith(" UTC") for t in times), (path, times)
        assert "Times are in UTC" in page
    _, page = await browser.get("/portal/deliveries")
    assert "From (UTC)" in page and "To (UTC)" in page
    created = made.created_at.ToDatetime(tzinfo=UTC)

    def typed(moment: datetime) -> str:  # as a datetime-local field sends it
        return moment.strftime("%Y-%m-%dT%H:%M")

    _, page = await browser.get(f"/portal/deliveries?since={typed(created - timedelta(minutes=1))}")
    assert delivery_id in page
    _, page = await browser.get(f"/portal/deliveries?since={typed(created + timedelta(minutes=2))}")
    assert delivery_id not in page and "No deliveries match" in page
    stream = re.search(r'id="deliveries-live" data-stream="([^"]+)"', page)
    assert stream is not None and stream[1].startswith("/portal/stream/deliveries?since=")


async def test_the_endpoint_page_says_its_settings_and_the_form_sets_them(
    delivering: tuple[App, Running],
    client: Client,
    portal: Callable[..., Awaitable[Browser]],
) -> None:
    app, _ = delivering
    browser = await portal()
    _, form = await browser.get("/portal/endpoints/new")
    assert 'name="retry_strategy"' in form and 'name="headers"' in form
    where, page = await browser.submit(
        "/portal/endpoints/new",
        {
            "url": "https://hooks.example.invalid/in",
            "name": "set",
            "headers": f"X-Tenant: acme\nAuthorization: {BEARER}",
            "retry_strategy": "exponential",
            "retry_exponential_retries": "3",
            "retry_initial_interval": "10s",
            "retry_multiplier": "3",
            "retry_max_interval": "1h",
            "auth_method": "api_key",
            "api_key_header": "X-Api-Key",
            "api_key_value": "k" * 32,
            "ordering": "fifo",
        },
    )
    read = text_of(page)
    assert "HTTP timeout 15 s (default)" in read
    assert "3 retries, the first after 10 s, each next delay times 3, at most 1 h" in read
    assert "X-Tenant: acme" in read and "Authorization: [redacted]" in read
    assert BEARER not in page and "k" * 32 not in page
    assert "Authentication API key in the X-Api-Key header Client" in read
    assert "Ordering FIFO" in read
    endpoint_id = where.rsplit("/", 1)[1]
    spec = (await app.endpoints.get(endpoint_id)).spec
    assert dict(spec.headers) == {"X-Tenant": "acme", "Authorization": BEARER}
    assert isinstance(spec.auth, ApiKeyAuth)
    assert spec.retry_policy is not None and spec.retry_policy.max_retries == 3

    # The edit form as shown, sent back: nothing changes (the redacted header keeps its value).
    _, edit = await browser.get(f"{where}/edit")
    assert "Authorization: [redacted]" in edit and BEARER not in edit
    shown = dict(
        re.findall(r'<input id="f-[^"]+" name="([^"]+)" type="[^"]+" value="([^"]*)"', edit)
    )
    shown["headers"] = "X-Tenant: acme\nAuthorization: [redacted]"
    shown |= {"retry_strategy": "exponential", "auth_method": "api_key", "ordering": "fifo"}
    _, page = await browser.submit(f"{where}/edit", shown)
    assert "Nothing changed." in page
    assert (await app.endpoints.get(endpoint_id)).spec == spec

    # A timeout and a schedule of its own; a duration that is none says which field is wrong.
    status, refused = await browser.post(
        f"{where}/edit", {**shown, "retry_strategy": "schedule", "retry_delays": "5s, soon"}
    )
    assert status == 400 and "&#x27;soon&#x27; is not a duration" in refused
    assert re.search(r'field field-error"><label for="f-retry_delays"', refused)
    _, page = await browser.submit(
        f"{where}/edit",
        {**shown, "http_timeout": "30", "retry_strategy": "schedule", "retry_delays": "5s, 5m, 2h"},
    )
    read = text_of(page)
    assert "HTTP timeout 30 s" in read and "3 retries, after 5 s, 5 min, 2 h" in read
    default = await client.create_endpoint(
        endpoint_pb2.Endpoint(url="https://hooks.example.invalid/d", owner_id="acme")
    )
    _, page = await browser.get(f"/portal/endpoints/{default.id}")
    read = text_of(page)
    assert "7 retries, after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h" in read
    assert "(convoyd's default)" in read and "Custom headers none" in read


async def test_a_result_shows_only_in_its_own_session(
    client: Client, portal: Callable[..., Awaitable[Browser]]
) -> None:
    """The result cookie of one session (it names a new secret) is nothing in another."""
    endpoint = await client.create_endpoint(
        endpoint_pb2.Endpoint(url="https://hooks.example.invalid/in", owner_id="acme")
    )
    base = f"/portal/endpoints/{endpoint.id}"
    mine, theirs = await portal(), await portal()
    await mine.get(base)
    assert (await mine.post(f"{base}/rotate-secret", {"overlap": "0"}))[0] == 303
    cookies = {c.key: c.value for c in mine.session.cookie_jar}
    result = cookies["convoyd_portal_flash"]
    new = (await client.get_endpoint_secret(endpoint.id)).secrets[0].value
    theirs.session.cookie_jar.update_cookies({"convoyd_portal_flash": result})
    async with theirs.session.get(theirs.base + base) as response:
        page = await response.text()
        # It did arrive: refused (its signature is another session's) and deleted.
        assert 'convoyd_portal_flash=""' in response.headers.get("Set-Cookie", "")
    assert new not in page and "Secret rotated" not in page
    # A script's fetch of the page (the live refresh) leaves the result to the page itself.
    async with mine.session.get(mine.base + base, headers={"Sec-Fetch-Mode": "cors"}) as fetched:
        assert "Secret rotated" not in await fetched.text()
    _, page = await mine.get(base)
    assert new in page and "Secret rotated" in page


async def test_pages_without_a_session_say_the_way_on(delivering: tuple[App, Running]) -> None:
    _, running = delivering
    async with aiohttp.ClientSession() as http:
        async with http.get(running.http_url + "/portal/") as response:
            text = await response.text()
            assert response.status == 403 and "Your session has ended" in text
            assert "go back to the application that sent you here" in text
        async with http.get(running.http_url + "/") as response:
            text = await response.text()
            assert response.status == 200 and "<h1>convoyd</h1>" in text
            assert 'href="/healthz"' in text and "docs/operations.md" in text
            assert "script" not in response.headers["Content-Security-Policy"]
        async with http.get(running.http_url + "/healthz") as response:
            assert response.status == 200
