"""The portal's live update streams (SSE) against the real App on loopback: what arrives, for
whom, within which filters, and when a stream ends or is refused."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from convoyd.app import App
from convoyd.client import Client
from convoyd.portal import live
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.conftest import LOOPBACK_ALLOWED, Running, loopback_settings
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.both_stores

WITHIN = 10.0  # seconds any expected message or end of a stream may take


class Stream:
    """One open text/event-stream response, read message by message."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.retry: int | None = None
        self.comments: list[str] = []

    async def _event(self, within: float) -> dict[str, str] | None:
        """The next event's fields (None at the end of the stream); comments are kept."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return None
                line = raw.decode().rstrip("\n")
                if not line:
                    if fields:
                        return fields
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry = int(value)
                elif name == "data":
                    fields["data"] = fields.get("data", "") + value

    async def message(self, within: float = WITHIN) -> dict[str, Any]:
        event = await self._event(within)
        assert event is not None, "the stream ended before a message arrived"
        found: dict[str, Any] = json.loads(event["data"])
        return found

    async def ends(self, within: float = WITHIN) -> None:
        """Fails unless the stream ends within ``within`` seconds without another message."""
        event = await self._event(within)
        assert event is None, f"a message arrived instead of the end: {event}"

    def close(self) -> None:
        self.response.close()


class Portal:
    """A browser's cookies and form token, opened with one portal link."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.streams: list[Stream] = []

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            text = await response.text()
            found = re.search(r'name="csrf" value="([^"]+)"', text)
            if found:
                self.csrf = found[1]
            return response.status, text

    async def post(self, path: str) -> int:
        async with self.session.post(
            self.base + path, data={"csrf": self.csrf}, allow_redirects=False
        ) as response:
            return response.status

    async def stream(self, path: str) -> Stream:
        """An open stream (asserted 200 and text/event-stream) with its first lines read."""
        response = await self.session.get(self.base + path, allow_redirects=False)
        if response.status != 200:
            text = await response.text()
            response.close()
            raise AssertionError(f"{path}: {response.status} {text[:300]}")
        assert response.content_type == "text/event-stream"
        opened = Stream(response)
        self.streams.append(opened)
        async with asyncio.timeout(WITHIN):
            while opened.retry is None:  # the retry: field and a comment open every stream
                line = (await response.content.readline()).decode().strip()
                assert line, "the stream ended at once"
                if line.startswith("retry:"):
                    opened.retry = int(line.partition(":")[2])
        return opened

    async def refused(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def close(self) -> None:
        for opened in self.streams:
            opened.close()
        await self.session.close()


@dataclass
class World:
    app: App
    running: Running
    client: Client
    hook: Receiver
    acme: list[endpoint_pb2.Endpoint]
    other: endpoint_pb2.Endpoint
    portals: list[Portal] = field(default_factory=list)

    async def portal(self, **link_args: Any) -> tuple[Portal, str]:
        """A signed-in portal and its link's id."""
        link = await self.client.create_portal_link(**link_args)
        opened = Portal(self.running.http_url)
        self.portals.append(opened)
        async with opened.session.get(link.url) as response:
            assert response.status == 200, await response.text()
        await opened.get("/portal/")
        return opened, link.id

    async def send(self, endpoint: endpoint_pb2.Endpoint, event_type: str = "order.created") -> str:
        """One event to ``endpoint``; its delivery's id."""
        event = await self.client.create_event(
            endpoint_ids=[endpoint.id], event_type=event_type, data={"n": 1}
        )
        (made,) = (await self.client.list_deliveries(event_id=event.id)).deliveries
        return made.id

    async def delivered(self, delivery_id: str) -> None:
        """Waits until the delivery's first attempt is recorded (its change is committed)."""

        async def done() -> bool:
            got = await self.client.get_delivery(delivery_id)
            return got.attempt_count >= 1 and got.status != delivery_pb2.DELIVERY_STATUS_RETRY

        await eventually(done)


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
    made = World(app, running, client, hook, acme, other)
    yield made
    for opened in made.portals:
        await opened.close()


def streams_of(app: App) -> live.Streams:
    """The portal's stream registry, found through aiohttp's public sub-app info."""
    assert app.http_runner is not None
    for resource in app.http_runner.app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            return resource.get_info()["app"][live.STREAMS]
    raise AssertionError("no portal sub-application")


async def test_a_change_of_the_owners_delivery_arrives_and_no_one_elses(world: World) -> None:
    portal, _ = await world.portal(owner_id="acme")
    async with portal.session.get(world.running.http_url + "/portal/stream/deliveries") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Accel-Buffering"] == "no"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    stream = await portal.stream("/portal/stream/deliveries")
    assert stream.retry == 3000
    # The other owner's delivery is committed first: in commit order, the first message
    # could only be it if the stream let it through.
    theirs = await world.send(world.other)
    await world.delivered(theirs)
    mine = await world.send(world.acme[1])
    got = await stream.message()
    assert got["delivery_id"] == mine and got["delivery_id"] != theirs
    assert got["status"] == "success" and got["endpoint_id"] == world.acme[1].id
    assert got["attempt_count"] == 1 and got["last_http_status"] == 200

    # The operator's scope sees both owners.
    operator, _ = await world.portal(all_owners=True)
    everything = await operator.stream("/portal/stream/deliveries")
    theirs = await world.send(world.other)
    assert (await everything.message())["delivery_id"] == theirs


async def test_a_list_of_endpoints_sees_only_its_endpoints(world: World) -> None:
    portal, _ = await world.portal(endpoint_ids=[world.acme[1].id])
    stream = await portal.stream("/portal/stream/deliveries")
    await world.delivered(await world.send(world.acme[0]))
    await world.delivered(await world.send(world.other))
    mine = await world.send(world.acme[1])
    assert (await stream.message())["delivery_id"] == mine


async def test_the_pages_filters_apply_to_the_stream(
    world: World, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    streams_of(world.app).limits = live.StreamLimits(keepalive=0.2)
    portal, _ = await world.portal(owner_id="acme")
    first, second = world.acme
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    path = "/portal/stream/deliveries"
    by_endpoint = await portal.stream(f"{path}?endpoint={second.id}")
    by_type = await portal.stream(f"{path}?event_type=invoice.paid")
    by_status = await portal.stream(f"{path}?status=failure&endpoint=")
    by_since = await portal.stream(f"{path}?since={hour_ago}&event_type=invoice.paid")
    second_tab, _ = await world.portal(owner_id="acme")  # four streams a session at most
    by_until = await second_tab.stream(f"{path}?until=2001-01-01T00:00")
    # Each stream is in commit order: a first message of the later delivery shows that the
    # earlier one, outside the filter, was held back.
    await world.delivered(await world.send(first))
    wanted = await world.send(second, "invoice.paid")
    for stream in (by_endpoint, by_type, by_since):
        assert (await stream.message())["delivery_id"] == wanted

    broken = await receivers(default_status=500)
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 0
    failing = await world.client.create_endpoint(
        endpoint_pb2.Endpoint(url=broken.url, owner_id="acme", name="acme-x", retry_policy=policy)
    )
    failed = await world.send(failing)
    got = await by_status.message()
    assert got["delivery_id"] == failed and got["status"] == "failure"

    # Nothing is created before 2001: every change so far was committed before the others
    # streams got theirs, and two keepalives later this one still has no message.
    async with asyncio.timeout(WITHIN):
        while by_until.comments.count("keepalive") < 2:
            await _one_line(by_until)


async def test_filters_the_page_refuses_are_refused(world: World) -> None:
    portal, _ = await world.portal(owner_id="acme")
    status, text = await portal.refused(f"/portal/stream/deliveries?endpoint={world.other.id}")
    assert status == 404 and "other-0" not in text
    status, text = await portal.refused("/portal/stream/deliveries?since=yesterday")
    assert status == 400 and "since" in text
    status, _ = await portal.refused("/portal/stream/deliveries?status=lost")
    assert status == 400


async def test_a_deliverys_stream_follows_that_delivery(world: World) -> None:
    portal, _ = await world.portal(owner_id="acme")
    policy = endpoint_pb2.RetryPolicy()
    policy.linear.max_retries = 0  # one attempt, then FAILURE
    flaky = await world.client.create_endpoint(
        endpoint_pb2.Endpoint(url=world.hook.url, owner_id="acme", retry_policy=policy)
    )
    world.hook.script = [500]
    world.hook.hang = asyncio.Event()  # the attempt waits until the stream is open
    watched = await world.send(flaky)
    stream = await portal.stream(f"/portal/stream/deliveries/{watched}")
    world.hook.hang.set()
    got = await stream.message()
    assert got["delivery_id"] == watched and got["status"] == "failure"
    assert got["last_http_status"] == 500
    # Another delivery of the same endpoint is not on this stream; the retry is.
    await world.send(flaky)
    await world.client.retry_delivery(watched)
    seen = [await stream.message()]
    while seen[-1]["status"] != "success":
        seen.append(await stream.message())
    assert {m["delivery_id"] for m in seen} == {watched}
    assert seen[0]["status"] in ("scheduled", "success") and seen[-1]["attempt_count"] == 2

    theirs = await world.send(world.other)
    status, text = await portal.refused(f"/portal/stream/deliveries/{theirs}")
    assert status == 404 and theirs not in text
    assert (await portal.refused("/portal/stream/deliveries/dl_nope"))[0] == 404


async def test_an_ended_session_ends_its_stream(world: World) -> None:
    signed_out, _ = await world.portal(owner_id="acme")
    revoked, link_id = await world.portal(owner_id="acme")
    quiet, quiet_link = await world.portal(owner_id="acme")
    leaving = await signed_out.stream("/portal/stream/deliveries")
    cut = await revoked.stream("/portal/stream/deliveries")
    assert await signed_out.post("/portal/logout") in (200, 303)
    await world.client.revoke_portal_link(link_id)
    # The next change is checked against the session before it is sent: neither gets it.
    await world.send(world.acme[0])
    await leaving.ends()
    await cut.ends()
    assert (await signed_out.refused("/portal/stream/deliveries"))[0] == 403
    assert (await revoked.refused("/portal/stream/deliveries"))[0] == 403

    # Without any change, the keepalive checks the session too.
    streams_of(world.app).limits = live.StreamLimits(keepalive=0.2)
    idle = await quiet.stream("/portal/stream/deliveries")
    async with asyncio.timeout(WITHIN):
        while "keepalive" not in idle.comments:
            await _one_line(idle)
    await world.client.revoke_portal_link(quiet_link)
    await idle.ends()


async def _one_line(stream: Stream) -> None:
    """Reads one line: a comment is kept, a message fails the test."""
    line = (await stream.response.content.readline()).decode()
    assert line, "the stream ended"
    assert not line.startswith("data:"), f"a message arrived: {line}"
    if line.startswith(":"):
        stream.comments.append(line[1:].strip())


async def test_streams_are_bounded_per_session_and_in_total(world: World) -> None:
    portal, _ = await world.portal(owner_id="acme")
    path = "/portal/stream/deliveries"
    held = [await portal.stream(path) for _ in range(4)]
    status, text = await portal.refused(path)
    assert status == 429 and "4 live update streams" in text
    held[0].close()

    async def admitted_again() -> bool:  # the server notices the closed stream within ~1 s
        return streams_of(world.app).open == 3

    await eventually(admitted_again)
    held[0] = await portal.stream(path)

    streams_of(world.app).limits = live.StreamLimits(per_session=4, total=5)
    other, _ = await world.portal(owner_id="acme")
    await other.stream(path)
    status, text = await other.refused(path)
    assert status == 429 and "the most live update streams it allows (5)" in text
    # Refused streams take no slot; the open ones still work.
    mine = await world.send(world.acme[0])
    assert (await held[3].message())["delivery_id"] == mine


async def test_streams_are_get_only(world: World) -> None:
    portal, _ = await world.portal(owner_id="acme")
    url = world.running.http_url + "/portal/stream/deliveries"
    async with portal.session.head(url) as response:
        assert response.status == 405
    assert await portal.post("/portal/stream/deliveries") == 405
    async with aiohttp.ClientSession() as stranger, stranger.get(url) as response:
        assert response.status == 403  # no session: the portal's "session ended" page


async def test_shutdown_ends_open_streams_at_once(
    tmp_path: Path, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    app = App(loopback_settings(tmp_path / "data", delivery=LOOPBACK_ALLOWED))
    await app.start()
    stopped = False
    try:
        running_url = f"http://{app.http_address}"
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        async with Client(app.grpc_address, token=token) as client:
            hook = await receivers()
            await client.create_endpoint(endpoint_pb2.Endpoint(url=hook.url, owner_id="acme"))
            link = await client.create_portal_link(owner_id="acme")
        portal = Portal(running_url)
        try:
            async with portal.session.get(link.url) as response:
                assert response.status == 200
            streams = [await portal.stream("/portal/stream/deliveries") for _ in range(2)]
            loop = asyncio.get_running_loop()
            began = loop.time()
            await app.stop()
            stopped = True
            took = loop.time() - began
            for stream in streams:
                await stream.ends(within=1.0)
            # Nothing waits on the streams: stopping takes what it takes without them.
            assert took < app.settings.shutdown_grace + 2.0, took
        finally:
            await portal.close()
    finally:
        if not stopped:
            await app.stop()


async def test_the_portals_shutdown_hook_ends_streams_and_refuses_new_ones(world: World) -> None:
    """What aiohttp's on_shutdown does before it waits on handlers: streams opened during the
    drain (after the watch feed closed) end too, and none opens after."""
    portal, _ = await world.portal(owner_id="acme")
    stream = await portal.stream("/portal/stream/deliveries")
    await streams_of(world.app).close()
    await stream.ends(within=2.0)
    status, text = await portal.refused("/portal/stream/deliveries")
    assert status == 503 and "shutting down" in text
    assert (await portal.get("/portal/deliveries"))[0] == 200  # the pages still work
