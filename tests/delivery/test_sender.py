"""The sender against real receivers on loopback: answers, failures, limits and the SSRF guard.

All traffic stays on 127.0.0.1 / ::1. Blocking is shown with loopback addresses that are not
allow-listed (and names that resolve to loopback), so a refused request could not have left the
machine anyway; the receiver proves it was never reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from convoyd.core.addresses import parse_allow_list
from convoyd.core.outcome import ErrorKind
from convoyd.delivery.fake import FakeSender, answer, failure
from convoyd.delivery.guard import AddressGuard, BlockedAddressError, GuardedResolver
from convoyd.delivery.sender import AttemptReport, OutboundRequest, Sender

LOOPBACK = ("127.0.0.0/8", "::1/128")
USER_AGENT = "convoyd-test/0"
SECRET = "whsec_do-not-leak"
BIG = 10 * 1024 * 1024


@dataclass
class Seen:
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    client_port: int


@dataclass
class Receiver:
    """A webhook receiver: records every request it gets."""

    host: str
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first request

    def url(self, path: str = "/ok", scheme: str = "http") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def app(self) -> web.Application:
        async def record(request: web.Request) -> None:
            body = await request.read()
            assert request.transport is not None
            port = request.transport.get_extra_info("peername")[1]
            self.seen.append(Seen(request.path, list(request.headers.items()), body, port))
            self.arrived.set()

        async def ok(request: web.Request) -> web.Response:
            await record(request)
            return web.Response(body=b"thanks", headers={"X-Receiver": "yes"})

        async def status(request: web.Request) -> web.Response:
            await record(request)
            code = int(request.match_info["code"])
            headers = {"Retry-After": "7"} if code in (429, 503) else {}
            return web.Response(status=code, body=b"boom", headers=headers)

        async def redirect(request: web.Request) -> web.Response:
            await record(request)
            return web.Response(status=302, headers={"Location": self.url("/target")})

        async def hang(request: web.Request) -> web.Response:
            await record(request)
            await self.release.wait()
            return web.Response(body=b"late")

        async def big(request: web.Request) -> web.Response:
            await record(request)
            return web.Response(body=b"x" * BIG)

        async def drip(request: web.Request) -> web.StreamResponse:
            await record(request)
            response = web.StreamResponse()
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                while not self.release.is_set():
                    await response.write(b".")
                    await asyncio.sleep(0.02)
            return response

        app = web.Application()
        app.router.add_post("/ok", ok)
        app.router.add_post("/status/{code}", status)
        app.router.add_post("/redirect", redirect)
        app.router.add_route("*", "/target", ok)
        app.router.add_post("/hang", hang)
        app.router.add_post("/big", big)
        app.router.add_post("/drip", drip)
        return app


@contextlib.asynccontextmanager
async def serve(host: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(host)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        receiver.port = runner.addresses[0][1]
        yield receiver
    finally:
        receiver.release.set()  # let parked handlers finish so cleanup does not wait for them
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve("127.0.0.1") as r:
        yield r


@pytest.fixture
async def receiver6() -> AsyncIterator[Receiver]:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with serve("::1") as r:
        yield r


@contextlib.asynccontextmanager
async def started(
    *, allow_cidrs: tuple[str, ...] = (), body_limit: int = 16384
) -> AsyncIterator[Sender]:
    sender = Sender(user_agent=USER_AGENT, allow_cidrs=allow_cidrs, body_limit=body_limit)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.close()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    """Loopback allow-listed, as tests and development set it up."""
    async with started(allow_cidrs=LOOPBACK) as s:
        yield s


@pytest.fixture
async def guarded() -> AsyncIterator[Sender]:
    """The production default: no allow-list."""
    async with started() as s:
        yield s


def post(
    url: str, *, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"{}"
) -> OutboundRequest:
    return OutboundRequest(url=url, headers=headers, body=body, timeout=5.0)


def quick(url: str, timeout: float = 0.3) -> OutboundRequest:
    # A secret header on every failing request: no error text may repeat it.
    return OutboundRequest(url, (("Authorization", f"Bearer {SECRET}"),), b"{}", timeout)


# --- answers -------------------------------------------------------------------------------------


async def test_200_reports_status_body_headers_and_peer(sender: Sender, receiver: Receiver) -> None:
    report = await sender.send(post(receiver.url()))
    assert report.status == 200
    assert report.body == b"thanks"
    assert not report.truncated
    assert report.error_kind is ErrorKind.NONE
    assert report.error == ""
    assert report.remote_address == "127.0.0.1"
    assert ("X-Receiver", "yes") in report.headers
    assert report.retry_after is None
    assert 0 < report.duration < 2


async def test_exact_body_and_headers_reach_the_receiver(
    sender: Sender, receiver: Receiver
) -> None:
    body = b'\x00\xff{"type":"invoice.paid"}\r\n'
    headers = (
        ("User-Agent", "hooks/2"),
        ("Content-Type", "application/json"),
        ("webhook-id", "msg_1"),
        ("webhook-signature", "v1,abc v1,def"),
        ("X-Dup", "a"),
        ("X-Dup", "b"),
    )
    await sender.send(post(receiver.url(), headers=headers, body=body))
    [seen] = receiver.seen
    assert seen.body == body
    expected = [
        *headers,
        ("Host", f"127.0.0.1:{receiver.port}"),
        ("Content-Length", str(len(body))),
    ]
    # Nothing of aiohttp's own: no Accept, Accept-Encoding, second User-Agent or Content-Type.
    assert sorted(seen.headers) == sorted(expected)


async def test_configured_user_agent_when_the_request_has_none(
    sender: Sender, receiver: Receiver
) -> None:
    await sender.send(post(receiver.url(), body=b"x"))
    [seen] = receiver.seen
    assert sorted(seen.headers) == sorted(
        [
            ("Host", f"127.0.0.1:{receiver.port}"),
            ("User-Agent", USER_AGENT),
            ("Content-Length", "1"),
        ]
    )


async def test_500_is_a_status(sender: Sender, receiver: Receiver) -> None:
    report = await sender.send(post(receiver.url("/status/500")))
    assert (report.status, report.body, report.error_kind) == (500, b"boom", ErrorKind.NONE)


async def test_retry_after_is_reported_raw(sender: Sender, receiver: Receiver) -> None:
    report = await sender.send(post(receiver.url("/status/503")))
    assert report.status == 503
    assert report.retry_after == "7"


async def test_redirect_is_a_status_and_is_not_followed(sender: Sender, receiver: Receiver) -> None:
    report = await sender.send(post(receiver.url("/redirect")))
    assert report.status == 302
    assert ("Location", receiver.url("/target")) in report.headers
    assert report.error_kind is ErrorKind.NONE
    await asyncio.sleep(0.05)
    assert receiver.paths() == ["/redirect"]  # the target got no hit


async def test_connections_are_reused(sender: Sender, receiver: Receiver) -> None:
    for _ in range(5):
        assert (await sender.send(post(receiver.url()))).status == 200
    # Sequential sends on an idle pool share one keep-alive connection: one client port.
    assert len({seen.client_port for seen in receiver.seen}) == 1


# --- body limit --------------------------------------------------------------------------------


async def test_a_huge_body_is_truncated_at_the_limit_and_reported_quickly(
    sender: Sender, receiver: Receiver
) -> None:
    report = await sender.send(post(receiver.url("/big")))
    assert report.status == 200
    assert report.truncated
    assert report.body == b"x" * 16384
    assert report.error_kind is ErrorKind.NONE
    assert report.duration < 1.0
    # The cut connection is not reused; the next send works.
    assert (await sender.send(post(receiver.url()))).status == 200


@pytest.mark.parametrize(
    ("limit", "body", "truncated"), [(6, b"thanks", False), (5, b"thank", True)]
)
async def test_body_limit_edges(
    receiver: Receiver, limit: int, body: bytes, truncated: bool
) -> None:
    async with started(allow_cidrs=LOOPBACK, body_limit=limit) as sender:
        report = await sender.send(post(receiver.url()))
    assert (report.body, report.truncated) == (body, truncated)


async def test_a_request_may_bring_a_body_limit_of_its_own(
    sender: Sender, receiver: Receiver
) -> None:
    # A token request reads up to its own cap, larger or smaller than the attempt log's.
    big = await sender.send(OutboundRequest(receiver.url("/big"), (), b"{}", 5.0, body_limit=20000))
    assert (len(big.body), big.truncated) == (20000, True)
    small = await sender.send(OutboundRequest(receiver.url(), (), b"{}", 5.0, body_limit=5))
    assert (small.body, small.truncated) == (b"thank", True)
    assert (await sender.send(post(receiver.url("/big")))).body == b"x" * 16384


# --- timeouts ----------------------------------------------------------------------------------


async def test_a_receiver_that_does_not_answer_times_out(
    sender: Sender, receiver: Receiver
) -> None:
    report = await sender.send(quick(receiver.url("/hang")))
    assert report.error_kind is ErrorKind.TIMEOUT
    assert report.error == "timed out after 0.3s"
    assert report.status is None
    assert 0.25 < report.duration < 2


async def test_a_body_dripping_past_the_timeout_times_out(
    sender: Sender, receiver: Receiver
) -> None:
    report = await sender.send(quick(receiver.url("/drip")))
    assert report.error_kind is ErrorKind.TIMEOUT
    assert report.error == "timed out after 0.3s"
    assert report.status == 200  # the headers arrived; the body did not finish in time
    assert report.remote_address == "127.0.0.1"
    assert 0.25 < report.duration < 2


# --- network failures --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HELLO\r\n\r\n")
    await writer.drain()
    writer.close()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # linger 0: the close sends RST


def assert_network(report: AttemptReport, text: str) -> None:
    assert report.error_kind is ErrorKind.NETWORK
    assert report.error.startswith(text), report.error
    assert report.status is None
    assert SECRET not in report.error


async def test_connection_refused(sender: Sender) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = await sender.send(quick(f"http://127.0.0.1:{port}/", timeout=2))
    assert_network(report, "connection refused")
    assert report.remote_address == ""


async def test_garbage_instead_of_http(sender: Sender) -> None:
    async with raw_server(garbage) as port:
        report = await sender.send(quick(f"http://127.0.0.1:{port}/", timeout=2))
    assert_network(report, "invalid HTTP response")


async def test_connection_reset(sender: Sender) -> None:
    async with raw_server(reset) as port:
        report = await sender.send(quick(f"http://127.0.0.1:{port}/", timeout=2))
    assert report.error_kind is ErrorKind.NETWORK
    assert report.error in ("connection reset", "server disconnected")


async def test_dns_failure(sender: Sender) -> None:
    report = await sender.send(quick("http://nonexistent.invalid/", timeout=5))
    assert_network(report, "DNS lookup failed for nonexistent.invalid")


async def test_tls_handshake_failure(sender: Sender, receiver: Receiver) -> None:
    report = await sender.send(quick(receiver.url(scheme="https"), timeout=2))
    assert_network(report, "TLS handshake failed")
    assert receiver.seen == []


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/", "http://"])
async def test_invalid_url(sender: Sender, url: str) -> None:
    assert_network(await sender.send(quick(url)), "invalid URL")


# --- the SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "text"),
    [
        ("127.0.0.1", "address 127.0.0.1 is blocked (loopback)"),
        ("localhost", "localhost resolves to 127.0.0.1, which is blocked (loopback)"),
        ("127.0.0.2", "address 127.0.0.2 is blocked (loopback)"),
        ("[::ffff:127.0.0.1]", "address ::ffff:7f00:1 is blocked (IPv4-mapped loopback)"),
        # Legacy numeric forms that libc reads as 127.0.0.1.
        ("2130706433", "2130706433 resolves to 127.0.0.1, which is blocked (loopback)"),
        ("0x7f.0.0.1", "0x7f.0.0.1 resolves to 127.0.0.1, which is blocked (loopback)"),
        ("0x7f.1", "0x7f.1 resolves to 127.0.0.1, which is blocked (loopback)"),
        ("017700000001", "017700000001 resolves to 127.0.0.1, which is blocked (loopback)"),
    ],
)
async def test_loopback_is_blocked_without_the_allow_list(
    guarded: Sender, receiver: Receiver, host: str, text: str
) -> None:
    report = await guarded.send(quick(f"http://{host}:{receiver.port}/ok", timeout=2))
    assert report.error_kind is ErrorKind.BLOCKED
    assert report.error == f"{text}; allow it with delivery.allow_cidrs"
    assert report.status is None
    assert report.remote_address == ""
    assert receiver.seen == []


async def test_ipv6_loopback_is_blocked_without_the_allow_list(
    guarded: Sender, receiver6: Receiver
) -> None:
    report = await guarded.send(quick(receiver6.url(), timeout=2))
    assert report.error_kind is ErrorKind.BLOCKED
    assert "(loopback)" in report.error
    assert receiver6.seen == []


async def test_ipv6_loopback_allowed(sender: Sender, receiver6: Receiver) -> None:
    report = await sender.send(post(receiver6.url()))
    assert (report.status, report.remote_address) == (200, "::1")


async def test_allow_list_reload_applies_to_pooled_connections(receiver: Receiver) -> None:
    async with started(allow_cidrs=LOOPBACK) as sender:
        assert (await sender.send(post(receiver.url().replace("127.0.0.1", "localhost")))).status
        sender.set_allow_cidrs([])
        # A keep-alive connection to 127.0.0.1 is pooled, but it was opened under the old list.
        report = await sender.send(quick(receiver.url().replace("127.0.0.1", "localhost")))
        assert report.error_kind is ErrorKind.BLOCKED
        sender.set_allow_cidrs(["127.0.0.0/8"])
        assert (await sender.send(post(receiver.url()))).status == 200
    assert receiver.paths() == ["/ok", "/ok"]


async def test_reload_lets_in_flight_sends_finish(receiver: Receiver) -> None:
    async with started(allow_cidrs=LOOPBACK) as sender:
        task = asyncio.create_task(sender.send(post(receiver.url("/hang"))))
        await receiver.arrived.wait()
        sender.set_allow_cidrs(["127.0.0.0/8"])
        receiver.release.set()
        report = await task
        assert (report.status, report.body) == (200, b"late")
        assert (await sender.send(post(receiver.url()))).status == 200


class StaticResolver(aiohttp.abc.AbstractResolver):
    """Answers every name with fixed addresses, like a DNS server an attacker controls."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_resolver_drops_blocked_addresses_from_an_answer() -> None:
    guard = AddressGuard(parse_allow_list(["127.0.0.0/8"]))
    resolver = GuardedResolver(guard, StaticResolver("10.0.0.1", "127.0.0.1", "::1"))
    results = await resolver.resolve("rebind.example", 80, socket.AF_UNSPEC)
    assert [r["host"] for r in results] == ["127.0.0.1"]


