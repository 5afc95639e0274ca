"""The portal shows deeply nested JSON as text instead of failing with a 500 (hardening item 5)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from convoyd.app import App
from convoyd.client import Client
from convoyd.portal.pages import body_text
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.conftest import Running
from tests.portal.test_portal_pages import Browser
from tests.receivers import eventually

DEEP = b"[" * 5000 + b"]" * 5000  # 10 KB: fits the 16 KiB of response body the log keeps


@pytest.mark.parametrize(
    "data",
    [
        DEEP,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b"[" * 100_000,  # not even JSON
        b"[" * 980 + b"]" * 980,  # just under the recursion limit, above it once indented
    ],
)
def test_deep_bodies_are_shown_as_they_came(data: bytes) -> None:
    assert body_text(data) == data.decode()


def test_shallow_json_is_still_pretty_printed() -> None:
    assert body_text(b'{"a":[1]}') == '{\n  "a": [\n    1\n  ]\n}'


@pytest.fixture
async def deep_receiver() -> AsyncIterator[str]:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=DEEP, content_type="application/json")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}/hook"
    await server.close()


async def test_a_deeply_nested_response_and_page_token_render(
    delivering: tuple[App, Running], client: Client, deep_receiver: str
) -> None:
    _, running = delivering
    made = await client.create_endpoint(endpoint_pb2.Endpoint(url=deep_receiver, owner_id="acme"))
    event = await client.create_event(endpoint_ids=[made.id], event_type="a", data={"x": 1})
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

    async def succeeded() -> bool:
        got = await client.get_delivery(delivery.id)
        return got.status == delivery_pb2.DELIVERY_STATUS_SUCCESS

    await eventually(succeeded)
    link = await client.create_portal_link(owner_id="acme")
    browser = Browser(running.http_url)
    try:
        assert (await browser.open(link.url)).status == 200
        status, text = await browser.get(f"/portal/deliveries/{delivery.id}")
        assert status == 200, text[:300]
        assert "[[[[" in text
        token = base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode().rstrip("=")
        for path in (f"/portal/?page={token}", f"/portal/deliveries?page={token}"):
            status, text = await browser.get(path)
            assert status in (200, 400), (path, status, text[:300])
            assert "Something went wrong" not in text
        status, _ = await browser.get(f"/portal/events/{event.id}")
        assert status == 200
    finally:
        await browser.close()
