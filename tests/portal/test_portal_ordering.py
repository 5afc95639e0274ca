"""The portal and FIFO endpoints, against the real App: the ordering select of the endpoint
form, and the details page saying what a FIFO endpoint's queue waits behind."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from convoyd.client import Client
from convoyd.v1 import endpoint_pb2
from tests.conftest import Running
from tests.portal.test_portal_pages import Browser

pytestmark = pytest.mark.both_stores


@pytest.fixture
async def client(app: Running) -> AsyncIterator[Client]:
    async with Client(app.grpc_target, token=app.token) as c:
        yield c


@pytest.fixture
async def browser(app: Running, client: Client) -> AsyncIterator[Browser]:
    link = await client.create_portal_link(owner_id="acme", can_manage_endpoints=True)
    opened = Browser(app.http_url)
    response = await opened.open(link.url)
    assert response.status == 200, await response.text()
    yield opened
    await opened.close()


def text_of(html: str) -> str:
    """The page as read: tags dropped, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def selected_ordering(html: str) -> str:
    select = re.search(r'<select id="f-ordering" name="ordering">(.*?)</select>', html)
    assert select is not None, "no ordering select on the form"
    chosen = re.findall(r'<option value="([^"]+)" selected>', select[1])
    assert len(chosen) == 1, select[1]
    return chosen[0]


async def test_the_form_sets_and_shows_the_ordering(browser: Browser, client: Client) -> None:
    status, form = await browser.get("/portal/endpoints/new")
    assert status == 200 and selected_ordering(form) == "concurrent"
    _, text = await browser.submit(
        "/portal/endpoints/new",
        {"url": "https://hooks.invalid/in", "name": "in-order", "ordering": "fifo"},
    )
    assert "Endpoint created" in text
    (created,) = (await client.list_endpoints(owner_id="acme")).endpoints
    assert created.ordering == endpoint_pb2.ORDERING_FIFO

    base = f"/portal/endpoints/{created.id}"
    _, edit = await browser.get(f"{base}/edit")
    assert selected_ordering(edit) == "fifo"
    status, _ = await browser.post(
        f"{base}/edit", {"url": "https://hooks.invalid/in", "name": "in-order", "ordering": "x"}
    )
    assert status == 400
    assert (await client.get_endpoint(created.id)).ordering == endpoint_pb2.ORDERING_FIFO
    status, _ = await browser.post(
        f"{base}/edit",
        {"url": "https://hooks.invalid/in", "name": "in-order", "ordering": "concurrent"},
    )
    assert status == 303
    assert (await client.get_endpoint(created.id)).ordering == endpoint_pb2.ORDERING_UNSPECIFIED
    _, page = await browser.get(base)
    assert "Ordering concurrent" in text_of(page)


async def test_the_details_page_says_what_a_fifo_endpoint_waits_behind(
    browser: Browser, client: Client
) -> None:
    # Nothing answers at .invalid: the deliveries stay pending (retrying) during the test.
    fifo = await client.create_endpoint(
        endpoint_pb2.Endpoint(
            url="https://hooks.invalid/in", owner_id="acme", ordering=endpoint_pb2.ORDERING_FIFO
        )
    )
    base = f"/portal/endpoints/{fifo.id}"
    _, idle = await browser.get(base)
    assert "waiting behind" not in idle and "FIFO" in text_of(idle)

    heads = []
    for n in range(13):
        event = await client.create_event(
            endpoint_ids=[fifo.id], event_type="order.paid", data={"n": n}
        )
        heads.append((await client.list_deliveries(event_id=event.id)).deliveries[0].id)
    status, page = await browser.get(base)
    assert status == 200
    assert f"FIFO: 12 deliveries waiting behind {heads[0]}" in text_of(page)
    assert f'href="/portal/deliveries/{heads[0]}"' in page
