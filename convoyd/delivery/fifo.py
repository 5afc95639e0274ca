"""The heads of FIFO lanes: which one delivery of an ordered endpoint may go next.

A FIFO endpoint gets its deliveries one at a time in acceptance order, which is delivery id
order (ids are monotonic ULIDs, convoyd.core.ids). Its head is its pending delivery with the
smallest id, and only the head is ever queued or timed; a head waiting for a retry holds all
the others (head-of-line blocking is the point). The engine does not keep every pending
delivery in memory, so the head comes from the store (``fifo_heads``): when a lane is taken
(start, a shard move, a change to FIFO), when its head has ended and that outcome is
committed, and when a delivery with a smaller id becomes pending again (RetryDelivery and
friends put an old delivery back at the front). Because the head is always the store's, order
holds across a restart, a kill -9 (the head may be sent again, nothing behind it first) and a
shard move. Concurrent lanes never come here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from convoyd.core.model import PENDING_STATUSES, Delivery, DeliveryStatus
from convoyd.delivery.lane import Lane
from convoyd.store.base import DeliveryStore

log = logging.getLogger(__name__)

# A failed read of heads is tried again after this long, doubling up to the cap.
RETRY_FIRST = 0.1
RETRY_CAP = 5.0


class Heads:
    """Reads and keeps the heads of the FIFO lanes in ``lanes`` (the engine's one dict)."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        lanes: Mapping[str, Lane],
        admit: Callable[[Iterable[Delivery]], object],
        forget: Callable[[Lane, str], None],
        ready: Callable[[Lane], None],
        spawn: Callable[[Awaitable[None]], None],
    ) -> None:
        """``admit``: the engine takes a head in (queued or timed); ``forget``: it drops a
        former head still queued or timed; ``ready``: it reconsiders a lane; ``spawn``: runs a
        read in the background (cancelled when the engine stops)."""
        self._store = store
        self._lanes = lanes
        self._admit = admit
        self._forget = forget
        self._ready = ready
        self._spawn = spawn
        # A head whose attempt left memory (it ended, or waits for a retry the sweep brings)
        # -> its lane and attempt count, until that outcome is committed: a read of the store
        # before then still shows it as it was, and must not send it again.
        self._ending: dict[str, tuple[Lane, int]] = {}

    def offer(self, lane: Lane, d: Delivery) -> bool:
        """Whether ``d``, pending, may be taken in now: only if it is the lane's head. A
        delivery before the head (or any while the head is unknown) makes the lane read its
        head again; one behind it waits in the store."""
        if d.id in self._ending:
            return False  # a row read before its outcome was committed
        if lane.loading:
            if lane.seen is None or d.id < lane.seen:
                lane.seen = d.id
            return False
        head = lane.head
        if lane.head_known and head is not None:
            if d.id == head:
                return True
            if d.id > head:
                return False
        self.reload([lane])
        return False

    async def load_now(self, lanes: Sequence[Lane]) -> None:
        """Reads the heads of ``lanes`` before anything is admitted to them (start)."""
        heads = await self._store.fifo_heads([lane.endpoint.id for lane in lanes])
        for lane in lanes:
            self._set(lane, heads.get(lane.endpoint.id))

    def reload(self, lanes: Iterable[Lane]) -> None:
        """Reads the lanes' heads again, in one query; a lane already being read is read once
        more after that read (what changed may have been committed after it began)."""
        todo = []
        for lane in lanes:
            if lane.loading:
                lane.seen = ""  # before every id: the read is repeated
            else:
                lane.loading = True
                lane.seen = None
                todo.append(lane)
        if todo:
            self._spawn(self._load(todo))

    def left(self, lane: Lane, after: Delivery) -> None:
        """The head's attempt left it as ``after``, out of memory: ended (success, failure,
        discarded; the next head is read once that is committed, else the store would still
        show it pending) or waiting for a retry further ahead than the sweep has loaded."""
        self._ending[after.id] = (lane, after.attempt_count)

    def stored(self, changed: Sequence[Delivery]) -> None:
        """The recorder's listener: committed delivery states."""
        if not self._ending:
            return
        done = []
        for d in changed:
            entry = self._ending.get(d.id)
            if entry is None or d.status is DeliveryStatus.PROCESSING:
                continue
            lane, attempts = entry
            if d.attempt_count < attempts:
                continue  # an earlier attempt's outcome
            del self._ending[d.id]
            if d.status not in PENDING_STATUSES and self._held(lane):
                done.append(lane)
        if done:
            self.reload(done)

    def forget(self, lane: Lane) -> None:
        """The lane is concurrent now (or gone): no head of it is waited for or kept."""
        lane.head = None
        lane.head_known = False
        for delivery_id in [i for i, (held, _) in self._ending.items() if held is lane]:
            del self._ending[delivery_id]

    def _still_held(self, lanes: list[Lane]) -> list[Lane]:
        held = []
        for lane in lanes:
            if self._held(lane):
                held.append(lane)
            else:
                lane.loading = False
        return held

    def _held(self, lane: Lane) -> bool:
        return lane.fifo and not lane.dropped and self._lanes.get(lane.endpoint.id) is lane

    async def _load(self, lanes: list[Lane]) -> None:
        delay = RETRY_FIRST
        try:
            while lanes := self._still_held(lanes):
                try:
                    heads = await self._store.fifo_heads([lane.endpoint.id for lane in lanes])
                except Exception as exc:
                    log.error("could not read the heads of %d FIFO endpoints: %s", len(lanes), exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_CAP)
                    continue
                again = []
                for lane in lanes:
                    head = heads.get(lane.endpoint.id)
                    seen = lane.seen
                    if seen is not None and (head is None or seen < head.id):
                        lane.seen = None  # something before this head came meanwhile
                        again.append(lane)
                        continue
                    lane.loading = False
                    self._set(lane, head)
                lanes = again
        finally:
            for lane in lanes:  # cancelled (the engine stops) or no longer FIFO
                lane.loading = False

    def _set(self, lane: Lane, head: Delivery | None) -> None:
        previous = lane.head
        lane.head = None if head is None else head.id
        lane.head_known = True
        if previous is not None and previous != lane.head:
            self._forget(lane, previous)  # an old delivery retried went before it
        if head is not None and head.id not in self._ending:
            self._admit([head])
        self._ready(lane)
