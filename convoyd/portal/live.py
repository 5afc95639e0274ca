"""Live updates of the portal's delivery pages: Server-Sent Events from the committed change feed.

A page that shows deliveries carries ``data-stream="<url>"``; portal.js opens an EventSource on
it and fetches the page's part again when a message arrives. The stream's changes come from the
service layer's watch (the same feed as WatchDeliveries, so in a cluster what another node
commits arrives too), inside the session's scope and the page's filters. Every message is one
committed change of a delivery: ``data: {"delivery_id": ..., "status": ..., ...}``.

Streams are bounded per session and in total; each one re-checks its session before it sends
and at every keepalive, ends when the session ends, and all of them end at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from convoyd.core.model import Delivery, DeliveryStatus, PortalLink
from convoyd.core.watch import StatusUpdate
from convoyd.errors import ConvoydError, NotFoundError, ResourceExhaustedError, UnavailableError
from convoyd.portal import forms, scope, security, views
from convoyd.portal.context import PortalServices, Viewer, services, viewer
from convoyd.store.base import DeliveryQuery

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds between looks at whether the browser went away
MIN_GAP = 0.5  # seconds between two batches of messages on one stream: at most two a second
WRITE_TIMEOUT = 10.0  # seconds a browser may take to take one batch before it is cut off


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLimits:
    """How many streams may be open, and how they keep proxies from cutting them."""

    per_session: int = 4
    """Open streams one portal session may have (a tab holds one or two)."""
    total: int = 256
    """Open streams on this node, all sessions together (well under http_server.max_connections)."""
    keepalive: float = 15.0
    """Seconds between keepalive comments; the session and the scope are checked as often."""
    retry_ms: int = 3000
    """The reconnection delay the browser is told (the SSE ``retry:`` field), in milliseconds."""

    def __post_init__(self) -> None:
        if self.per_session < 1 or self.total < self.per_session:
            raise ValueError("stream limits: 1 <= per_session <= total")
        if not 0 < self.keepalive <= 300 or self.retry_ms < 0:
            raise ValueError("stream limits: keepalive in (0, 300] s, retry_ms >= 0")


class _Stream:
    """One open stream: woken by new changes, by shutdown, or by its timers."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()

    def close(self) -> None:
        self.closed.set()
        self.wake.set()


class Streams:
    """The open streams of one portal: counted per session and in total, closed at shutdown.

    ``limits`` may be replaced while serving; it applies to streams opened afterwards.
    """

    def __init__(self, limits: StreamLimits | None = None) -> None:
        self.limits = limits or StreamLimits()
        self._by_session: dict[str, set[_Stream]] = {}
        self._count = 0
        self._closing = False

    @property
    def open(self) -> int:
        return self._count

    def admit(self, session_id: str) -> _Stream:
        limits = self.limits
        if self._closing:
            raise UnavailableError("convoyd is shutting down; live updates stop until it is back.")
        mine = self._by_session.setdefault(session_id, set())
        if len(mine) >= limits.per_session:
            raise ResourceExhaustedError(
                f"This portal session already has {limits.per_session} live update streams open,"
                " the most it may have. Close another portal tab, or reload this page later;"
                " the page works without live updates."
            )
        if self._count >= limits.total:
            raise ResourceExhaustedError(
                f"convoyd is serving the most live update streams it allows ({limits.total})."
                " Reload the page to see new changes; it works without live updates."
            )
        stream = _Stream(session_id)
        mine.add(stream)
        self._count += 1
        return stream

    def release(self, stream: _Stream) -> None:
        mine = self._by_session.get(stream.session_id)
        if mine is None or stream not in mine:
            return
        mine.discard(stream)
        self._count -= 1
        if not mine:
            del self._by_session[stream.session_id]

    async def close(self, app: web.Application | None = None) -> None:
        """Ends every stream (the portal app's on_shutdown: before aiohttp waits on handlers)."""
        self._closing = True
        for streams in self._by_session.values():
            for stream in streams:
                stream.close()


STREAMS: web.AppKey[Streams] = web.AppKey("portal_streams", Streams)


