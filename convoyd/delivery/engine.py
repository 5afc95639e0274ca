"""The delivery engine: which pending delivery is attempted when, fairly across endpoints.

Work reaches the engine without polling: accepted events and retries requested through the
API are handed over in memory, near-term retries wait on one timer heap, and a sweep picks up
retries scheduled further ahead (and everything pending at start) in batches. Each endpoint has
a lane (its queue and in-flight count); lanes take turns, one attempt each, so a slow or failing
endpoint only ever occupies its own concurrency limit. Attempts that run long move to a pool of
their own (convoyd.delivery.capacity), so no number of hanging endpoints delays a healthy one.
In a cluster the engine runs lanes only for the endpoints this node holds; taking, fencing and
handing them off is convoyd.delivery.ownership. A FIFO endpoint's lane holds only its head, one
attempt at a time, read from the store (convoyd.delivery.fifo); a concurrent lane pays nothing
for that but one flag test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from convoyd.core.breaker import BreakerSnapshot, BreakerState
from convoyd.core.model import (
    PENDING_STATUSES,
    BreakerStatus,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointStatus,
)
from convoyd.delivery.attempts import AttemptRunner
from convoyd.delivery.capacity import Capacity, Flight
from convoyd.delivery.config import EngineConfig, SenderLike, StatusChanger
from convoyd.delivery.fifo import Heads
from convoyd.delivery.lane import Lane
from convoyd.delivery.oauth2 import TokenCache
from convoyd.delivery.ownership import EndpointCheck, Holdings, Memory
from convoyd.delivery.payloads import PayloadCache
from convoyd.delivery.recorder import Recorder
from convoyd.errors import ConvoydError
from convoyd.store.base import DeliveryStore, IngestWrite, Payload
from convoyd.telemetry.base import NO_TRACING, Tracing

if TYPE_CHECKING:
    from convoyd.metrics import Metrics

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        store: DeliveryStore,
        sender: SenderLike,
        recorder: Recorder,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        config: EngineConfig | None = None,
        payloads: PayloadCache | None = None,
        change_status: StatusChanger | None = None,
        metrics: Metrics | None = None,
        owns: EndpointCheck | None = None,
        may_start: EndpointCheck | None = None,
        tokens: TokenCache | None = None,
        on_breaker_opened: Callable[[Endpoint], None] | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        """``owns``: whether this node holds an endpoint now; ``may_start``: whether an attempt
        to it may start now (asked right before each one). None: always (a single node).
        ``tokens``: the endpoints' OAuth2 tokens (by default a cache fetching through
        ``sender``): one per engine, in the daemon, shared by all of an endpoint's attempts
        whichever sender worker makes them. ``on_breaker_opened``: told (synchronously) of each
        endpoint whose breaker opens; whatever it raises is logged, never the engine's.
        ``tracing``: where attempt spans go."""
        self._on_breaker_opened = on_breaker_opened
        self._store = store
        self._metrics = metrics
        self._sender = sender
        self._recorder = recorder
        self._clock = clock
        self._rng = rng
        self.config = config or EngineConfig()
        self._payloads = payloads or PayloadCache(store)
        self._change_status = change_status
        self._tokens = tokens or TokenCache(
            sender, observe=metrics.oauth2_token_fetch if metrics is not None else None
        )
        self._runner = AttemptRunner(
            sender=sender,
            recorder=recorder,
            payloads=self._payloads,
            clock=clock,
            rng=rng,
            config=lambda: self.config,
            tokens=self._tokens,
            metrics=metrics,
            tracing=tracing,
        )
        self._ready: deque[Lane] = deque()
        self._tracked: set[str] = set()  # delivery ids held in memory (queued, timed, in flight)
        self._timers: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._swept_until = 0.0
        self._capacity = Capacity(
            max_in_flight=self.config.max_in_flight,
            max_slow_in_flight=self.config.max_slow_in_flight,
            slow_after=self.config.slow_attempt_after,
        )
        self._memory = Memory(self._tracked, self._timers, self._arm_timer, self._capacity)
        self._held = Holdings(
            breaker=lambda: self.config.breaker,
            ready=self._mark_ready,
            memory=self._memory,
            clock=clock,
            owns=owns,
            may_start=may_start,
        )
        self._lanes = self._held.lanes  # the one dict of lanes, shared
        recorder.add_listener(self._held.stored)
        self._reads: set[asyncio.Task[None]] = set()  # FIFO head reads, cancelled at stop
        self._heads = Heads(
            store=store,
            lanes=self._lanes,
            admit=self.admit,
            forget=self._memory.forget_waiting,
            ready=self._mark_ready,
            spawn=self._read,
        )
        recorder.add_listener(self._heads.stored)
        # Attempts and the endpoint status changes they trigger: stop() waits for both.
        self._inflight_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def swept_until(self) -> float:
        """Deliveries due until then are in memory (or on their way); later ones the sweep loads."""
        return self._swept_until

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, endpoints: Iterable[Endpoint]) -> None:
        for endpoint in endpoints:
            self._held.add(endpoint)
        fifo = [lane for lane in self._lanes.values() if lane.fifo]
        if fifo:  # their heads before anything pending is admitted: only heads are
            await self._heads.load_now(fifo)
        now = self._clock()
        self._swept_until = now + 2 * self.config.sweep_interval
        # Everything pending, including what a crash left PROCESSING: sent again (at-least-once).
        self.admit(await self._store.due_deliveries(after=None, until=self._swept_until))
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="convoyd-dispatch"),
            asyncio.create_task(self._sweep_loop(), name="convoyd-sweep"),
            asyncio.create_task(self._age_loop(), name="convoyd-age"),
        ]

    async def stop(self, grace: float) -> None:
        """Stops starting attempts, lets those in flight finish within ``grace``, then cancels."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        for task in (*self._tasks, *self._reads):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._reads, return_exceptions=True)
        if self._inflight_tasks:
            _, pending = await asyncio.wait(self._inflight_tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._tokens.close()
        await self._recorder.flush()

    @property
    def alive(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    @property
    def in_flight(self) -> int:
        return self._capacity.in_flight

    def queued(self) -> int:
        """Due deliveries held in lanes, waiting for a slot (a gauge reads it on scrape)."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    def breaker_counts(self) -> dict[str, int]:
        """How many endpoints' breakers are in each state (closed, open, half_open)."""
        return self._held.breaker_counts()

    def set_limits(
        self,
        *,
        max_in_flight: int,
        max_concurrency_per_endpoint: int,
        max_slow_in_flight: int | None = None,
    ) -> None:
        """New concurrency limits (SIGHUP); attempts already in flight are not touched."""
        self.config = dataclasses.replace(
            self.config,
            max_in_flight=max_in_flight,
            max_concurrency_per_endpoint=max_concurrency_per_endpoint,
            max_slow_in_flight=max_slow_in_flight or self.config.max_slow_in_flight,
        )
        self._capacity.set_limits(
            max_in_flight=max_in_flight, max_slow_in_flight=self.config.max_slow_in_flight
        )
        for lane in self._lanes.values():  # a raised limit may let waiting lanes go now
            self._mark_ready(lane)
        self._wake.set()

    # -- work coming in -------------------------------------------------------------------

    def accepted(self, writes: Sequence[IngestWrite]) -> None:
        """Newly committed events: their deliveries to lanes, and the bodies of those that some
        lane took to the cache."""
        for write in writes:
            if not write.replay and write.deliveries and self.admit(write.deliveries):
                event = write.event
                body = Payload(data=event.data, headers=event.headers, trace=event.trace)
                self._payloads.put(event.id, body)

    def remember_payload(self, event_id: str, payload: Payload) -> None:
        """An event body that came with its deliveries from another node."""
        self._payloads.put(event_id, payload)

    def admit(self, deliveries: Iterable[Delivery]) -> int:
        """Takes pending deliveries into memory (each at most once); how many it took."""
        now = self._clock()
        before = len(self._tracked)
        lanes = self._lanes
        for d in deliveries:
            if d.status not in PENDING_STATUSES:
                continue
            lane = lanes.get(d.endpoint_id)
            if lane is None or d.id in self._tracked or self._held.stale(d):
                continue
            if lane.fifo and not self._heads.offer(lane, d):
                continue  # not its FIFO endpoint's head: it waits in the store
            due = d.next_attempt_at if d.next_attempt_at is not None else now
            if due > self._swept_until:
                continue  # the sweep brings it in when it is near
            self._tracked.add(d.id)
            if due <= now:
                self._enqueue(d)
            else:
                self._push_timer(due, d)
        return len(self._tracked) - before

    def due_again(self, deliveries: Sequence[Delivery]) -> int:
        """Deliveries a request made due again, as committed (RetryDelivery and friends): a
        copy still waiting in memory (timed for its old next try, or queued) gives way to it,
        so that a retry now goes now. One in flight finishes; its outcome comes after."""
        for d in deliveries:
            lane = self._lanes.get(d.endpoint_id)
            if lane is not None and d.id in self._tracked and d.id not in lane.sending:
                self._memory.forget_waiting(lane, d.id)
        return self.admit(deliveries)

    def endpoint_changed(self, endpoint: Endpoint) -> None:
        """A committed change; an endpoint without a lane gets one if this node holds it."""
        before = self._lanes.get(endpoint.id)
        was_fifo = before is not None and before.fifo
        lane = self._held.changed(endpoint)
        if lane is not None:
            if lane.fifo != was_fifo:
                self._reordered(lane)
            self._mark_ready(lane)

    def _reordered(self, lane: Lane) -> None:
        """The endpoint's ordering changed. To FIFO: what the lane holds waiting is dropped and
        its head read (attempts in flight end first). To concurrent: everything pending of it
        that is due soon is loaded, once the outcomes recorded so far are committed."""
        if lane.fifo:
            self._memory.forget_waiting(lane)
            self._heads.reload([lane])
            return
        self._heads.forget(lane)

        async def load() -> None:
            await self._recorder.flush()
            due = await self._store.due_deliveries(after=None, until=self._swept_until)
            self.admit(d for d in due if d.endpoint_id == lane.endpoint.id)

        self._read(load())

    def _read(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    def breaker_status(self, endpoint_id: str) -> BreakerStatus | None:
        """The endpoint's breaker now; None when the engine has no lane for it."""
        return self._held.breaker_status(endpoint_id, self._clock())

    def endpoint_deleted(self, endpoint_id: str) -> None:
        self.drop([endpoint_id])

    # -- endpoints moving between nodes (convoyd.delivery.ownership) ----------------------

    def take(
        self,
        endpoints: Iterable[Endpoint],
        deliveries: Iterable[Delivery],
        *,
        breakers: Mapping[str, BreakerSnapshot] | None = None,
        fill_limiters_at: float | None = None,
    ) -> None:
        """Lanes for ``endpoints`` (see Holdings.take), then ``deliveries`` admitted."""
        taken = self._held.take(endpoints, breakers or {}, fill_limiters_at)
        for lane in taken:
            self._mark_ready(lane)
        fifo = [lane for lane in taken if lane.fifo]
        if fifo:  # the previous owner may have moved their heads on: the store knows
            for lane in fifo:
                self._memory.forget_waiting(lane)
            self._heads.reload(fifo)
        self.admit(deliveries)

    def drop(self, endpoint_ids: Iterable[str]) -> None:
        """Removes lanes at once (a lost lease): what they hold in memory is forgotten (it stays
        pending in the store); attempts in flight finish, and the store fences their outcomes."""
        ids = list(endpoint_ids)
        self._held.drop(ids)
        self._tokens.forget(ids)

    async def release(self, endpoint_ids: Iterable[str], timeout: float) -> None:  # noqa: ASYNC109 - a bounded wait, the lanes go either way
        """Hands lanes off: starts no more attempts on them, waits (at most ``timeout``) until
        their attempts in flight end and every outcome is stored, then drops them."""
        ids = list(endpoint_ids)
        await self._held.release(ids, timeout, self._recorder.flush)
        self._tokens.forget(i for i in ids if i not in self._lanes)  # not taken back meanwhile

    def breaker_snapshots(self, ids: Iterable[str] | None = None) -> dict[str, BreakerSnapshot]:
        """The breakers of the lanes held (all of them when ``ids`` is None)."""
        return self._held.snapshots(ids)

    def certificate_expiries(self) -> list[float]:
        """The not-after time of each held endpoint's client certificate (mutual TLS)."""
        out: list[float] = []
        for lane in self._lanes.values():
            tls = lane.endpoint.spec.tls
            if tls is not None and tls.client_certificate_not_after is not None:
                out.append(tls.client_certificate_not_after)
        return out

    def endpoint_ids(self) -> list[str]:
        return list(self._lanes)

    # -- scheduling -----------------------------------------------------------------------

    def _enqueue(self, d: Delivery) -> None:
        lane = self._lanes.get(d.endpoint_id)
        if lane is None or (lane.fifo and d.id != lane.head):
            self._tracked.discard(d.id)  # gone, or a FIFO lane's former head (timed)
            return
        lane.queue.append(d)
        self._mark_ready(lane)

    def _limit(self, lane: Lane) -> int:
        return lane.endpoint.spec.max_concurrency or self.config.max_concurrency_per_endpoint

    def _can_send(self, lane: Lane) -> bool:
        """Whether the lane may start an attempt now, without changing any state."""
        if not lane.queue or lane.fenced or lane.releasing or (lane.fifo and lane.in_flight):
            return False
        status = lane.endpoint.status
        if status is EndpointStatus.PENDING:
            # Only the retried delivery goes out, alone; the rest stay held (architecture.md §3).
            return lane.in_flight == 0 and any(d.attempt_limit is not None for d in lane.queue)
        if status is not EndpointStatus.ACTIVE or lane.in_flight >= self._limit(lane):
            return False
        now = self._clock()
        breaker = lane.breaker
        if breaker.state is BreakerState.OPEN:
            probe_at = breaker.next_probe_at or now
            if now < probe_at:
                self._wake_at(lane, probe_at)
                return False
        elif breaker.state is BreakerState.HALF_OPEN and breaker.probe_in_flight:
            return False
        limiter = lane.limiter
        if limiter is not None and limiter.in_window(now) >= limiter.limit:
            wait = limiter.acquire(now)  # denied: records nothing, says how long to wait
            if self._metrics is not None and lane.wake is None:  # a new wait, not a re-check
                self._metrics.rate_limited()
            self._wake_at(lane, now + wait)
            return False
        return True

    def _wake_at(self, lane: Lane, when: float) -> None:
        """Reconsiders the lane at ``when`` (its breaker cooldown ends or its rate allows)."""
        if lane.wake is not None:
            return
        delay = max(0.0, when - self._clock())

        def wake() -> None:
            lane.wake = None
            self._mark_ready(lane)

        lane.wake = asyncio.get_running_loop().call_later(delay, wake)

    def _admit_attempt(self, lane: Lane) -> bool:
        """Takes the breaker's and the limiter's permission for one attempt (after _can_send)."""
        if lane.endpoint.status is EndpointStatus.PENDING:
            return True
        now = self._clock()
        if not lane.breaker.allow(now):
            return False
        if lane.limiter is not None and lane.limiter.acquire(now) > 0:
            lane.breaker.release(now)
            return False
        return True

    @staticmethod
    def _take(lane: Lane) -> Delivery:
        if lane.endpoint.status is EndpointStatus.ACTIVE:
            return lane.queue.popleft()
        probe = next(d for d in lane.queue if d.attempt_limit is not None)
        lane.queue.remove(probe)
        return probe

    def _mark_ready(self, lane: Lane) -> None:
        if not lane.in_ready_ring and self._can_send(lane):
            lane.in_ready_ring = True
            self._ready.append(lane)
            self._wake.set()

    def _push_timer(self, due: float, d: Delivery) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), d))
        if self._timers[0][2] is d:
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timers and not self._closing:
            delay = max(0.0, self._timers[0][0] - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire_timers)

    def _fire_timers(self) -> None:
        self._timer = None
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, d = heapq.heappop(self._timers)
            self._enqueue(d)
        self._arm_timer()

    async def _dispatch_loop(self) -> None:
        capacity = self._capacity
        while True:
            await self._wake.wait()
            self._wake.clear()
            if capacity.parked:  # lanes that waited for room in a budget go first, in order
                self._ready.extendleft(reversed(list(capacity.release())))
            while self._ready and not capacity.full() and not self._closing:
                lane = self._ready.popleft()
                lane.in_ready_ring = False
                if not self._can_send(lane):
                    continue
                kind = capacity.kind_of(lane)
                if capacity.room(kind) <= 0:
                    lane.in_ready_ring = True
                    capacity.park(lane, kind)
                    continue
                # The fence first: a refusal then leaves no breaker or limiter state behind.
                if not self._held.may_start(lane) or not self._admit_attempt(lane):
                    continue
                d = self._take(lane)
                lane.begin(d.id)
                flight = capacity.start(lane, kind, self._clock())
                task = asyncio.create_task(self._attempt(lane, d, flight))
                self._inflight_tasks.add(task)
                task.add_done_callback(self._inflight_tasks.discard)
                self._mark_ready(lane)  # back of the ring: endpoints take turns

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            start = self._swept_until
            until = self._clock() + 2 * self.config.sweep_interval
            try:
                due = await self._store.due_deliveries(after=start, until=until)
            except Exception as exc:
                log.error("could not load due deliveries: %s", exc)
                continue
            self._swept_until = until
            self.admit(due)

    async def _age_loop(self) -> None:
        """Moves attempts that have run past the slow threshold out of the main pool."""
        while True:
            await asyncio.sleep(self.config.slow_attempt_after / 4)
            if self._capacity.age(self._clock()):
                self._wake.set()

    # -- one attempt ----------------------------------------------------------------------

    async def _attempt(self, lane: Lane, d: Delivery, flight: Flight) -> None:
        try:
            finished = await self._runner.run(lane, d)
            if finished is None:  # the event was deleted
                self._untrack(lane, d)
                if lane.fifo:
                    self._heads.reload([lane])
                return
            if lane.dropped:
                # Another node owns the endpoint now (or nobody does): its delivery and state
                # are for the store and that node to judge, not this node's memory.
                return
            self._held.attempted(finished.delivery)
            if finished.breaker_opened:
                self._wake_at(lane, lane.breaker.next_probe_at or self._clock())
                self._breaker_opened(lane.endpoint)
            if finished.trigger is not None and self._change_status is not None:
                self._spawn(
                    self._change_status(lane.endpoint.id, finished.trigger, finished.reason)
                )
            after = finished.delivery
            due = after.next_attempt_at
            if (
                after.status is DeliveryStatus.RETRY
                and due is not None
                and due <= self._swept_until
                and (not lane.fifo or d.id == lane.head)
            ):
                self._push_timer(due, after)  # near: a timer; further ahead: the sweep loads it
                return
            self._untrack(lane, d)
            if lane.fifo and d.id == lane.head:
                self._heads.left(lane, after)
        except asyncio.CancelledError:
            # Shutdown: the delivery is still pending in the store and is sent after restart.
            raise
        except Exception:
            log.exception("attempt of delivery %s failed unexpectedly", d.id)
            self._untrack(lane, d)
            if lane.fifo:
                self._heads.reload([lane])
        finally:
            lane.end(d.id)
            capacity = self._capacity
            capacity.finish(flight, self._clock())
            if lane.parked is not None and lane.parked is not capacity.kind_of(lane):
                capacity.unpark(lane)  # it waits for the budget it now belongs to instead
                lane.in_ready_ring = False
            self._mark_ready(lane)
            self._wake.set()

    def _breaker_opened(self, endpoint: Endpoint) -> None:
        if self._on_breaker_opened is None:
            return
        try:
            self._on_breaker_opened(endpoint)
        except Exception:
            log.exception("the breaker-opened hook failed for endpoint %s", endpoint.id)

    def _untrack(self, lane: Lane, d: Delivery) -> None:
        # A dropped lane's deliveries were untracked when it was dropped; the same id may be
        # tracked again since, by the lane that took the endpoint back.
        if not lane.dropped:
            self._tracked.discard(d.id)

    def _spawn(self, awaitable: Awaitable[object]) -> None:
        task = asyncio.ensure_future(self._quietly(awaitable))
        self._inflight_tasks.add(task)
        task.add_done_callback(self._inflight_tasks.discard)

    @staticmethod
    async def _quietly(awaitable: Awaitable[object]) -> None:
        # An endpoint already paused or inactive refuses the change: nothing to do then.
        with contextlib.suppress(ConvoydError):
            await awaitable
