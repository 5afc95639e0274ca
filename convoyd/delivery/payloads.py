"""Event bodies for the engine: kept while memory allows, loaded from the store in batches."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from convoyd.store.base import DeliveryStore, Payload


class PayloadCache:
    """An LRU of event payloads bounded in bytes.

    A fan-out shares one body across all its deliveries; a backlog larger than the budget
    costs a batched read per group of misses (every miss waiting at the same moment is
    loaded by one query), never a read per delivery.
    """

    def __init__(self, store: DeliveryStore, *, budget_bytes: int = 64 * 1024 * 1024) -> None:
        self._store = store
        self._budget = budget_bytes
        self._size = 0
        self._items: OrderedDict[str, Payload] = OrderedDict()
        self._waiting: dict[str, list[asyncio.Future[Payload | None]]] = {}
        self._loader: asyncio.Task[None] | None = None

    def put(self, event_id: str, payload: Payload) -> None:
        if event_id in self._items:
            self._items.move_to_end(event_id)
            return
        self._items[event_id] = payload
        self._size += len(payload.data)
        while self._size > self._budget and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted.data)

    async def get(self, event_id: str) -> Payload | None:
        """The payload, or None if the event no longer exists."""
        payload = self._items.get(event_id)
        if payload is not None:
            self._items.move_to_end(event_id)
            return payload
        future: asyncio.Future[Payload | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(event_id, []).append(future)
        if self._loader is None or self._loader.done():
            self._loader = asyncio.create_task(self._load())
        return await future

    async def _load_one(self, event_id: str) -> None:
        futures = self._waiting.pop(event_id, [])
        try:
            payload = (await self._store.load_payloads([event_id])).get(event_id)
        except Exception as exc:
            for f in futures:
                if not f.done():
                    f.set_exception(exc)
            return
        if payload is not None:
            self.put(event_id, payload)
        for f in futures:
            if not f.done():
                f.set_result(payload)

    async def _load(self) -> None:
        # Let every attempt started in this loop iteration register its miss first.
        await asyncio.sleep(0)
        while self._waiting:
            waiting, self._waiting = self._waiting, {}
            try:
                found = await self._store.load_payloads(list(waiting))
            except Exception as exc:
                if len(waiting) == 1:
                    for f in next(iter(waiting.values())):
                        if not f.done():
                            f.set_exception(exc)
                    continue
                # One unreadable row must not fail every attempt waiting with it: ask again one
                # by one (each attempt whose own body cannot be loaded then fails alone).
                for event_id, futures in waiting.items():
                    self._waiting.setdefault(event_id, []).extend(futures)
                    await self._load_one(event_id)
                continue
            for event_id, futures in waiting.items():
                payload = found.get(event_id)
                if payload is not None:
                    self.put(event_id, payload)
                for f in futures:
                    if not f.done():
                        f.set_result(payload)
