"""The lanes this node holds: which endpoints it runs, and how their lanes move between nodes.

In cluster mode (several nodes on one PostgreSQL) endpoints hash into shards
(convoyd.core.shards) and a node runs lanes only for the endpoints of the shards it leases
(convoyd.cluster). This module is the engine's side of that: the lanes held, the filter that
keeps other nodes' endpoints out, the fence asked right before each attempt starts, and what a
lane carries across a move: its breaker, as a snapshot, and its rate limit, filled at the time
of the move so that the receiver never sees more than its limit in one window. With neither a
filter nor a fence (single-node mode) every endpoint is held and nothing here changes what the
engine does.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from convoyd.core.breaker import Breaker, BreakerConfig, BreakerSnapshot, BreakerState
from convoyd.core.model import BreakerStatus, Delivery, Endpoint, EndpointStatus, Ordering
from convoyd.delivery.capacity import Capacity
from convoyd.delivery.lane import Lane, limiter_for

log = logging.getLogger(__name__)

# Endpoint id -> whether this node holds it now / whether an attempt to it may start now.
EndpointCheck = Callable[[str], bool]

# A lane whose start the fence refused is looked at again after this long. A refusal means a
# lost lease, and the membership drops the lane within a second, so this rarely fires; but a
# refusal that passes must not leave a lane parked for good.
FENCE_RECHECK = 1.0

# How long after its commit an outcome still makes older rows stale: reads of other paths that
# began before the commit have returned by then.
STALE_READS = 10.0

# Entering these states starts the endpoint's breaker afresh.
_FRESH_START = frozenset({EndpointStatus.ACTIVE, EndpointStatus.PENDING})


class StaleRows:
    """What this node's own attempts make of rows read elsewhere in the meantime.

    A cluster node also admits pending rows read by other paths (the slow poll, a resync, a
    notification). A row read before the outcome of this node's last attempt of it was stored
    still shows the delivery pending with fewer attempts, and admitting it would send it again.
    So each attempt's count is kept until its outcome is stored, and STALE_READS seconds more
    for reads begun before that commit; a row with fewer attempts is stale.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._known: dict[str, tuple[str, int]] = {}  # id -> (endpoint id, attempts made)
        self._settled: deque[tuple[float, str, int]] = deque()  # (forget at, id, attempts)

    def attempted(self, after: Delivery) -> None:
        """An attempt here made ``after`` of the delivery (not stored yet)."""
        self._known[after.id] = (after.endpoint_id, after.attempt_count)

    def stale(self, d: Delivery) -> bool:
        known = self._known.get(d.id)
        return known is not None and d.attempt_count < known[1]

    def stored(self, changed: Sequence[Delivery]) -> None:
        """The recorder's listener: these delivery states are committed."""
        now = self._clock()
        settled = self._settled
        for d in changed:
            known = self._known.get(d.id)
            if known is not None and d.attempt_count >= known[1]:
                settled.append((now + STALE_READS, d.id, d.attempt_count))
        while settled and settled[0][0] <= now:
            _, delivery_id, attempts = settled.popleft()
            known = self._known.get(delivery_id)
            if known is not None and known[1] <= attempts:
                del self._known[delivery_id]

    def forget(self, endpoint_ids: set[str]) -> None:
        """Dropped endpoints: an outcome the store fenced off is never stored, and the row
        read when the endpoint comes back is then the truth."""
        gone = [i for i, (endpoint_id, _) in self._known.items() if endpoint_id in endpoint_ids]
        for delivery_id in gone:
            del self._known[delivery_id]


