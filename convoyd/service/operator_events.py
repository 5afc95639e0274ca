"""Operator events: convoyd tells one owner's endpoints when other endpoints go bad.

The observers run on the paths that make the changes (endpoint status changes on their way to
the feed, the recorder's committed outcomes, the engine's breaker) and only queue a note: they
never wait and never fail what they observe. One background task turns each note into an
ordinary event of the operator owner through ``EventManager.create``, so it is signed, retried,
listed in the portal and filtered by event_types like any other. docs/operator-events.md has
the types and the payload.

Each note is seen once in a cluster: status changes are observed on the feed the node's own
services write to (never on what other nodes broadcast), outcomes on the node's own recorder,
breakers in the node's own engine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from convoyd.core.model import (
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
    EndpointStatusChange,
    EventInput,
)
from convoyd.core.watch import StatusUpdate, WatchFilter
from convoyd.errors import ConvoydError, NotFoundError, ResourceExhaustedError, UnavailableError
from convoyd.service.feed import WorkFeed
from convoyd.store.base import IngestWrite

log = logging.getLogger(__name__)

DISABLED = "convoyd.endpoint.disabled"
ENABLED = "convoyd.endpoint.enabled"
PAUSED = "convoyd.endpoint.paused"
RESUMED = "convoyd.endpoint.resumed"
CIRCUIT_OPENED = "convoyd.endpoint.circuit_opened"
EXHAUSTED = "convoyd.delivery.exhausted"
EVENT_TYPES = (DISABLED, ENABLED, PAUSED, RESUMED, CIRCUIT_OPENED, EXHAUSTED)

QUEUE_SIZE = 10_000  # notes waiting to be ingested; past it they are dropped with a warning
MAX_BREAKERS_TRACKED = 10_000  # endpoints whose last circuit_opened time is remembered
RETRY_FIRST = 0.1  # seconds before ingesting again after UNAVAILABLE, doubling...
RETRY_MAX = 5.0  # ...up to this
GONE_STATUS = 410  # always the GONE verdict (convoyd/core/outcome.py): endpoint.disabled
_NO_ATTEMPTS_LEFT = "; no attempts left"  # how core/lifecycle.py ends an exhausted reason


@dataclass(frozen=True, slots=True, kw_only=True)
class _Note:
    """One operator event to ingest, as far as the observing path knows it."""

    event_type: str
    endpoint_id: str
    owner_id: str
    at: float
    reason: str
    status: EndpointStatus | None = None  # None: the endpoint's status when ingested
    endpoint: Endpoint | None = None  # None: read from the store when ingested
    extra: dict[str, Any] = field(default_factory=dict)


def rfc3339(at: float) -> str:
    """``at`` (Unix seconds) as RFC 3339 UTC with milliseconds: 2025-01-31T12:00:00.123Z."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_event(change: EndpointStatusChange) -> str | None:
    """The operator event a status change is, if any (INACTIVE → PENDING, a probe, is none)."""
    if change.status is EndpointStatus.INACTIVE:
        return DISABLED
    if change.status is EndpointStatus.PAUSED:
        return PAUSED
    if change.status is EndpointStatus.ACTIVE:
        return RESUMED if change.previous is EndpointStatus.PAUSED else ENABLED
    return None


def _exhausted(delivery: Delivery) -> bool:
    """FAILURE after the last attempt allowed; a 410 also ends in FAILURE, but that is the
    endpoint's doing and is told as endpoint.disabled."""
    return delivery.status is DeliveryStatus.FAILURE and delivery.last_http_status != GONE_STATUS