async def test_resolver_refuses_when_every_address_is_blocked() -> None:
    resolver = GuardedResolver(AddressGuard(), StaticResolver("169.254.169.254", "fd00:ec2::254"))
    with pytest.raises(BlockedAddressError, match=r"\(cloud metadata\)"):
        await resolver.resolve("metadata.example", 80, socket.AF_UNSPEC)


@pytest.mark.parametrize("host", ["localhost", "0x7f.0.0.1", "0x7f.1", "017700000001"])
async def test_resolver_path_blocks_names_and_numeric_spellings(host: str) -> None:
    # The resolver alone, without the literal check in send(): getaddrinfo turns these into
    # loopback addresses, which the guard refuses.
    resolver = GuardedResolver(AddressGuard(), aiohttp.ThreadedResolver())
    with pytest.raises(BlockedAddressError, match=r"\(loopback\)"):
        await resolver.resolve(host, 80, socket.AF_UNSPEC)


def test_socket_factory_refuses_a_blocked_peer() -> None:
    # The backstop for any connection that did not go through the resolver or the literal check.
    addr_info = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))
    with pytest.raises(BlockedAddressError, match=r"\(loopback\)"):
        AddressGuard().open_socket(addr_info)
    with AddressGuard(parse_allow_list(LOOPBACK)).open_socket(addr_info) as sock:
        assert sock.family == socket.AF_INET


