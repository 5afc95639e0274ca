"""Limits of the HTTP listeners against slow and numerous clients: header and body deadlines,
keep-alive idle time, and a cap on open connections.

aiohttp bounds the size of request lines and headers and closes idle keep-alive connections,
but it waits for a request's head forever: a client that sends one byte a second holds its
descriptor for as long as it likes. The handler below adds a deadline on the head (from the
connection's first byte, or from the first byte of each further request on a keep-alive
connection) and counts connections; the body deadline is a middleware.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from convoyd.settings import HttpServerSettings

log = logging.getLogger(__name__)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 20\r\nRetry-After: 1\r\n\r\ntoo many connections"
)
_SLOW = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 15\r\n\r\nrequest timeout"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handler_options(limits: HttpServerSettings) -> dict[str, Any]:
    """aiohttp's own limits, as AppRunner (and so every RequestHandler) takes them."""
    return {
        "access_log": None,  # convoyd logs portal access itself, without query strings
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": 8190,
        "max_field_size": 8190,
        "max_headers": 64,
        "lingering_time": min(10.0, limits.body_timeout),
    }


class _Census:
    """The open connections of one listener."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.full = False  # refusing since the last time a connection closed


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's handler, refusing connections past the cap and closing those whose request
    head is not complete within header_timeout."""

    def __init__(
        self, manager: web.Server, *, census: _Census, header_timeout: float, **options: Any
    ) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop(), **options)
        self._census = census
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._admitted = False
        self._answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._census.open >= self._census.limit:
            # Answered and closed before aiohttp sees it: no task, no parser state. One warning
            # per episode, not one per refused connection.
            if not self._census.full:
                log.warning(
                    "http connections at the limit (%d): refusing new ones", self._census.limit
                )
            self._census.full = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._census.open += 1
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if not self._admitted:
            return
        self._admitted = False
        self._census.open -= 1
        self._census.full = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        parsed = self._request_count
        # The first byte of a request starts its head's clock; bytes of a body do not (the
        # body deadline is body_middleware's).
        if data and self._header_deadline is None and self._answered == parsed:
            self._arm()
        super().data_received(data)
        if self._request_count != parsed:
            self._disarm()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._answered += 1

    def _arm(self) -> None:
        if self._header_deadline is None and self._header_timeout > 0:
            loop = asyncio.get_running_loop()
            self._header_deadline = loop.call_later(self._header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self.transport is not None:
            log.debug("http request head not complete in %ss: closed", self._header_timeout)
            self.transport.write(_SLOW)
        self.force_close()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections are GuardedRequestHandlers."""

    __slots__ = ("_census", "_host", "_limits", "_options", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: HttpServerSettings,
        options: dict[str, Any],
    ) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self._limits = limits
        self._options = options
        self._census = _Census(limits.max_connections)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        return self._census.open

    def _protocol(self) -> GuardedRequestHandler:
        manager = self._runner.server
        assert manager is not None
        return GuardedRequestHandler(
            manager,
            census=self._census,
            header_timeout=self._limits.header_timeout,
            **self._options,
        )

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self._host, self._port, reuse_address=False, backlog=128
        )


def body_middleware(limits: HttpServerSettings) -> Any:
    """Reads a request's body (aiohttp keeps it for post()/json()) within body_timeout, so a
    client that dribbles its body cannot hold a handler; 408 if it is too slow."""

    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists and limits.body_timeout > 0:
            try:
                async with asyncio.timeout(limits.body_timeout):
                    await request.read()
            except TimeoutError:
                response = web.Response(status=408, text="request body too slow")
                response.force_close()
                return response
        return await handler(request)

    return read_body_in_time