def install(app: web.Application, limits: StreamLimits | None = None) -> None:
    """The two stream routes (GET only: a HEAD must not hold a stream open) and their registry."""
    streams = Streams(limits)
    app[STREAMS] = streams
    app.on_shutdown.append(streams.close)
    app.router.add_get("/stream/deliveries", deliveries, allow_head=False)
    app.router.add_get("/stream/deliveries/{delivery_id}", delivery, allow_head=False)


def matches(query: DeliveryQuery, d: Delivery) -> bool:
    """Whether the deliveries page with ``query`` lists ``d`` (the store's filters, in memory)."""
    if query.endpoint_ids and d.endpoint_id not in query.endpoint_ids:
        return False
    if query.statuses and d.status not in query.statuses:
        return False
    if query.event_type and d.event_type != query.event_type:
        return False
    if query.created_after is not None and d.created_at < query.created_after:
        return False
    return query.created_before is None or d.created_at < query.created_before


def message(d: Delivery) -> bytes:
    """One SSE message: a delivery's committed change."""
    data = {
        "delivery_id": d.id,
        "endpoint_id": d.endpoint_id,
        "event_type": d.event_type,
        "status": d.status.value,
        "attempt_count": d.attempt_count,
        "last_http_status": d.last_http_status,
    }
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Watch:
    """What one stream watches: the feed's coarse filter, then the page's exact one."""

    endpoint_id: str = ""
    statuses: frozenset[DeliveryStatus] = frozenset()
    wanted: Callable[[Delivery], bool]


async def deliveries(request: web.Request) -> web.StreamResponse:
    """GET /portal/stream/deliveries?<the deliveries page's filters>."""
    who, svc = viewer(request), services(request)
    q = request.query
    filters = forms.DeliveryFilters(
        status=q.get("status", ""),
        endpoint=q.get("endpoint", ""),
        event_type=q.get("event_type", ""),
        since=q.get("since", ""),
        until=q.get("until", ""),
    )
    # The page's own parsing: a filter it refuses (400) or an endpoint outside the scope (404)
    # is refused here the same way.
    query = views._query(filters)
    for endpoint_id in query.endpoint_ids:
        await scope.endpoint(svc, who.link, endpoint_id)
    link = who.link
    single = query.endpoint_ids[0] if query.endpoint_ids else ""
    if not single and len(link.endpoint_ids) == 1:
        single = link.endpoint_ids[0]
    watch = _Watch(
        endpoint_id=single,
        statuses=frozenset(query.statuses),
        wanted=lambda d: matches(query, d),
    )
    return await _serve(request, who, svc, watch)


async def delivery(request: web.Request) -> web.StreamResponse:
    """GET /portal/stream/deliveries/<delivery_id>: that delivery's changes."""
    who, svc = viewer(request), services(request)
    found, _ = await scope.delivery(svc, who.link, request.match_info["delivery_id"])
    watch = _Watch(endpoint_id=found.endpoint_id, wanted=lambda d: d.id == found.id)
    return await _serve(request, who, svc, watch)


class _Scope:
    """Whether an endpoint is in the link's scope now, asked of the store once per keepalive
    (an owner's endpoint may move to another owner: its changes stop with the next check)."""

    def __init__(self, svc: PortalServices, link: PortalLink) -> None:
        self._svc, self._link = svc, link
        self._known: dict[str, bool] = {}

    def forget(self) -> None:
        self._known.clear()

    async def covers(self, endpoint_id: str) -> bool:
        link = self._link
        if link.all_owners:
            return True
        if link.endpoint_ids:
            return endpoint_id in link.endpoint_ids
        known = self._known.get(endpoint_id)
        if known is None:
            try:
                await scope.endpoint(self._svc, link, endpoint_id)
                known = True
            except NotFoundError:
                known = False
            self._known[endpoint_id] = known
        return known


