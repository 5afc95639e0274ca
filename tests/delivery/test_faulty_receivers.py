"""Receivers that misbehave, through the whole engine: each ends in the documented outcome.

Raw asyncio servers on 127.0.0.1 play each fault; the delivery's final status and its attempt
log are checked. Memory is checked too: a 10 MiB answer is read only up to the body limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from google.protobuf import duration_pb2

from convoyd.app import App
from convoyd.client import Client
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import Running
from tests.receivers import eventually

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ONE_ATTEMPT = pb.RetryPolicy(schedule=pb.ScheduleRetry(), jitter=0.0)
HANG = asyncio.Event()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    await reader.readexactly(length)


def answering(status_line: bytes, headers: bytes = b"", body: bytes = b"") -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            status_line + b"\r\n" + headers + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        await writer.drain()
        writer.close()

    return handle


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.transport.abort()  # RST instead of an answer


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await HANG.wait()


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        if HANG.is_set():  # the test is over
            return
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    size = 10 * 1024 * 1024
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"y" * 65536
    try:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass  # convoyd stopped reading at its limit and closed the connection


async def plaintext_to_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Answers the TLS ClientHello with plain HTTP: the handshake cannot succeed.
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HELLO THERE\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    running: set[asyncio.Task[None]] = set()

    async def start(handler: Handler) -> str:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                running.discard(task)

        server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"

    yield start
    HANG.set()
    for server in servers:
        server.close()
        await server.wait_closed()
    await asyncio.gather(*running, return_exceptions=True)
    HANG.clear()


CASES: list[tuple[str, Any, int, int, str]] = [
    # name, handler, final delivery status, attempt result, text in the attempt error/reason
    ("reset", reset, dpb.DELIVERY_STATUS_FAILURE, dpb.ATTEMPT_RESULT_NETWORK_ERROR, ""),
    ("hang", hang, dpb.DELIVERY_STATUS_FAILURE, dpb.ATTEMPT_RESULT_TIMEOUT, "timed out"),
    ("drip", drip, dpb.DELIVERY_STATUS_FAILURE, dpb.ATTEMPT_RESULT_TIMEOUT, "timed out"),
    ("huge", huge, dpb.DELIVERY_STATUS_SUCCESS, dpb.ATTEMPT_RESULT_SUCCESS, ""),
    ("garbage", garbage, dpb.DELIVERY_STATUS_FAILURE, dpb.ATTEMPT_RESULT_NETWORK_ERROR, ""),
    (
        "gone",
        answering(b"HTTP/1.1 410 Gone"),
        dpb.DELIVERY_STATUS_FAILURE,
        dpb.ATTEMPT_RESULT_HTTP_ERROR,
        "",
    ),
    (
        "redirect",
        answering(b"HTTP/1.1 302 Found", b"Location: http://127.0.0.1:1/\r\n"),
        dpb.DELIVERY_STATUS_FAILURE,
        dpb.ATTEMPT_RESULT_HTTP_ERROR,
        "",
    ),
    (
        "server error",
        answering(b"HTTP/1.1 500 Oops"),
        dpb.DELIVERY_STATUS_FAILURE,
        dpb.ATTEMPT_RESULT_HTTP_ERROR,
        "",
    ),
]


@pytest.mark.parametrize(
    ("name", "handler", "status", "result", "text"), CASES, ids=[c[0] for c in CASES]
)
async def test_faulty_receiver_outcome(
    client: Client,
    serve: Callable[[Handler], Awaitable[str]],
    name: str,
    handler: Handler,
    status: int,
    result: int,
    text: str,
) -> None:
    url = await serve(handler)
    ep = await client.create_endpoint(
        pb.Endpoint(
            url=url, retry_policy=ONE_ATTEMPT, http_timeout=duration_pb2.Duration(nanos=500_000_000)
        )
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

    async def final() -> bool:
        return (await client.get_delivery(delivery.id)).status == status

    await eventually(final, timeout=15)
    (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    assert attempt.result == result, attempt
    assert text in attempt.error
    if name == "huge":
        assert attempt.response_body_truncated and len(attempt.response_body) == 16 * 1024
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert grown_mb < 8, f"reading a 10 MiB answer grew memory by {grown_mb:.1f} MiB"
    if name == "gone":

        async def inactive() -> bool:
            return (await client.get_endpoint(ep.id)).status == pb.ENDPOINT_STATUS_INACTIVE

        await eventually(inactive)


async def test_throttled_receiver_retry_after_is_honoured(
    client: Client, serve: Callable[[Handler], Awaitable[str]], delivering: tuple[App, Running]
) -> None:
    url = await serve(answering(b"HTTP/1.1 429 Too Many Requests", b"Retry-After: 120\r\n"))
    fast = pb.RetryPolicy(
        schedule=pb.ScheduleRetry(delays=[duration_pb2.Duration(seconds=1)]), jitter=0.0
    )
    ep = await client.create_endpoint(pb.Endpoint(url=url, retry_policy=fast))
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

    async def retrying() -> bool:
        return (await client.get_delivery(delivery.id)).status == dpb.DELIVERY_STATUS_RETRY

    await eventually(retrying)
    got = await client.get_delivery(delivery.id)
    wait = got.next_attempt_at.seconds - got.last_attempt_at.seconds
    assert 118 <= wait <= 122, f"retry in {wait}s, not after the 120s the receiver asked for"


async def test_unresolvable_name_fails_with_dns_error(client: Client) -> None:
    ep = await client.create_endpoint(
        pb.Endpoint(url="http://nonexistent.invalid/hook", retry_policy=ONE_ATTEMPT)
    )
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

    async def failed() -> bool:
        return (await client.get_delivery(delivery.id)).status == dpb.DELIVERY_STATUS_FAILURE

    await eventually(failed, timeout=15)
    (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    assert attempt.result == dpb.ATTEMPT_RESULT_NETWORK_ERROR
    assert "DNS" in attempt.error or "resolve" in attempt.error.lower()


async def test_tls_handshake_failure_is_a_network_error(
    client: Client, serve: Callable[[Handler], Awaitable[str]]
) -> None:
    url = (await serve(plaintext_to_tls)).replace("http://", "https://")
    ep = await client.create_endpoint(pb.Endpoint(url=url, retry_policy=ONE_ATTEMPT))
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries

    async def failed() -> bool:
        return (await client.get_delivery(delivery.id)).status == dpb.DELIVERY_STATUS_FAILURE

    await eventually(failed, timeout=15)
    (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    assert attempt.result == dpb.ATTEMPT_RESULT_NETWORK_ERROR
    assert "TLS" in attempt.error or "SSL" in attempt.error
