"""Writes attempt outcomes to the store in batches and tells watchers what changed.

An attempt does not wait for its outcome to be durable: if convoyd dies first, the delivery
is still pending in the store and is sent again after the restart (at-least-once, DESIGN §4).
That keeps one fsync per batch instead of one per delivery. Watchers only ever see changes
that are committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from convoyd.core.model import Delivery
from convoyd.errors import ResourceExhaustedError, UnavailableError
from convoyd.store.base import AttemptRecord, Store

log = logging.getLogger(__name__)

Listener = Callable[[list[Delivery]], None]


class Recorder:
    def __init__(self, store: Store) -> None:
        self._store = store
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

    def record(self, item: AttemptRecord) -> None:
        delivery_id = item.delivery.id
        if item.attempt is None:
            self._processing[delivery_id] = len(self._buffer)
        else:
            at = self._processing.pop(delivery_id, None)
            if at is not None:
                self._buffer[at] = item
                return
        self._buffer.append(item)
        self._idle.clear()
        self._has_items.set()

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
        """Stores the batch record by record; returns those stored, logs and drops the rest.

        A dropped outcome leaves its delivery pending in the store: it is sent again after a
        restart, so at-least-once holds; only its attempt log entry is lost.
        """
        stored = []
        for item in batch:
            try:
                await self._store.record([item])
            except Exception:
                log.exception("dropping the outcome of delivery %s", item.delivery.id)
            else:
                stored.append(item)
        return stored

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._has_items.wait()
            self._has_items.clear()
            batch, self._buffer = self._buffer, []
            self._processing.clear()
            try:
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
