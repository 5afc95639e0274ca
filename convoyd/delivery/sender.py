"""The only outbound HTTP in convoyd: POST one attempt, guarded against SSRF, reported as a value.

The SSRF guard (architecture.md §7) judges the addresses actually connected to, at three points
that share one policy (:class:`AddressGuard`):

1. :class:`GuardedResolver` drops blocked addresses from every DNS answer, so a name is only ever
   connected to addresses that passed; all blocked → the lookup fails with the reason.
2. IP-literal hosts never reach a resolver, so :meth:`Sender.send` checks them first, including the
   legacy numeric spellings that libc reads as IPv4 ("2130706433", "0x7f.1", "017700000001").
3. The connector's socket factory checks the exact address of every new socket, as a backstop
   for any path that skips the first two (a DNS answer cached before a reload, a future aiohttp).

Network and HTTP failures are returned as :class:`AttemptReport` values, never raised; their texts
(convoyd.delivery.failures) never contain request headers: they carry signatures and API keys.
So is any other error while making the request (the HTTP client refusing a header byte, a bug):
it is a failed attempt (:func:`unsent`), retried like a network error, never an exception that
would leave the attempt without an outcome.

A request may carry an endpoint's TLS material (client certificate, private CA): its SSLContext
is built here, in the process that connects, and kept for reuse (convoyd.delivery.tls).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import aiohttp
from aiohttp.connector import Connection
from yarl import URL

from convoyd.core.addresses import blocked_reason, parse_allow_list
from convoyd.core.outcome import ErrorKind
from convoyd.delivery.failures import describe, describe_refused
from convoyd.delivery.guard import (
    AddressGuard,
    GuardedResolver,
    blocked_text,
    literal_address,
)
from convoyd.delivery.tls import TlsContexts, TlsMaterial

# aiohttp only needs to reap half-closed TLS transports on Pythons without cpython#118960, and
# warns (an error under our test settings) when asked to on the others.
_NEEDS_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)

# Headers aiohttp would add on its own. The caller's headers are the whole request (plus Host and
# Content-Length); Accept-Encoding in particular must not be sent because bodies are stored as
# received (auto_decompress=False), not decompressed at CPU cost and bomb risk.
_SKIP_AUTO_HEADERS = ("User-Agent", "Content-Type", "Accept", "Accept-Encoding")

# Bytes of a response body read and kept in the attempt log, unless configured otherwise.
DEFAULT_BODY_LIMIT = 16 * 1024

# Distinct per-endpoint timeouts are few; the bound only stops a pathological caller.
_MAX_CACHED_TIMEOUTS = 256
_MAX_CACHED_TARGETS = 4096


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One POST to make. ``headers`` are complete: signatures, auth, content type, user agent."""

    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    timeout: float  # seconds for connect + send + the whole response
    #: Bytes of the response body to read, instead of the sender's body_limit (a token response).
    body_limit: int | None = None
    #: The endpoint's client certificate and CA (convoyd.delivery.tls); None: the defaults.
    tls: TlsMaterial | None = None


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """What happened to one :class:`OutboundRequest`."""

    status: int | None  # None when no HTTP answer arrived
    headers: tuple[tuple[str, str], ...]  # response headers
    body: bytes  # at most the sender's body_limit bytes
    truncated: bool  # the response body was longer than body_limit
    error_kind: ErrorKind  # NONE, TIMEOUT, NETWORK or BLOCKED
    error: str  # short human text, no secrets; "" when error_kind is NONE
    remote_address: str  # the IP actually connected to ("" if none)
    duration: float  # seconds
    retry_after: str | None  # the raw Retry-After response header
    internal: bool = False  # convoyd's own error (see unsent), not the network's or the receiver's
    # When the request went out (wall clock, where it was sent: maybe a sender worker); 0 if
    # it never did. The attempt's span starts here (convoyd.telemetry).
    started_at: float = 0.0


class _PeerResponse(aiohttp.ClientResponse):
    """A response that records the peer IP of its connection.

    Read in ``start``: aiohttp hands an empty-bodied response's connection back to the pool before
    the caller sees the response, so ``response.connection`` may already be None by then.
    """

    peer = ""

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        if transport is not None:
            peername = transport.get_extra_info("peername")
            if peername:
                self.peer = peername[0]
        return await super().start(connection)


@dataclass(eq=False, slots=True)
class _Pool:
    """One session and its connections, with the sends currently using it."""

    session: aiohttp.ClientSession
    in_flight: int = 0


