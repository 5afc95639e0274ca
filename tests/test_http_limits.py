"""The HTTP listener against slow and numerous clients, on real loopback sockets: a head or
body that dribbles in is cut off, idle keep-alive connections close, and connections past the
cap are refused while /healthz answers again once they are gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from convoyd.errors import ConfigError
from convoyd.http.app import build_app
from convoyd.listeners import serve_http
from convoyd.settings import HttpServerSettings, load

LIMITS = HttpServerSettings(
    header_timeout=0.5, body_timeout=0.5, keepalive_timeout=1.0, max_connections=4
)
GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def _echo(request: web.Request) -> web.Response:
    return web.Response(text=str(len(await request.read())))


@pytest.fixture
async def listener() -> AsyncIterator[tuple[str, int]]:
    app = build_app(lambda: True)
    app.router.add_post("/echo", _echo)
    runner, address = await serve_http(app, "127.0.0.1:0", "http_listen", LIMITS)
    host, port = address.rsplit(":", 1)
    yield host, int(port)
    await runner.cleanup()


async def _dribble(where: tuple[str, int], data: bytes, pause: float) -> tuple[float, bytes]:
    """Sends ``data`` a byte at a time until the server answers or closes; returns how long
    the connection lasted and what came back."""
    reader, writer = await asyncio.open_connection(*where)
    started = time.monotonic()
    answer = asyncio.ensure_future(reader.read())
    try:
        for byte in data:
            if answer.done():
                break
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait([answer], timeout=pause)
        received = await asyncio.wait_for(answer, 10)
    except ConnectionError:
        received = b""
    finally:
        writer.close()
    return time.monotonic() - started, received


async def _healthy(where: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*where)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "data",
    [
        GET * 3,  # the request line itself dribbles
        b"GET /healthz HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n",  # a long header
        b"GE",  # a few bytes, then nothing
    ],
    ids=["request-line", "header", "stalled"],
)
async def test_a_head_that_dribbles_is_cut_off(listener: tuple[str, int], data: bytes) -> None:
    pause = 0.1 if len(data) > 2 else 5.0
    lasted, received = await _dribble(listener, data, pause)
    assert received.startswith(b"HTTP/1.1 408"), received[:60]
    assert 0.4 < lasted < 3.0


async def test_a_silent_connection_is_closed(listener: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*listener)
    started = time.monotonic()
    received = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert received.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 3.0


async def test_keep_alive_idle_then_a_slow_second_head(listener: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*listener)
    writer.write(GET)
    first = await asyncio.wait_for(reader.readuntil(b'"serving"}'), 10)
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    # A prompt second request on the same connection is served.
    writer.write(GET)
    assert (await asyncio.wait_for(reader.readuntil(b'"serving"}'), 10)).startswith(b"HTTP/1.1 200")
    # Then idle: closed after keepalive_timeout, without an answer.
    rest = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert rest == b""
    assert 0.8 < time.monotonic() - started < 3.0


async def test_a_body_that_dribbles_is_cut_off(listener: tuple[str, int]) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    reader, writer = await asyncio.open_connection(*listener)
    writer.write(head + b"x")
    started = time.monotonic()
    received = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert received.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 3.0
    # A body that arrives in time is read as usual.
    reader, writer = await asyncio.open_connection(*listener)
    writer.write(head.replace(b"Host: x", b"Connection: close\r\nHost: x") + b"y" * 100)
    assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"\r\n\r\n100")
    writer.close()


async def test_connections_past_the_cap_are_refused(listener: tuple[str, int]) -> None:
    held = [await asyncio.open_connection(*listener) for _ in range(LIMITS.max_connections)]
    for _ in range(3):
        reader, writer = await asyncio.open_connection(*listener)
        refused = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503"), refused[:60]
    assert (await _healthy(listener)).startswith(b"HTTP/1.1 503")
    for _, writer in held:
        writer.close()
        await writer.wait_closed()

    async def answers() -> bool:
        return (await _healthy(listener)).startswith(b"HTTP/1.1 200")

    deadline = time.monotonic() + 10
    while not await answers():
        assert time.monotonic() < deadline, "/healthz did not come back"
        await asyncio.sleep(0.02)


async def test_many_slow_clients_do_not_hold_descriptors(listener: tuple[str, int]) -> None:
    """More dribbling clients than the cap: all are gone after header_timeout, and the
    listener serves again."""
    slow = [
        asyncio.ensure_future(_dribble(listener, GET, 0.2))
        for _ in range(LIMITS.max_connections * 3)
    ]
    results = await asyncio.wait_for(asyncio.gather(*slow), 20)
    assert all(r.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")) for _, r in results)
    assert all(lasted < 3.0 for lasted, _ in results)
    assert (await _healthy(listener)).startswith(b"HTTP/1.1 200")


def test_limits_are_configured_and_checked(tmp_path: object) -> None:
    settings = load(
        env={
            "CONVOYD_HTTP_SERVER_HEADER_TIMEOUT": "2.5",
            "CONVOYD_HTTP_SERVER_MAX_CONNECTIONS": "50",
            "CONVOYD_HTTP_LISTEN": "127.0.0.1:0",
        }
    )
    assert settings.http_server.header_timeout == 2.5
    assert settings.http_server.max_connections == 50
    assert settings.http_listen == "127.0.0.1:0"
    with pytest.raises(ConfigError, match=r"http_server\.max_connections"):
        load(env={"CONVOYD_HTTP_SERVER_MAX_CONNECTIONS": "0"})
    with pytest.raises(ConfigError, match=r"http_server\.header_timeout"):
        HttpServerSettings(header_timeout=0)
