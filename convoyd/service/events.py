"""Accepting events: validation, idempotency, routing to endpoints, one durable commit."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from convoyd.core import routing
from convoyd.core.ids import MonotonicIds
from convoyd.core.model import Delivery, DeliveryStatus, Endpoint, Event, EventInput, Page
from convoyd.core.tracecontext import EventTrace, TraceParent
from convoyd.core.validation import (
    Limits,
    event_violations,
    excerpt,
    filter_violations,
    require_id,
)
from convoyd.errors import AlreadyExistsError, NotFoundError, ValidationError
from convoyd.service.feed import WorkFeed
from convoyd.service.listing import page_of
from convoyd.store.base import EventQuery, IngestNeeds, IngestSnapshot, IngestWrite, Store
from convoyd.telemetry.base import NO_TRACING, IngestSpan, Tracing

if TYPE_CHECKING:
    from convoyd.metrics import Metrics

Clock = Callable[[], float]

MAX_BATCH = 1000
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_IDEMPOTENCY_WINDOW = 24 * 3600.0  # seconds


def payload_hash(event: EventInput) -> bytes:
    """What makes two events with the same idempotency key "the same event"."""
    doc = json.dumps(
        [
            event.event_type,
            sorted(event.endpoint_ids),
            event.owner_id,
            sorted(event.headers.items()),
        ]
    ).encode()
    return hashlib.sha256(doc + b"\0" + event.data).digest()


class EventManager:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        rng: random.Random,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
        limits: Limits | None = None,
        feed: WorkFeed,
        metrics: Metrics | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._store = store
        self._clock = clock
        self._rng = rng
        # Acceptance order is id order (FIFO endpoints deliver in it), within a batch too.
        self._ids = MonotonicIds()
        self._max_payload = max_payload_bytes
        self._window = idempotency_window
        self._limits = limits or Limits()
        self._feed = feed
        self._metrics = metrics
        self._tracing = tracing

    @property
    def tracing(self) -> bool:
        """Whether calls are traced (and their callers' trace context is worth reading)."""
        return self._tracing.enabled

    def set_limits(self, *, max_payload_bytes: int, idempotency_window: float) -> None:
        """New limits (SIGHUP); they apply to the next call."""
        self._max_payload = max_payload_bytes
        self._window = idempotency_window

    async def create(
        self,
        events: Sequence[EventInput],
        *,
        batch: bool = False,
        method: str = "",
        parent: TraceParent | None = None,
        tracestate: str = "",
    ) -> list[Event]:
        """Accepts every event or none; returns only once they are durably stored. With
        tracing on, ``method`` names the RPC and ``parent``/``tracestate`` are the caller's
        trace context, which the events join (docs/tracing.md)."""
        if not self._tracing.enabled:
            return [w.event for w in await self._accept(events, batch, None)]
        span = self._tracing.ingest(method, len(events), parent, tracestate)
        try:
            writes = await self._accept(events, batch, span)
        except BaseException as exc:
            span.end((), exc)
            raise
        span.end(writes)
        return [w.event for w in writes]

    async def _accept(
        self, events: Sequence[EventInput], batch: bool, span: IngestSpan | None
    ) -> list[IngestWrite]:
        if batch and not events:
            raise ValidationError.single("requests", "is empty")
        if len(events) > MAX_BATCH:
            raise ValidationError.single("requests", f"has more than {MAX_BATCH} events")
        violations = []
        for i, event in enumerate(events):
            prefix = f"requests[{i}]." if batch else ""
            violations.extend(
                event_violations(
                    event, max_payload_bytes=self._max_payload, limits=self._limits, prefix=prefix
                )
            )
        if violations:
            raise ValidationError(violations)
        now = self._clock()
        # Only an idempotency key needs the payload's hash (to tell a replay from a conflict).
        hashes = [payload_hash(e) if e.idempotency_key else b"" for e in events]

        traces = span.event_traces(len(events)) if span is not None else [None] * len(events)
        needs = IngestNeeds(
            endpoint_ids=frozenset(i for e in events if not e.owner_id for i in e.endpoint_ids),
            owner_ids=frozenset(e.owner_id for e in events if e.owner_id),
            idempotency_keys=frozenset(e.idempotency_key for e in events if e.idempotency_key),
            idempotency_since=now - self._window,
        )

        def build(reader: IngestSnapshot) -> list[IngestWrite]:
            seen: dict[str, IngestWrite] = {}  # idempotency keys earlier in this same batch
            return [
                self._plan(reader, event, digest, now, f"requests[{i}]" if batch else "", seen, t)
                for i, (event, digest, t) in enumerate(zip(events, hashes, traces, strict=True))
            ]

        if span is None:
            writes = await self._store.ingest(needs, build)
        else:
            with span.store_write():
                writes = await self._store.ingest(needs, build)
        if self._metrics is not None:
            self._metrics.ingested(writes)
        self._feed.events_accepted(writes)
        return writes

    def _plan(
        self,
        reader: IngestSnapshot,
        event: EventInput,
        digest: bytes,
        now: float,
        where: str,
        seen: dict[str, IngestWrite],
        trace: EventTrace | None = None,
    ) -> IngestWrite:
        """What storing ``event`` writes: a replay of the event its idempotency key names, or
        a new event with a delivery to each endpoint it routes to (its trace: ``trace``).
        ``seen`` holds the keys planned earlier in the same batch."""
        key = event.idempotency_key
        if key and (replay := self._replay(reader, key, digest, now, where, seen)) is not None:
            return replay
        targets = _targets(reader, event, where)
        write = self._new_write(event, digest, now, targets, trace)
        if key:
            seen[key] = write
        return write

    def _replay(
        self,
        reader: IngestSnapshot,
        key: str,
        digest: bytes,
        now: float,
        where: str,
        seen: dict[str, IngestWrite],
    ) -> IngestWrite | None:
        """The earlier event with idempotency key ``key`` (in this batch or within the
        window), or None; AlreadyExistsError if its payload differs."""
        earlier = seen.get(key)
        found = (earlier.event, earlier.payload_hash) if earlier else None
        found = found or reader.idempotent_event(key)
        if found is None:
            return None
        original, original_hash = found
        if original_hash != digest:
            raise AlreadyExistsError(
                f"{_prefix(where)}idempotency key {excerpt(key)} was used"
                f" for another event ({original.id}) with a different payload"
            )
        return IngestWrite(event=original, payload_hash=original_hash, replay=True)

    def _new_write(
        self,
        event: EventInput,
        digest: bytes,
        now: float,
        targets: Sequence[Endpoint],
        trace: EventTrace | None,
    ) -> IngestWrite:
        """A new event and its deliveries to those of ``targets`` that take its type."""
        # Drawn before the delivery ids, so a seeded rng keeps giving the same ids.
        event_id = self._ids.new("ev", now, self._rng)
        deliveries = [
            Delivery(
                id=self._ids.new("dl", now, self._rng),
                event_id=event_id,
                endpoint_id=endpoint.id,
                owner_id=endpoint.spec.owner_id,
                event_type=event.event_type,
                status=status,
                status_reason=reason,
                attempt_count=0,
                next_attempt_at=now if status is DeliveryStatus.SCHEDULED else None,
                last_attempt_at=None,
                last_http_status=0,
                created_at=now,
                updated_at=now,
            )
            for endpoint, status, reason in routing.plan(targets, event.event_type)
        ]
        return IngestWrite(
            event=Event(
                id=event_id,
                event_type=event.event_type,
                data=event.data,
                idempotency_key=event.idempotency_key,
                endpoint_ids=tuple(event.endpoint_ids),
                owner_id=event.owner_id,
                headers=dict(event.headers),
                created_at=now,
                delivery_count=len(deliveries),
                trace=trace,
            ),
            payload_hash=digest,
            deliveries=deliveries,
        )

    async def get(self, event_id: str) -> Event:
        require_id("ev", event_id, "event_id")
        return await self._store.get_event(event_id)

    async def list(
        self, query: EventQuery, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Event]:
        filter_violations(
            endpoint_ids=[("endpoint_id", query.endpoint_id)],
            owner_ids=[("owner_id", query.owner_id)],
            event_types=[("event_type", query.event_type)],
        )
        return await page_of(
            ("events", query),
            page_size,
            page_token,
            lambda after, limit: self._store.list_events(query, before_id=after, limit=limit),
        )


def _prefix(where: str) -> str:
    """``where`` (e.g. "requests[3]") as the start of an error message, or nothing."""
    return f"{where}: " if where else ""


def _targets(reader: IngestSnapshot, event: EventInput, where: str) -> list[Endpoint]:
    """The endpoints ``event`` is addressed to: its owner's, or those it names (all of which
    must exist)."""
    if event.owner_id:
        return reader.owner_endpoints(event.owner_id)
    found_by_id = reader.endpoints(event.endpoint_ids)
    missing = [i for i in event.endpoint_ids if i not in found_by_id]
    if missing:
        raise NotFoundError(f"{_prefix(where)}endpoint {missing[0]} not found")
    return [found_by_id[i] for i in event.endpoint_ids]