class Sender:
    """Makes delivery attempts over one aiohttp session with keep-alive connection reuse.

    The session is replaced only when a reload changes the allow-list (see set_allow_cidrs).
    """

    def __init__(
        self,
        *,
        allow_cidrs: Sequence[str] = (),
        body_limit: int = DEFAULT_BODY_LIMIT,
        user_agent: str,
        max_connections: int = 0,
        max_connections_per_host: int = 0,
    ) -> None:
        """``user_agent`` is sent when a request carries no User-Agent of its own;
        ``max_connections`` and ``max_connections_per_host`` 0 mean no limit: the engine bounds
        attempts in flight, in all and per endpoint, and a second, lower bound here would make
        healthy endpoints' requests queue behind hanging ones (convoyd.delivery.capacity)."""
        if body_limit < 0:
            raise ValueError("body_limit must be >= 0")
        self._guard = AddressGuard(parse_allow_list(allow_cidrs))
        self._body_limit = body_limit
        self._user_agent = user_agent
        self._max_connections = max_connections
        self._max_connections_per_host = max_connections_per_host
        self._pool: _Pool | None = None
        self._retired: set[_Pool] = set()  # replaced by a reload, closed when idle
        self._closing: set[asyncio.Task[None]] = set()
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._targets: dict[str, tuple[URL, str, str]] = {}
        self._tls = TlsContexts()

    async def start(self) -> None:
        """Create the session; call from the running event loop."""
        if self._pool is not None:
            raise RuntimeError("Sender already started")
        self._pool = self._new_pool()

    def _new_pool(self) -> _Pool:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=self._max_connections_per_host,
            resolver=GuardedResolver(self._guard, aiohttp.ThreadedResolver()),
            # The cache holds only addresses the guard let through and the connector connects to
            # exactly those, so caching opens no rebinding hole; it saves a thread-pool
            # getaddrinfo per new connection. A reload starts a new pool with an empty cache.
            use_dns_cache=True,
            ttl_dns_cache=10,
            socket_factory=self._guard.open_socket,
            enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self._user_agent},
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            response_class=_PeerResponse,
            cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies must not reach another
            trust_env=False,  # no proxy or netrc from the environment (architecture.md §9)
            auto_decompress=False,
            raise_for_status=False,
        )
        return _Pool(session)

    async def close(self) -> None:
        """Close every connection; in-flight sends fail."""
        pool, self._pool = self._pool, None
        retired, self._retired = self._retired, set()
        for old in retired:
            await old.session.close()
        if pool is not None:
            await pool.session.close()
        while self._closing:
            await asyncio.gather(*self._closing)

    def set_allow_cidrs(self, cidrs: Sequence[str]) -> None:
        """Replace the allow-list (SIGHUP); it applies to every connection made from now on.

        Keep-alive connections opened under the old list are not reused: a busy endpoint's
        connection never goes idle, so it would otherwise keep reaching an address the operator
        just removed. Sends already in flight finish on the old pool, which then closes.
        """
        allow = tuple(parse_allow_list(cidrs))
        if allow == self._guard.allow:
            return
        self._guard.allow = allow
        self._targets.clear()  # literal hosts are judged again under the new list
        pool = self._pool
        if pool is None:
            return
        self._pool = self._new_pool()
        if pool.in_flight:
            self._retired.add(pool)
        else:
            self._close_later(pool)

    def _close_later(self, pool: _Pool) -> None:
        self._retired.discard(pool)
        task = asyncio.get_running_loop().create_task(pool.session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _target(self, text: str) -> tuple[URL, str, str]:
        """The parsed URL, its host, and why its IP-literal host is blocked ("" if it is not).

        Cached per URL text: every attempt to an endpoint repeats its URL, and parsing it and
        judging the literal cost more than the rest of preparing the request. The cache is
        dropped when the allow-list changes; a name (not a literal) is judged at connect time.
        """
        url = URL(text)
        host = url.raw_host or ""
        literal = literal_address(host) if host else None
        blocked = ""
        if literal is not None:
            reason = blocked_reason(literal, self._guard.allow)
            if reason is not None:
                blocked = blocked_text(literal, reason, host)
        if len(self._targets) >= _MAX_CACHED_TARGETS:
            self._targets.clear()
        self._targets[text] = (url, host, blocked)
        return url, host, blocked

    def _new_target(self, text: str) -> tuple[URL, str, str] | None:
        """``_target``, None when the text is no URL at all."""
        try:
            return self._target(text)
        except Exception:  # whatever yarl raises for it
            return None

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            # total covers connect, sending and reading the whole body: a dripping body times out.
            timeout = aiohttp.ClientTimeout(total=seconds)
            if len(self._timeouts) < _MAX_CACHED_TIMEOUTS:
                self._timeouts[seconds] = timeout
        return timeout

    async def send(self, request: OutboundRequest) -> AttemptReport:
        """POST ``request.body`` to ``request.url`` once, without following redirects."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("Sender.send() called before start()")
        pool.in_flight += 1
        try:
            return await self._attempt(pool.session, request)
        finally:
            pool.in_flight -= 1
            if not pool.in_flight and pool in self._retired:
                self._close_later(pool)

    async def _attempt(
        self, session: aiohttp.ClientSession, request: OutboundRequest
    ) -> AttemptReport:
        started, wall = time.monotonic(), time.time()
        target = self._targets.get(request.url) or self._new_target(request.url)
        if target is None:
            return no_answer(ErrorKind.NETWORK, "invalid URL", time.monotonic() - started)
        url, host, blocked = target
        if blocked:
            return no_answer(ErrorKind.BLOCKED, blocked, time.monotonic() - started)
        context: ssl.SSLContext | bool = True  # aiohttp's own verifying default
        if request.tls is not None:
            endpoint_context = await self._tls_context(request.tls)
            if endpoint_context is None:
                text = "could not load the endpoint's TLS certificates"
                return unsent(text, time.monotonic() - started)
            context = endpoint_context
        limit = self._body_limit if request.body_limit is None else request.body_limit

        response: _PeerResponse | None = None
        try:
            response = cast(
                _PeerResponse,
                await session.post(
                    url,
                    data=request.body,
                    headers=request.headers,
                    allow_redirects=False,
                    timeout=self._timeout(request.timeout),
                    ssl=context,
                ),
            )
            body, truncated = await self._read_body(response, limit)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            kind, text = describe(exc, request.timeout, host)
            if response is None:
                return no_answer(kind, text, time.monotonic() - started, started_at=wall)
            response.close()  # mid-body: the connection cannot be reused
            return AttemptReport(
                status=response.status,
                headers=tuple(response.headers.items()),
                body=b"",
                truncated=False,
                error_kind=kind,
                error=text,
                remote_address=response.peer,
                duration=time.monotonic() - started,
                retry_after=None,
                started_at=wall,
            )
        except Exception as exc:
            # Not the network: aiohttp refuses a header byte (ValueError), or a bug. Still one
            # failed attempt; its text names the header at fault, never a value.
            if response is not None:
                response.close()
            return unsent(describe_refused(exc, request.headers), time.monotonic() - started)
        except BaseException:
            # Cancelled (shutdown) mid-response: give the connection back closed, not leaked.
            if response is not None:
                response.close()
            raise
        if truncated:
            # Closing beats draining the rest of a possibly huge body just to keep the connection.
            response.close()
        else:
            response.release()
        headers = response.headers
        return AttemptReport(
            status=response.status,
            headers=tuple(headers.items()),
            body=body,
            truncated=truncated,
            error_kind=ErrorKind.NONE,
            error="",
            remote_address=response.peer,
            duration=time.monotonic() - started,
            retry_after=headers.get("Retry-After"),
            started_at=wall,
        )

    async def _tls_context(self, material: TlsMaterial) -> ssl.SSLContext | None:
        """The endpoint's context; None when OpenSSL refuses its PEM (validated at Create and
        Update, so this is a PEM that library accepts and this OpenSSL does not). Not even the
        error's type is told: nothing here may risk echoing key material."""
        try:
            return await self._tls.get(material)
        except Exception:
            return None

    @staticmethod
    async def _read_body(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
        """At most ``limit`` bytes of the body, and whether more remained."""
        content = response.content
        parts: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await content.read(limit - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if content.at_eof():
                break
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        return body, size >= limit and not content.at_eof()


def no_answer(
    kind: ErrorKind,
    text: str,
    duration: float = 0.0,
    *,
    internal: bool = False,
    started_at: float = 0.0,
) -> AttemptReport:
    """The report of an attempt that got no HTTP answer: a timeout, a network error, a blocked
    address, or (``internal``) convoyd's own failure to make it (see :func:`unsent`)."""
    return AttemptReport(
        status=None,
        headers=(),
        body=b"",
        truncated=False,
        error_kind=kind,
        error=text,
        remote_address="",
        duration=duration,
        retry_after=None,
        internal=internal,
        started_at=started_at,
    )


def unsent(text: str, duration: float = 0.0) -> AttemptReport:
    """The report of an attempt convoyd itself failed to make: the request could not be built
    or sent, or a sender worker died or never answered. It is a network error to the retry
    policy and the breaker (the delivery is retried, never left pending without an outcome);
    ``internal`` lets the metrics tell it from the network's errors."""
    return no_answer(ErrorKind.NETWORK, text, duration, internal=True)
