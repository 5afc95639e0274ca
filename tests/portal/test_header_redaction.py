"""One redaction rule wherever header values are shown: the API (endpoints, events,
attempts), the portal's pages and convoyctl; a redacted value sent back keeps the real one."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from convoyd.app import App
from convoyd.client import Client
from convoyd.client.errors import InvalidArgumentError
from convoyd.core.request import REDACTED
from convoyd.v1 import endpoint_pb2
from tests.conftest import Running
from tests.receivers import Receiver, eventually

BEARER = "Bearer sk_live_" + "q" * 30
X_AUTH = "xauth-" + "w" * 30
COOKIE = "sid=" + "e" * 30


async def _endpoint(client: Client, url: str) -> endpoint_pb2.Endpoint:
    return await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url=url,
            owner_id="acme",
            headers={"Authorization": BEARER, "X-Tenant": "acme-1", "X-Forward": BEARER},
            authentication=endpoint_pb2.EndpointAuthentication(
                api_key=endpoint_pb2.ApiKeyAuthentication(
                    header_name="X-Api-Key", header_value="k" * 32
                )
            ),
        )
    )


def _shown(text: str) -> list[str]:
    return [v for v in (BEARER, X_AUTH, COOKIE, "k" * 32, "sk_live_") if v in text]


async def test_endpoint_reads_redact_credential_headers(client: Client) -> None:
    created = await _endpoint(client, "http://hooks.invalid/x")
    for ep in (
        created,
        await client.get_endpoint(created.id),
        (await client.list_endpoints(owner_id="acme")).endpoints[0],
    ):
        assert ep.headers["Authorization"] == REDACTED
        assert ep.headers["X-Forward"] == REDACTED  # a Bearer value, whatever the name
        assert ep.headers["X-Tenant"] == "acme-1"
        assert ep.authentication.api_key.header_value == "********"


async def test_update_with_redacted_value_keeps_the_stored_one(
    client: Client, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    hook = await receivers()
    ep = await client.get_endpoint((await _endpoint(client, hook.url)).id)
    # Read, modify, write back: the redacted values go back as they were read.
    ep.headers["X-Tenant"] = "acme-2"
    updated = await client.update_endpoint(ep, ["headers"])
    assert updated.headers["Authorization"] == REDACTED
    assert updated.headers["X-Tenant"] == "acme-2"
    await client.create_event(endpoint_ids=[ep.id], event_type="t", data={})
    (received,) = await hook.wait_for(1)
    assert received.headers["Authorization"] == BEARER
    assert received.headers["X-Forward"] == BEARER
    assert received.headers["X-Tenant"] == "acme-2"
    assert received.headers["X-Api-Key"] == "k" * 32
    # The masked api key sent back with the same header keeps the stored key.
    ep.name = "renamed"
    assert ep.authentication.api_key.header_value == "********"
    await client.update_endpoint(ep, ["name", "authentication"])
    await client.create_event(endpoint_ids=[ep.id], event_type="t", data={})
    assert (await hook.wait_for(2))[1].headers["X-Api-Key"] == "k" * 32
    # ... but a new header name needs the real value.
    ep.authentication.api_key.header_name = "X-Other-Key"
    with pytest.raises(InvalidArgumentError):
        await client.update_endpoint(ep, ["authentication"])
    # The placeholder for a header the endpoint does not have: refused, naming the header.
    ep.headers["X-New-Token"] = REDACTED
    with pytest.raises(InvalidArgumentError) as info:
        await client.update_endpoint(ep, ["headers"])
    assert [f for f, _ in info.value.field_violations] == ["headers['X-New-Token']"]
    with pytest.raises(InvalidArgumentError):
        await client.create_endpoint(
            endpoint_pb2.Endpoint(url="http://hooks.invalid/y", headers={"X-Key": "********"})
        )


async def test_events_and_attempts_redact_in_api_and_portal(
    delivering: tuple[App, Running],
    client: Client,
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    _, running = delivering
    hook = await receivers()
    hook.headers = {"Set-Cookie": COOKIE, "X-Plain": "visible"}
    ep = await _endpoint(client, hook.url)
    event = await client.create_event(
        endpoint_ids=[ep.id],
        event_type="t",
        data={},
        headers={"X-Auth": X_AUTH, "X-Trace": "trace-1"},
    )
    assert event.headers["X-Auth"] == REDACTED
    await hook.wait_for(1)
    got = await client.get_event(event.id)
    listed = (await client.list_events()).events[0]
    for e in (got, listed):
        assert dict(e.headers) == {"X-Auth": REDACTED, "X-Trace": "trace-1"}
    delivery = (await client.list_deliveries(event_id=event.id)).deliveries[0]

    async def attempted() -> bool:
        return bool((await client.list_delivery_attempts(delivery.id)).attempts)

    await eventually(attempted)
    (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    request = {h.name: h.value for h in attempt.request_headers}
    response = {h.name: h.value for h in attempt.response_headers}
    assert request["X-Auth"] == request["Authorization"] == request["X-Api-Key"] == REDACTED
    assert request["X-Trace"] == "trace-1"
    assert response["Set-Cookie"] == REDACTED and response["X-Plain"] == "visible"
    assert not _shown(str(attempt) + str(got) + str(listed))

    link = await client.create_portal_link(owner_id="acme")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(link.url) as opened:
            assert opened.status == 200
        pages = []
        for path in (f"/portal/events/{event.id}", f"/portal/deliveries/{delivery.id}"):
            async with browser.get(running.http_url + path) as page:
                assert page.status == 200, path
                pages.append(await page.text())
        for path in (f"/portal/endpoints/{ep.id}",):
            async with browser.get(running.http_url + path) as page:
                pages.append(await page.text())
    text = "\n".join(pages)
    assert "trace-1" in text and "visible" in text  # the pages do show headers
    assert re.search(r"X-Auth.*?\[redacted\]", text, re.S)
    assert not _shown(text)