# --- lifecycle -----------------------------------------------------------------------------------


async def test_send_before_start_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        await Sender(user_agent=USER_AGENT).send(post("http://127.0.0.1:1/"))


def test_bad_allow_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        Sender(user_agent=USER_AGENT, allow_cidrs=["10.0.0.0/33"])


async def test_cancelling_a_send_mid_body_releases_the_connection(
    sender: Sender, receiver: Receiver
) -> None:
    task = asyncio.create_task(sender.send(post(receiver.url("/drip"))))
    await receiver.arrived.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await sender.send(post(receiver.url()))).status == 200


# --- the fake ------------------------------------------------------------------------------------


async def test_fake_sender_answers_from_its_script() -> None:
    gate = asyncio.Event()

    async def held(request: OutboundRequest) -> int:
        await gate.wait()
        return 204

    fake = FakeSender(
        [answer(503, retry_after="5"), failure(ErrorKind.TIMEOUT), 410, held], default=200
    )
    first = await fake.send(post("http://a.example/"))
    assert (first.status, first.retry_after) == (503, "5")
    assert (await fake.send(post("http://a.example/"))).error_kind is ErrorKind.TIMEOUT
    assert (await fake.send(post("http://a.example/"))).status == 410
    task = asyncio.create_task(fake.send(post("http://b.example/")))
    await asyncio.sleep(0)
    assert fake.in_flight == 1
    gate.set()
    assert (await task).status == 204
    assert (await fake.send(post("http://c.example/"))).status == 200
    assert [r.url for r in fake.requests][-2:] == ["http://b.example/", "http://c.example/"]
    assert fake.max_in_flight == 1


