"""A webhook receiver on 127.0.0.1:0 for tests: records every request, answers as scripted;
over TLS (``ssl``) it records the client certificate's subject, and ``authorize`` makes it
demand credentials."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    #: The client certificate's subject as "CN=..." ("" without one or without TLS).
    peer_subject: str = ""
    #: The client's port: the same one for requests over one kept-alive connection.
    peer_port: int = 0


@dataclass
class Receiver:
    """Answers each request with the next scripted status (then ``default_status``)."""

    script: list[int] = field(default_factory=list)
    default_status: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    hang: asyncio.Event | None = None  # set: requests wait on it (never answering until set)
    #: Serves https with this context (which may require client certificates).
    ssl: ssl_module.SSLContext | None = None
    #: Given the request headers, whether they carry the right credentials; 401 when not.
    authorize: Callable[[Mapping[str, str]], bool] | None = None
    server: TestServer | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        loop = asyncio.get_running_loop()
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport else None
        received = Received(
            request.path,
            dict(request.headers),
            body,
            loop.time(),
            peer_subject=_subject(transport.get_extra_info("peercert") if transport else None),
            peer_port=peer[1] if peer else 0,
        )
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        if self.hang is not None:
            await self.hang.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.authorize is not None and not self.authorize(request.headers):
            return web.Response(status=401, text="who are you")
        status = self.script.pop(0) if self.script else self.default_status
        return web.Response(
            status=status, text="ok" if status < 300 else "nope", headers=self.headers
        )

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server(ssl=self.ssl)
        return self

    async def close(self) -> None:
        if self.hang is not None:
            self.hang.set()
        if self.server is not None:
            await self.server.close()

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Waits until at least ``count`` requests arrived (or fails after ``within`` s)."""

        def enough() -> bool:
            return len(self.requests) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), within)
        return self.requests


def _subject(cert: object) -> str:
    """``getpeercert()``'s subject, ((("commonName", "client"),),), as "CN=client"."""
    if not isinstance(cert, dict):
        return ""
    names = {"commonName": "CN", "organizationName": "O"}
    return ",".join(
        f"{names.get(key, key)}={value}" for rdn in cert.get("subject", ()) for key, value in rdn
    )


async def eventually(
    check: Callable[[], object],
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    interval: float = 0.02,
) -> None:
    """Polls an async or sync predicate until it is truthy; fails with the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)