async def _pump(
    changes: AsyncIterator[StatusUpdate],
    watch: _Watch,
    link: PortalLink,
    batch: dict[str, Delivery],
    stream: _Stream,
) -> None:
    """The feed's changes this stream wants into ``batch`` (the latest per delivery)."""
    listed = link.endpoint_ids  # a list of endpoints: the others' changes need not queue up
    async for change in changes:
        if not isinstance(change, Delivery) or (listed and change.endpoint_id not in listed):
            continue
        if watch.wanted(change):
            batch.pop(change.id, None)
            batch[change.id] = change
            stream.wake.set()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _serve(
    request: web.Request, who: Viewer, svc: PortalServices, watch: _Watch
) -> web.StreamResponse:
    streams = request.app[STREAMS]
    stream = streams.admit(who.session.id)  # 429 past the bounds, via the portal's error page
    try:
        changes = svc.deliveries.watch(
            endpoint_id=watch.endpoint_id,
            owner_id=who.link.owner_id,
            statuses=watch.statuses,
        )
        batch: dict[str, Delivery] = {}
        pump = asyncio.create_task(
            _pump(changes, watch, who.link, batch, stream), name="portal-stream"
        )
        try:
            # The pump's first step subscribes to the feed: done before the browser hears
            # that its stream is open, so no change committed after that is missed.
            await asyncio.sleep(0)
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "X-Accel-Buffering": "no",  # nginx: pass each message on at once
                }
            )
            # The headers middleware's work, here: a streamed response's headers go out now.
            security.secure(request, response)
            await response.prepare(request)
            try:
                await _run(request, response, who, svc, streams.limits, stream, batch, pump)
            except Exception:  # the response is under way: no error page can follow it
                log.exception("portal stream failed")
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConvoydError):
                await pump
        return response
    finally:
        streams.release(stream)


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> bool:
    """Sends ``data``; False when the browser is gone or does not take it in time."""
    try:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await response.write(data)
    except (ConnectionError, TimeoutError):
        response.force_close()
        if request.transport is not None:
            request.transport.abort()
        return False
    return True


async def _session_lives(svc: PortalServices, request: web.Request) -> bool:
    try:
        await svc.links.session(security.session_cookie(request))
    except ConvoydError:  # ended, revoked, expired; or the store cannot say: end it either way
        return False
    return True


async def _run(
    request: web.Request,
    response: web.StreamResponse,
    who: Viewer,
    svc: PortalServices,
    limits: StreamLimits,
    stream: _Stream,
    batch: dict[str, Delivery],
    pump: asyncio.Task[None],
) -> None:
    """Until the session ends, the browser goes, the feed ends (shutdown) or convoyd stops:
    batches of messages at most every MIN_GAP, and every keepalive seconds a comment (for
    proxies) after the session and the scope are checked again."""
    loop = asyncio.get_running_loop()
    in_scope = _Scope(svc, who.link)
    ends_at = loop.time() + (who.session.expires_at - svc.clock())
    if not await _write(request, response, f"retry: {limits.retry_ms}\n: live\n\n".encode()):
        return
    now = loop.time()
    beat_at, sent_at = now + limits.keepalive, -math.inf
    while not (stream.closed.is_set() or pump.done() or _gone(request)):
        now = loop.time()
        if now >= ends_at:
            return
        if batch and now >= sent_at + MIN_GAP:
            taken = list(batch.values())
            batch.clear()
            if not await _session_lives(svc, request):
                return
            try:
                shown = [d for d in taken if await in_scope.covers(d.endpoint_id)]
            except ConvoydError:  # the store cannot answer: the browser reconnects later
                return
            if shown and not await _write(request, response, b"".join(map(message, shown))):
                return
            sent_at = now  # the keepalive stays on its beat: it re-checks the scope too
            continue
        if now >= beat_at:
            if not await _session_lives(svc, request):
                return
            in_scope.forget()
            if not await _write(request, response, b": keepalive\n\n"):
                return
            beat_at = now + limits.keepalive
            continue
        deadline = min(now + CHECK_EVERY, beat_at, ends_at)
        # With a batch waiting for its turn, new changes need not wake the loop.
        if batch:
            deadline = min(deadline, sent_at + MIN_GAP)
        await _wait(stream.closed if batch else stream.wake, deadline - now)
        stream.wake.clear()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