@dataclass(frozen=True, slots=True)
class Memory:
    """The engine's structures a dropped lane's deliveries must leave."""

    tracked: set[str]
    """Ids of the deliveries held in memory (queued, timed, in flight)."""
    timers: list[tuple[float, int, Delivery]]
    """The heap of timed retries."""
    rearm: Callable[[], None]
    """Sets the engine's timer for the heap's first entry again."""
    capacity: Capacity

    def forget(self, lanes: Iterable[Lane]) -> None:
        gone = set()
        for lane in lanes:
            gone.add(lane.endpoint.id)
            self.capacity.unpark(lane)
            self.tracked.difference_update(d.id for d in lane.queue)
            self.tracked.difference_update(lane.sending)
            lane.queue.clear()
        timers = self.timers
        kept = [t for t in timers if t[2].endpoint_id not in gone]
        if len(kept) < len(timers):
            self.tracked.difference_update(t[2].id for t in timers if t[2].endpoint_id in gone)
            timers[:] = kept
            heapq.heapify(timers)
            self.rearm()

    def forget_waiting(self, lane: Lane, delivery_id: str | None = None) -> None:
        """Forgets the lane's deliveries queued or timed (all, or only ``delivery_id``), not
        those in flight: they stay pending in the store (a FIFO lane's head moved)."""
        queue = lane.queue
        gone = {d.id for d in queue if delivery_id is None or d.id == delivery_id}
        if gone:
            kept_queue = [d for d in queue if d.id not in gone]
            queue.clear()
            queue.extend(kept_queue)
        endpoint_id = lane.endpoint.id
        timers = self.timers
        kept = []
        for t in timers:
            d = t[2]
            if d.endpoint_id == endpoint_id and (delivery_id is None or d.id == delivery_id):
                gone.add(d.id)
            else:
                kept.append(t)
        if len(kept) < len(timers):
            timers[:] = kept
            heapq.heapify(timers)
            self.rearm()
        self.tracked.difference_update(gone - lane.sending)


