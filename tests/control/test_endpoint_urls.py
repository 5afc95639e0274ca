"""Every URL spelling CreateEndpoint accepts is delivered to; the rest are refused up front.

Hardening item 9: aiohttp (over yarl) refuses non-canonical IPv4 forms ("127.0.0.1.",
"2130706433", "127.1"...) and cannot connect to IPv6 zone ids, so every attempt to such a URL
failed. The daemon here allows 127.0.0.0/8 and ::1; the receivers listen on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from convoyd.app import App
from convoyd.client import Client, ConvoydClientError
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.conftest import Running
from tests.receivers import eventually


class Hosts:
    """One receiver on 127.0.0.1 and one on ::1, counting the requests for each path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.servers: list[TestServer] = []

    async def start(self) -> Hosts:
        async def hook(request: web.Request) -> web.Response:
            await request.read()
            self.paths.append(request.path)
            return web.Response(text="ok")

        for host in ("127.0.0.1", "::1"):
            app = web.Application()
            app.router.add_post("/{tail:.*}", hook)
            server = TestServer(app, host=host, port=0)
            await server.start_server()
            self.servers.append(server)
        return self

    @property
    def v4(self) -> int:
        return self.servers[0].port or 0

    @property
    def v6(self) -> int:
        return self.servers[1].port or 0

    async def close(self) -> None:
        for server in self.servers:
            await server.close()


@pytest.fixture
async def hosts() -> AsyncIterator[Hosts]:
    made = await Hosts().start()
    yield made
    await made.close()


# "localhost" in fullwidth letters: IDNA maps it to plain ASCII, as yarl does.
FULLWIDTH_LOCALHOST = "".join(chr(ord(c) + 0xFEE0) for c in "localhost")
# Spellings of the loopback receivers that the HTTP client really reaches.
DELIVERED = [
    "http://127.0.0.1:{v4}/plain",
    "HTTP://127.0.0.1:{v4}/upper-scheme",
    "http://localhost:{v4}/name",
    "http://LocalHost:{v4}/name-case",
    "http://127.0.0.1:0{v4}/port-leading-zero",
    "http://[::1]:{v6}/v6",
    "http://[0:0:0:0:0:0:0:1]:{v6}/v6-long",
    "http://[::ffff:127.0.0.1]:{v4}/v4-mapped",
    "http://" + FULLWIDTH_LOCALHOST + ":{v4}/idna-fullwidth",
    "http://127.0.0.1:{v4}/caf%C3%A9?q=%zz",
]
# Spellings every attempt fails on: refused by CreateEndpoint and UpdateEndpoint, so no
# event is ever sent to them. Each names loopback (legacy IPv4 forms of 127.0.0.1) or nothing.
REFUSED = [
    "http://127.0.0.1.:{v4}/trailing-dot",
    "http://127.0.0.1..:{v4}/two-dots",
    "http://2130706433:{v4}/decimal",
    "http://127.1:{v4}/short",
    "http://127.0.1:{v4}/short3",
    "http://0x7f.0.0.1:{v4}/hex-part",
    "http://0x7f000001:{v4}/hex",
    "http://0177.0.0.1:{v4}/octal",
    "http://127.000.000.001:{v4}/zero-padded",
    "http://127.0.0.256:{v4}/out-of-range",
    "http://127.0.0.1.5:{v4}/five-parts",
    "http://localhost.:{v4}/name-trailing-dot",
    "http://a..localhost:{v4}/empty-label",
    "http://xn--:{v4}/bad-punycode",
    "http://%6cocalhost:{v4}/percent",
    "http://[::1%25lo]:{v6}/zone",
    "http://[v1.x]:{v6}/ipvfuture",
    "http://[127.0.0.1]:{v4}/bracketed-v4",
    "http://u@127.0.0.1:{v4}/userinfo",
    "http://:{v4}/empty-host",
    "http://127.0.0.1:0/port-0",
    "http://127.0.0.1:65536/port-too-big",
    "http://127.0.0.1:+{v4}/port-sign",
    "http://127.0.0.1:{v4}{v4}/port-huge",
]


async def test_accepted_urls_are_delivered_and_the_others_refused(
    delivering: tuple[App, Running], client: Client, hosts: Hosts
) -> None:
    for template in DELIVERED:
        url = template.format(v4=hosts.v4, v6=hosts.v6)
        made = await client.create_endpoint(endpoint_pb2.Endpoint(url=url))
        event = await client.create_event(endpoint_ids=[made.id], event_type="a", data={})
        (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

        async def delivered(delivery_id: str = delivery.id, url: str = url) -> bool:
            got = await client.get_delivery(delivery_id)
            assert got.status != delivery_pb2.DELIVERY_STATUS_RETRY, (url, got.status_reason)
            return got.status == delivery_pb2.DELIVERY_STATUS_SUCCESS

        await eventually(delivered)
    assert len(hosts.paths) == len(DELIVERED)

    existing = await client.create_endpoint(
        endpoint_pb2.Endpoint(url=f"http://127.0.0.1:{hosts.v4}/x")
    )
    for template in REFUSED:
        url = template.format(v4=hosts.v4, v6=hosts.v6)
        with pytest.raises(ConvoydClientError) as caught:
            await client.create_endpoint(endpoint_pb2.Endpoint(url=url))
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, url
        assert "url" in dict(caught.value.field_violations), url
        with pytest.raises(ConvoydClientError) as caught:
            await client.update_endpoint(endpoint_pb2.Endpoint(id=existing.id, url=url), ["url"])
        assert "url" in dict(caught.value.field_violations), url