def payload(note: _Note, endpoint: Endpoint | None) -> bytes:
    """The event's JSON body. Only the endpoint's id, owner, name and URL: never a secret, an
    auth value or a header."""
    spec = endpoint.spec if endpoint is not None else None
    status = note.status or (endpoint.status if endpoint is not None else None)
    body: dict[str, Any] = {
        "type": note.event_type,
        "time": rfc3339(note.at),
        "endpoint": {
            "id": note.endpoint_id,
            "owner_id": spec.owner_id if spec is not None else note.owner_id,
            "name": spec.name if spec is not None else "",
            "url": spec.url if spec is not None else "",
        },
        "status": status.value if status is not None else "",
        "reason": note.reason,
        **note.extra,
    }
    return json.dumps(body, separators=(",", ":")).encode()


class OperatorEvents:
    """Queues operator events from synchronous observers and ingests them in the background.

    ``owner_id`` and ``cooldown`` are read on every use, so a reload applies at once;
    ``ingest`` and ``lookup`` are EventManager.create and Store.get_endpoint (callables, so that
    the composition root can build this before them)."""

    def __init__(
        self,
        *,
        owner_id: Callable[[], str],
        cooldown: Callable[[], float],
        clock: Callable[[], float],
        rng: random.Random,
        ingest: Callable[[Sequence[EventInput]], Awaitable[object]],
        lookup: Callable[[str], Awaitable[Endpoint]],
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._owner_id = owner_id
        self._cooldown = cooldown
        self._clock = clock
        self._rng = rng
        self._ingest = ingest
        self._lookup = lookup
        self._queue: asyncio.Queue[_Note] = asyncio.Queue(queue_size)
        # endpoint id -> when its last circuit_opened was queued, oldest first.
        self._opened_at: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    # -- observers (synchronous, never raise into the observed path) -----------------------

    def observe(self, feed: WorkFeed) -> WorkFeed:
        """``feed`` as the services write to it, with endpoint status changes observed."""
        return _ObservingFeed(feed, self)

    def status_changed(self, changes: Sequence[StatusUpdate]) -> None:
        """Committed updates on their way to the feed: the endpoint status changes among them."""
        for change in changes:
            if not isinstance(change, EndpointStatusChange) or not self._about(change.owner_id):
                continue
            event_type = _status_event(change)
            if event_type is not None:
                self._put(
                    _Note(
                        event_type=event_type,
                        endpoint_id=change.endpoint_id,
                        owner_id=change.owner_id,
                        at=change.changed_at,
                        reason=change.reason,
                        status=change.status,
                        extra={"previous_status": change.previous.value},
                    )
                )

    def deliveries_recorded(self, deliveries: list[Delivery]) -> None:
        """The recorder's listener: committed outcomes, among them exhausted deliveries."""
        for d in deliveries:
            if not _exhausted(d) or not self._about(d.owner_id):
                continue
            self._put(
                _Note(
                    event_type=EXHAUSTED,
                    endpoint_id=d.endpoint_id,
                    owner_id=d.owner_id,
                    at=d.updated_at,
                    reason=d.status_reason,
                    extra={
                        "delivery_id": d.id,
                        "event_id": d.event_id,
                        "event_type": d.event_type,
                        "attempt_count": d.attempt_count,
                        "last_http_status": d.last_http_status,
                        "last_error": d.status_reason.removesuffix(_NO_ATTEMPTS_LEFT),
                    },
                )
            )

    def breaker_opened(self, endpoint: Endpoint) -> None:
        """The engine's hook: ``endpoint``'s breaker opened. Told at most once per cooldown
        per endpoint, since a breaker that keeps failing its probes opens again and again."""
        if not self._about(endpoint.spec.owner_id):
            return
        now = self._clock()
        if not self._first_in_cooldown(endpoint.id, now):
            return
        self._put(
            _Note(
                event_type=CIRCUIT_OPENED,
                endpoint_id=endpoint.id,
                owner_id=endpoint.spec.owner_id,
                at=now,
                reason="the circuit breaker opened: attempts are held back until a probe succeeds",
                endpoint=endpoint,
            )
        )

    def _about(self, owner_id: str) -> bool:
        """Whether changes of an endpoint of ``owner_id`` are told: operator events are on,
        and the endpoint is not one of the operator's own (no event about an event)."""
        operator = self._owner_id()
        return bool(operator) and owner_id != operator

    def _first_in_cooldown(self, endpoint_id: str, now: float) -> bool:
        """Remembers ``now`` for ``endpoint_id`` unless it was told less than a cooldown ago.
        Times older than a cooldown are forgotten, and at most MAX_BREAKERS_TRACKED kept."""
        since = now - self._cooldown()
        opened = self._opened_at
        while opened and next(iter(opened.values())) <= since:
            opened.popitem(last=False)
        if endpoint_id in opened:
            return False
        opened[endpoint_id] = now
        while len(opened) > MAX_BREAKERS_TRACKED:
            opened.popitem(last=False)
        return True

    def _put(self, note: _Note) -> None:
        try:
            self._queue.put_nowait(note)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "operator event dropped: the queue is full",
                extra={"type": note.event_type, "endpoint_id": note.endpoint_id},
            )

    # -- ingesting ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="convoyd-operator-events")

    async def stop(self, grace: float) -> None:
        """Ingests what is queued for up to ``grace`` seconds, then stops; what is left is lost
        (logged), as the changes it tells of are already durable."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if left := self._queue.qsize():
            log.warning("%d operator events not ingested at shutdown", left)

    async def _run(self) -> None:
        while True:
            note = await self._queue.get()
            try:
                await self._ingest_one(note)
            except Exception:  # a bug must not stop the ones after it
                log.exception("operator event %s failed", note.event_type)
            finally:
                self._queue.task_done()

    async def _ingest_one(self, note: _Note) -> None:
        """Ingests ``note``, again and again while the store is unavailable; one idempotency
        key for all the tries, so a commit whose answer was lost is not ingested twice."""
        key = f"convoyd-operator-{self._rng.getrandbits(96):024x}"
        delay = RETRY_FIRST
        while True:
            owner = self._owner_id()
            if not owner or owner == note.owner_id:
                return  # turned off, or made this endpoint's owner, by a reload meanwhile
            try:
                await self._ingest([await self._event(note, owner, key)])
                return
            except (UnavailableError, ResourceExhaustedError) as exc:
                log.warning("operator event %s: %s; trying again", note.event_type, exc)
            except ConvoydError as exc:
                log.error("operator event %s dropped: %s", note.event_type, exc)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _event(self, note: _Note, operator: str, key: str) -> EventInput:
        endpoint = note.endpoint
        if endpoint is None:
            try:
                endpoint = await self._lookup(note.endpoint_id)
            except NotFoundError:
                endpoint = None  # deleted since: told with its id alone
        return EventInput(
            owner_id=operator,
            event_type=note.event_type,
            data=payload(note, endpoint),
            idempotency_key=key,
        )


class _ObservingFeed:
    """A WorkFeed that hands what it passes on to the operator events as well."""

    def __init__(self, inner: WorkFeed, observer: OperatorEvents) -> None:
        self._inner = inner
        self._observer = observer

    def events_accepted(self, writes: Sequence[IngestWrite]) -> None:
        self._inner.events_accepted(writes)

    def deliveries_due(self, deliveries: Sequence[Delivery]) -> None:
        self._inner.deliveries_due(deliveries)

    def endpoints_changed(self, endpoints: Sequence[Endpoint]) -> None:
        self._inner.endpoints_changed(endpoints)

    def endpoints_deleted(self, endpoint_ids: Sequence[str]) -> None:
        self._inner.endpoints_deleted(endpoint_ids)

    def committed(self, updates: Sequence[StatusUpdate]) -> None:
        self._inner.committed(updates)
        try:
            self._observer.status_changed(updates)
        except Exception:  # the change is committed and passed on; telling it is secondary
            log.exception("observing endpoint status changes failed")

    def watch(self, accept: WatchFilter) -> AsyncIterator[StatusUpdate]:
        return self._inner.watch(accept)