# --- what the HTTP client refuses to send ------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "text"),
    [
        (("X-P", "a\x7fb"), "request header X-P has a control character in its value"),
        (("X-P", "a\x01b"), "request header X-P has a control character in its value"),
        (("X-P", "a\x1fb"), "request header X-P has a control character in its value"),
        (("X-P", "a\rb"), "request header X-P has a control character in its value"),
        (("X-Api-Key", f"{SECRET}\x0b"), "request header X-Api-Key has a control character"),
        (("X\x7fP", "v"), "request header name X\\x7fP has a control character"),
    ],
)
async def test_a_header_the_http_client_refuses_is_a_failed_attempt(
    sender: Sender, receiver: Receiver, header: tuple[str, str], text: str
) -> None:
    # aiohttp raises ValueError for every control byte but HTAB: a report, never an exception.
    report = await sender.send(post(receiver.url(), headers=(("X-Ok", "1"), header)))
    assert report.error_kind is ErrorKind.NETWORK
    assert report.internal
    assert report.status is None
    assert text in report.error
    assert SECRET not in report.error and "a\x7fb" not in report.error
    assert receiver.seen == []
    # The session is unharmed: the next request goes out on it.
    assert (await sender.send(post(receiver.url()))).status == 200


async def test_a_tab_in_a_header_value_is_sent(sender: Sender, receiver: Receiver) -> None:
    report = await sender.send(post(receiver.url(), headers=(("X-P", "a\tb"),)))
    assert report.status == 200
    assert not report.internal
