"""No secret reaches the logs: the real daemon at log_level=debug, through every path that
handles signing secrets, authentication header values and tokens, successes and failures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
import pytest

from convoyd.client import Client
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import endpoint_pb2_grpc
from tests.conftest import DaemonProcess
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e


def standard_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def api_key(value: str) -> pb.EndpointAuthentication:
    return pb.EndpointAuthentication(
        api_key=pb.ApiKeyAuthentication(header_name="X-Api-Key", header_value=value)
    )


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
async def test_no_secret_or_token_is_ever_logged(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]], log_format: str
) -> None:
    daemon.env.update(
        CONVOYD_LOG_LEVEL="debug",
        CONVOYD_LOG_FORMAT=log_format,
        CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
    )
    ok = await receivers()
    failing = await receivers(default_status=500)
    running = daemon.start()
    sensitive = {running.token}

    def remember(*values: str) -> None:
        assert all(values)
        sensitive.update(values)

    async with Client(running.grpc_target, token=running.token) as client:
        targets = []
        for url, scheme in (
            (ok.url, pb.SIGNATURE_SCHEME_STANDARD),
            (failing.url, pb.SIGNATURE_SCHEME_CONVOY_ADVANCED),
            ("http://[::1]:9/blocked", pb.SIGNATURE_SCHEME_CONVOY_SIMPLE),  # not allowed
        ):
            secret = standard_secret()
            auth = "key-" + secrets.token_urlsafe(24)
            custom = "tenant-" + secrets.token_urlsafe(24)
            remember(secret, auth, custom)
            created = await client.create_endpoint(
                pb.Endpoint(
                    url=url,
                    owner_id="leak",
                    signature=pb.SignatureConfig(scheme=scheme),
                    authentication=api_key(auth),
                    headers={"X-Tenant-Token": custom},
                ),
                secret=secret,
            )
            targets.append(created.id)
        # Rotation with a chosen and with a generated secret, then reading them back.
        chosen = standard_secret()
        remember(chosen)
        await client.rotate_endpoint_secret(targets[0], secret=chosen, old_secret_lifetime=60)
        generated = await client.rotate_endpoint_secret(targets[1], old_secret_lifetime=0)
        remember(generated.secret.value)
        remember(*[s.value for s in (await client.get_endpoint_secret(targets[0])).secrets])
        # A new authentication value replaces the old one.
        new_auth = "key-" + secrets.token_urlsafe(24)
        remember(new_auth)
        await client.update_endpoint(
            pb.Endpoint(id=targets[1], authentication=api_key(new_auth)), ["authentication"]
        )
        for i in range(3):
            await client.create_event(event_type="t", data={"i": i}, owner_id="leak")
        await ok.wait_for(3)
        await failing.wait_for(3)

        async def blocked_attempted() -> bool:
            page = await client.list_deliveries(endpoint_id=targets[2])
            return all(d.attempt_count >= 1 for d in page.deliveries)

        await eventually(blocked_attempted)
        # A rejected token (a wrong one that looks right) is not logged either.
        wrong = "cvd_" + secrets.token_urlsafe(32)
        remember(wrong)
        async with running.channel() as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await endpoint_pb2_grpc.EndpointServiceStub(channel).GetEndpoint(
                    pb.GetEndpointRequest(endpoint_id=targets[0]),
                    metadata=(("authorization", f"Bearer {wrong}"),),
                    timeout=10,
                )
    # The receivers did get the values: the test would catch a leak if there were one.
    assert ok.requests[-1].headers["X-Api-Key"] in sensitive
    assert daemon.stop() == 0

    log = daemon.log()
    assert ("level=debug" if log_format == "logfmt" else '"level": "debug"') in log
    assert "attempt http_error" in log and "attempt blocked" in log and "attempt success" in log
    leaked = sorted(value for value in sensitive if value in log)
    assert not leaked, f"{len(leaked)} secret(s) found in the daemon's log"
    # Nor their secret parts alone (the base64 inside whsec_, a token without its prefix).
    parts = {v.split("_", 1)[1] for v in sensitive if v.startswith(("whsec_", "cvd_"))}
    assert not [p for p in parts if p in log]


def _exchange(address: tuple[str, int], raw: bytes) -> bytes:
    """Sends ``raw`` on a new connection; returns what comes back until the server closes
    (or, for a request it answered and keeps alive, goes quiet)."""
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(raw)
        chunks = [conn.recv(65536)]
        conn.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
async def test_malformed_http_requests_never_log_a_live_token(
    daemon: DaemonProcess, log_format: str
) -> None:
    """aiohttp quotes bad request lines and headers in its errors; the live portal token, a
    session cookie and an admin token sent in them stay out of the log at debug."""
    daemon.env.update(CONVOYD_LOG_LEVEL="debug", CONVOYD_LOG_FORMAT=log_format, GRPC_TRACE="all")
    running = daemon.start()
    async with Client(running.grpc_target, token=running.token) as client:
        link = await client.create_portal_link(owner_id="acme")
    token = link.url.split("token=", 1)[1]
    session = "cvds_" + secrets.token_urlsafe(32)
    enter = f"/portal/enter?token={token}".encode()
    host, port = running.http_url.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    cookie = f"Cookie: convoyd_portal={session}".encode()
    bearer = f"Authorization: Bearer {running.token}".encode()
    requests = [
        b"GET " + enter + b"&pad=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # too long
        b"GET /portal/x?pad=" + b"a" * 8170 + b"&token=" + token.encode() + b" HTTP/1.1\r\n\r\n",
        b"GET " + enter + b" HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"b" * 9000 + b"\r\n\r\n",
        b"GET " + enter + b" HTTP/1.1\r\nHost: x\r\n" + cookie + b"\x01\r\n\r\n",  # bad cookie
        b"GET /portal/ HTTP/1.1\r\nHost: x\r\n" + cookie + b"; x=" + b"c" * 9000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + bearer + b"\x7f\r\n\r\n",
        b"GE\x01T " + enter + b" HTTP/1.1\r\n\r\n",  # bad method
        b"GET " + enter + b" HTTP/9.9\r\n\r\n",  # bad version
        b"GET " + enter + b"\x00 HTTP/1.1\r\n\r\n",
        b"GET /portal/" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # token in the path
        b"GET " + enter + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET " + enter + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET " + enter + b" HTTP/1.1\r\n" + b"X-H: v\r\n" * 200 + b"\r\n",  # too many headers
    ]
    for raw in requests:
        answer = await asyncio.to_thread(_exchange, address, raw)
        assert answer.startswith(b"HTTP/1."), (raw[:40], raw[-30:], answer)
    # The link was never used by any of them: it still opens the portal.
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(link.url, allow_redirects=False) as opened,
    ):
        assert opened.status == 303
    assert daemon.stop() == 0
    log = daemon.log()
    assert "aiohttp.server" in log  # the errors were logged, scrubbed
    for value in (token, token[5:25], session[5:25], running.token[4:24]):
        assert value not in log
