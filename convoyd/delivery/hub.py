"""Live fan-out of committed changes to WatchDeliveries streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from convoyd.core.watch import StatusUpdate
from convoyd.errors import ResourceExhaustedError


class _Subscriber:
    def __init__(self, accept: Callable[[StatusUpdate], bool], capacity: int) -> None:
        self.accept = accept
        self.queue: asyncio.Queue[StatusUpdate | None] = asyncio.Queue(capacity)
        self.overflowed = False


class WatchHub:
    """Every subscriber gets every matching change, in commit order.

    A subscriber that falls more than ``capacity`` changes behind is ended with
    RESOURCE_EXHAUSTED rather than slowing convoyd down or growing without bound.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._subscribers: set[_Subscriber] = set()

    @property
    def watching(self) -> bool:
        """Whether any stream is open (a cluster node then asks the others for theirs)."""
        return bool(self._subscribers)

    def publish(self, changes: Sequence[StatusUpdate]) -> None:
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

    async def watch(self, accept: Callable[[StatusUpdate], bool]) -> AsyncIterator[StatusUpdate]:
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