class Holdings:
    """The engine's lanes by endpoint id, and the rules of taking, fencing and giving them up.

    ``lanes`` is the one dict the engine schedules from; it is never replaced.
    """

    def __init__(
        self,
        *,
        breaker: Callable[[], BreakerConfig],
        ready: Callable[[Lane], None],
        memory: Memory,
        clock: Callable[[], float],
        owns: EndpointCheck | None = None,
        may_start: EndpointCheck | None = None,
    ) -> None:
        """``ready``: the engine reconsiders a lane; ``owns``/``may_start``: None for always."""
        self.lanes: dict[str, Lane] = {}
        self._breaker = breaker
        self._ready = ready
        self._memory = memory
        # Only a cluster node admits rows read by other paths.
        self._stale = StaleRows(clock) if owns is not None else None
        self._owns = owns
        self._may_start = may_start

    def owns(self, endpoint_id: str) -> bool:
        return self._owns is None or self._owns(endpoint_id)

    def add(self, endpoint: Endpoint) -> None:
        """A lane for ``endpoint`` if this node holds it."""
        if self.owns(endpoint.id):
            self.lanes[endpoint.id] = Lane(endpoint, self._breaker())

    def changed(self, endpoint: Endpoint) -> Lane | None:
        """Applies a committed change of an endpoint; the lane to reconsider, if any."""
        lane = self.lanes.get(endpoint.id)
        if lane is None:
            self.add(endpoint)
            return None
        self._update(lane, endpoint)
        lane.fenced = False
        return lane

    def _update(self, lane: Lane, endpoint: Endpoint) -> None:
        previous, lane.endpoint = lane.endpoint, endpoint
        lane.keys_until = -1.0
        if endpoint.spec.url != previous.spec.url:  # another receiver: judge its speed afresh
            lane.slow = lane.proven = False
        if endpoint.status is not previous.status and endpoint.status in _FRESH_START:
            # Back to ACTIVE (resumed, activated, probe succeeded) or probing: judge the
            # endpoint afresh instead of by the failures that made it inactive.
            lane.breaker = Breaker(self._breaker())
        spec, old = endpoint.spec, previous.spec
        if (spec.rate_limit, spec.rate_limit_duration) != (old.rate_limit, old.rate_limit_duration):
            lane.limiter = limiter_for(endpoint)
        lane.fifo = spec.ordering is Ordering.FIFO  # the engine reacts to a change

    # -- moving between nodes -------------------------------------------------------------

    def take(
        self,
        endpoints: Iterable[Endpoint],
        breakers: Mapping[str, BreakerSnapshot],
        fill_limiters_at: float | None,
    ) -> list[Lane]:
        """Lanes for ``endpoints``, with their breakers as ``breakers`` holds them and, when
        ``fill_limiters_at`` is given, their rate limits used up at that time (the previous
        owner may have sent a whole window's worth just before). A lane already held is updated
        in place, so that its attempts in flight still count against its limits."""
        config = self._breaker()
        taken = []
        for endpoint in endpoints:
            lane = self.lanes.get(endpoint.id)
            if lane is None:
                lane = self.lanes[endpoint.id] = Lane(endpoint, config)
            else:
                self._update(lane, endpoint)
                lane.fenced = lane.releasing = False
            snapshot = breakers.get(endpoint.id)
            if snapshot is not None:
                lane.breaker = Breaker.from_snapshot(config, snapshot)
            if fill_limiters_at is not None and lane.limiter is not None:
                lane.limiter.fill(fill_limiters_at)
            taken.append(lane)
        return taken

    def drop(self, endpoint_ids: Iterable[str]) -> None:
        """Removes lanes and forgets the deliveries they hold (queued, timed or in flight)."""
        dropped = []
        for endpoint_id in endpoint_ids:
            lane = self.lanes.pop(endpoint_id, None)
            if lane is None:
                continue
            lane.dropped = True
            if lane.wake is not None:
                lane.wake.cancel()
                lane.wake = None
            dropped.append(lane)
        if dropped:
            self._memory.forget(dropped)
            if self._stale is not None:
                self._stale.forget({lane.endpoint.id for lane in dropped})

    async def release(
        self,
        endpoint_ids: Iterable[str],
        timeout: float,  # noqa: ASYNC109 - a bounded wait, the lanes go either way
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        """Stops starting attempts on the lanes, waits (at most ``timeout``) for those in flight
        to end and for their outcomes to be stored (``flush``), then drops the lanes still
        being handed off (``take`` may have claimed one back meanwhile)."""
        lanes = [lane for i in endpoint_ids if (lane := self.lanes.get(i)) is not None]
        for lane in lanes:
            lane.releasing = True
        idle = {lane: asyncio.Event() for lane in lanes if lane.in_flight}
        for lane, event in idle.items():
            lane.idle = event
        try:
            async with asyncio.timeout(timeout):
                for event in idle.values():
                    await event.wait()
                await flush()
        except TimeoutError:
            log.warning(
                "handing off %d endpoints with %d attempts still in flight",
                len(lanes),
                sum(lane.in_flight for lane in idle),
            )
        finally:
            for lane in idle:
                lane.idle = None
        self.drop(
            lane.endpoint.id
            for lane in lanes
            if lane.releasing and self.lanes.get(lane.endpoint.id) is lane
        )

    def may_start(self, lane: Lane) -> bool:
        """The fence, right before an attempt starts; a refused lane is parked (``fenced``)
        until it is taken, changed or looked at again after FENCE_RECHECK."""
        if self._may_start is None or self._may_start(lane.endpoint.id):
            return True
        lane.fenced = True
        if lane.wake is not None:  # its breaker's or limiter's wake: the recheck does as well
            lane.wake.cancel()
        lane.wake = asyncio.get_running_loop().call_later(FENCE_RECHECK, self._recheck, lane)
        return False

    def _recheck(self, lane: Lane) -> None:
        lane.wake = None
        if not lane.dropped:
            # Even when something unfenced it meanwhile: this timer, as its wake, kept any other
            # wake (its breaker's, its limiter's) from being set.
            lane.fenced = False
            self._ready(lane)

    # -- rows read elsewhere (see StaleRows) ----------------------------------------------

    def stale(self, d: Delivery) -> bool:
        """Whether ``d`` was read before the outcome of this node's last attempt of it."""
        return self._stale is not None and self._stale.stale(d)

    def attempted(self, after: Delivery) -> None:
        if self._stale is not None:
            self._stale.attempted(after)

    def stored(self, changed: Sequence[Delivery]) -> None:
        """The recorder's listener."""
        if self._stale is not None:
            self._stale.stored(changed)

    # -- what the lanes say ---------------------------------------------------------------

    def snapshots(self, endpoint_ids: Iterable[str] | None = None) -> dict[str, BreakerSnapshot]:
        ids = self.lanes if endpoint_ids is None else endpoint_ids
        return {i: lane.breaker.snapshot() for i in ids if (lane := self.lanes.get(i)) is not None}

    def breaker_status(self, endpoint_id: str, now: float) -> BreakerStatus | None:
        lane = self.lanes.get(endpoint_id)
        if lane is None:
            return None
        breaker = lane.breaker
        return BreakerStatus(
            state=breaker.state.value,
            failure_rate=breaker.failure_rate(now),
            window_attempts=breaker.window_attempts(now),
            consecutive_trips=breaker.consecutive_trips,
            next_probe_at=breaker.next_probe_at if breaker.state is BreakerState.OPEN else None,
        )

    def breaker_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in BreakerState), 0)
        for lane in self.lanes.values():
            counts[lane.breaker.state.value] += 1
        return counts
