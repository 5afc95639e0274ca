"""Writes attempt outcomes to the store in batches and tells watchers what changed.

An attempt does not wait for its outcome to be durable: if convoyd dies first, the delivery
is still pending in the store and is sent again after the restart (at-least-once,
architecture.md §2). That keeps one fsync per batch instead of one per delivery. Watchers only
ever see changes that are committed.

PROCESSING is written only for an attempt still running ``processing_after`` seconds after it
started. Most attempts end well before that: their delivery goes from SCHEDULED (or RETRY)
straight to its outcome, and the store does one update per attempt instead of two. Both
states mean the same after a crash (the delivery is sent again), so nothing is lost by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from convoyd.core.model import Delivery, DeliveryStatus
from convoyd.errors import ResourceExhaustedError, UnavailableError
from convoyd.store.base import AttemptRecord, DeliveryStore
from convoyd.telemetry.base import NO_TRACING, Tracing

log = logging.getLogger(__name__)

Listener = Callable[[list[Delivery]], None]
PROCESSING_AFTER = 1.0


class Recorder:
    def __init__(
        self,
        store: DeliveryStore,
        *,
        clock: Callable[[], float] | None = None,
        processing_after: float = PROCESSING_AFTER,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        """``tracing``: each batch write is a span of its own."""
        self._store = store
        self._tracing = tracing
        self._clock = clock or time.time
        self._processing_after = processing_after
        # Attempts running and not yet marked PROCESSING, oldest first: delivery id ->
        # (the delivery as it was when the attempt started, when it started).
        self._running: dict[str, tuple[Delivery, float]] = {}
        self._buffer: list[AttemptRecord] = []
        # Where a not-yet-written PROCESSING record of a delivery sits in the buffer: when the
        # outcome follows before the write, it takes that place and PROCESSING is never written.
        self._processing: dict[str, int] = {}
        self._has_items = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="convoyd-recorder")

    def started(self, delivery: Delivery, at: float) -> None:
        """An attempt of ``delivery`` started at ``at`` (the recorder's clock)."""
        self._running[delivery.id] = (delivery, at)

    def abandon(self, delivery_id: str) -> None:
        """An attempt of ``delivery_id`` ended with no outcome to record (only a bug does that):
        it is not shown as PROCESSING; the delivery stays as the store has it."""
        self._running.pop(delivery_id, None)

    def record(self, item: AttemptRecord) -> None:
        delivery_id = item.delivery.id
        if item.attempt is None:
            self._processing[delivery_id] = len(self._buffer)
        elif self._running.pop(delivery_id, None) is None:
            # Shown as PROCESSING already; while that is not yet written, the outcome takes
            # its place. (Found in _running: it ended before it was due to show as PROCESSING.)
            at = self._processing.pop(delivery_id, None)
            if at is not None:
                self._buffer[at] = item
                return
        self._buffer.append(item)
        self._idle.clear()
        self._has_items.set()

    def _mark_processing(self) -> None:
        """Moves the attempts running for ``processing_after`` or longer into the buffer."""
        due = self._clock() - self._processing_after
        while self._running:
            delivery_id, (d, at) = next(iter(self._running.items()))
            if at > due:
                break
            del self._running[delivery_id]
            processing = dataclasses.replace(d, status=DeliveryStatus.PROCESSING, updated_at=at)
            self.record(AttemptRecord(attempt=None, delivery=processing))

    async def _next_batch(self) -> None:
        """Waits for records, or until the oldest running attempt is due to show PROCESSING."""
        while True:
            if self._running:
                first = next(iter(self._running.values()))[1]
                wait = first + self._processing_after - self._clock()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._has_items.wait(), wait)
                self._mark_processing()
            else:
                await self._has_items.wait()
            if self._has_items.is_set():
                return

    async def flush(self) -> None:
        """Waits until everything recorded so far is committed."""
        await self._idle.wait()

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _record_one_by_one(self, batch: list[AttemptRecord]) -> list[AttemptRecord]:
        """Stores the batch record by record; returns those stored.

        A record the store refuses is stored again without its request and response details
        (a header the database cannot take, say): the delivery's new state must be durable, or
        it would be pending in the store while the engine has moved on. Only when that fails
        too is the outcome logged and dropped; the delivery is then sent again after a restart,
        so at-least-once still holds.
        """
        stored = []
        for item in batch:
            try:
                await self._store.record([item])
            except Exception:
                if item.attempt is None:
                    log.exception("dropping the outcome of delivery %s", item.delivery.id)
                    continue
                log.exception(
                    "storing the attempt of delivery %s without details", item.delivery.id
                )
            else:
                stored.append(item)
                continue
            bare = _bare(item)
            try:
                await self._store.record([bare])
            except Exception:
                log.exception("dropping the outcome of delivery %s", item.delivery.id)
            else:
                stored.append(bare)
        return stored

    async def _run(self) -> None:
        while True:
            try:
                await self._record_batches()
            except Exception:
                # A bug must not stop every outcome from being stored (and flush() from ever
                # returning): log it and go on with what is buffered.
                log.exception("the delivery recorder failed; restarting it")
                await asyncio.sleep(0.5)
                if self._buffer:
                    self._has_items.set()
                else:
                    self._idle.set()

    async def _record_batches(self) -> None:
        backoff = 0.05
        while True:
            await self._next_batch()
            self._has_items.clear()
            batch, self._buffer = self._buffer, []
            self._processing.clear()
            try:
                with self._tracing.store_write("record", len(batch)):
                    await self._store.record(batch)
            except (ResourceExhaustedError, UnavailableError) as exc:
                # Keep the outcomes and try again; until then they are only in memory, which
                # is safe: the deliveries stay pending in the store and would be re-sent.
                log.error("could not store %d delivery outcomes: %s", len(batch), exc)
                self._buffer[:0] = batch
                self._processing = {
                    r.delivery.id: i for i, r in enumerate(self._buffer) if r.attempt is None
                }
                self._has_items.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            except Exception:
                # Not a passing condition: one bad record must not hold back all the others.
                batch = await self._record_one_by_one(batch)
            backoff = 0.05
            if self._buffer:
                self._has_items.set()
            else:
                self._idle.set()
            changed = [item.delivery for item in batch]
            for listener in self._listeners:
                try:
                    listener(changed)
                except Exception:
                    log.exception("delivery listener failed")


def _bare(item: AttemptRecord) -> AttemptRecord:
    """``item`` without the attempt's headers and body: what the store can always take."""
    attempt = item.attempt
    if attempt is None:
        return item
    bare = dataclasses.replace(
        attempt,
        request_headers=(),
        response_headers=(),
        response_body=b"",
        response_body_truncated=False,
        error=attempt.error.encode("utf-8", "replace").decode("utf-8"),
    )
    return AttemptRecord(attempt=bare, delivery=item.delivery)
