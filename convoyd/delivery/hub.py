"""Live fan-out of committed changes to WatchDeliveries streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from convoyd.core.model import Delivery, EndpointStatusChange
from convoyd.errors import ResourceExhaustedError

Change = Delivery | EndpointStatusChange


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchFilter:
    endpoint_id: str = ""
    owner_id: str = ""
    statuses: frozenset[str] = frozenset()

    def __call__(self, change: Change) -> bool:
        if self.endpoint_id and change.endpoint_id != self.endpoint_id:
            return False
        if self.owner_id and change.owner_id != self.owner_id:
            return False
        if isinstance(change, Delivery) and self.statuses:
            return change.status.value in self.statuses
        return True


class _Subscriber:
    def __init__(self, accept: Callable[[Change], bool], capacity: int) -> None:
        self.accept = accept
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(capacity)
        self.overflowed = False


class WatchHub:
    """Every subscriber gets every matching change, in commit order.

    A subscriber that falls more than ``capacity`` changes behind is ended with
    RESOURCE_EXHAUSTED rather than slowing convoyd down or growing without bound.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._subscribers: set[_Subscriber] = set()

    def publish(self, changes: list[Delivery] | list[EndpointStatusChange]) -> None:
        for sub in list(self._subscribers):
            if sub.overflowed:
                continue
            for change in changes:
                if not sub.accept(change):
                    continue
                try:
                    sub.queue.put_nowait(change)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    break

    def close(self) -> None:
        """Ends every stream (at shutdown)."""
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.overflowed = True

    async def watch(self, accept: Callable[[Change], bool]) -> AsyncIterator[Change]:
        sub = _Subscriber(accept, self._capacity)
        self._subscribers.add(sub)
        try:
            while True:
                if sub.overflowed and sub.queue.empty():
                    raise ResourceExhaustedError(
                        "the watcher fell too far behind and was ended; watch again"
                    )
                change = await sub.queue.get()
                if change is None:
                    return
                yield change
        finally:
            self._subscribers.discard(sub)
