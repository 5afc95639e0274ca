"""The engine's side of cluster mode: which endpoints it holds, the fence before each attempt,
and what moves with an endpoint (its breaker, its rate limit) when its lanes are taken, dropped
or handed off.

A real Engine and Recorder over a real SqliteStore in tmp_path; the FakeSender plays the
receivers (an item that awaits an event holds an attempt in flight) and records when each
request left, by the wall clock the engine runs on.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from convoyd.core.breaker import BreakerSnapshot, BreakerState
from convoyd.core.model import (
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    RetryPolicy,
    RetryStrategy,
    Secret,
)
from convoyd.delivery import ownership
from convoyd.delivery.config import EngineConfig
from convoyd.delivery.engine import Engine
from convoyd.delivery.fake import Answer, FakeSender, ScriptItem
from convoyd.delivery.payloads import PayloadCache
from convoyd.delivery.recorder import Recorder
from convoyd.delivery.sender import AttemptReport, OutboundRequest
from convoyd.store.base import AttemptRecord, IngestNeeds, IngestWrite, Payload
from convoyd.store.sqlite import SqliteStore
from tests.receivers import eventually
from tests.store.contract_data import event_write, ident

# A second of this is long enough to see that something did not happen.
QUIET = 0.3
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
ONE_RETRY = RetryPolicy(strategy=RetryStrategy.SCHEDULE, delays=(0.3,), jitter=0.0)


def endpoint(**spec: object) -> Endpoint:
    now = time.time()
    endpoint_id = ident("ep")
    return Endpoint(
        id=endpoint_id,
        spec=EndpointSpec(url=f"https://hooks.invalid/{endpoint_id}", **spec),  # type: ignore[arg-type]
        status=EndpointStatus.ACTIVE,
        status_reason="created",
        status_changed_at=now,
        secrets=(Secret(id=ident("sec"), value=SECRET, created_at=now),),
        created_at=now,
        updated_at=now,
    )


class CountingCache(PayloadCache):
    """The engine's payload cache, noting which event bodies were put in it."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.put_ids: list[str] = []

    def put(self, event_id: str, payload: Payload) -> None:
        self.put_ids.append(event_id)
        super().put(event_id, payload)


@dataclass
class Gate:
    """A scripted answer that holds its attempt in flight until opened."""

    status: int = 200
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: OutboundRequest) -> Answer:
        await self.opened.wait()
        return self.status


class TimedSender(FakeSender):
    """The FakeSender, noting which endpoint each request went to and when it left."""

    def __init__(self, script: Sequence[ScriptItem]) -> None:
        super().__init__(script)
        self.sent: list[tuple[str, float]] = []

    async def send(self, request: OutboundRequest) -> AttemptReport:
        self.sent.append((request.url.rsplit("/", 1)[1], time.time()))
        return await super().send(request)


@dataclass
class Node:
    """One engine and what it runs on."""

    store: SqliteStore
    recorder: Recorder
    cache: CountingCache
    sender: TimedSender = field(default_factory=lambda: TimedSender(()))
    engine: Engine | None = None

    def run(
        self,
        *,
        owns: Callable[[str], bool] | None = None,
        may_start: Callable[[str], bool] | None = None,
        script: Sequence[ScriptItem] = (),
    ) -> Engine:
        self.sender = TimedSender(script)
        self.engine = Engine(
            self.store,
            self.sender,
            self.recorder,
            clock=time.time,
            rng=random.Random(7),
            config=EngineConfig(sweep_interval=60.0),
            payloads=self.cache,
            owns=owns,
            may_start=may_start,
        )
        return self.engine

    def by(self, e: Endpoint) -> list[float]:
        """When requests to ``e`` left."""
        return [at for endpoint_id, at in self.sender.sent if endpoint_id == e.id]

    async def add(self, *endpoints: Endpoint) -> None:
        for e in endpoints:
            await self.store.insert_endpoint(e)

    async def ingest(self, *targets: Endpoint, count: int = 1) -> list[IngestWrite]:
        """``count`` events to each of ``targets`` (one event fans out to all of them)."""
        writes = [event_write(list(targets), at=time.time()) for _ in range(count)]
        return await self.store.ingest(IngestNeeds(), lambda _snapshot: writes)

    async def pending(self) -> list[Delivery]:
        return await self.store.due_deliveries(after=None, until=time.time() + 3600)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    store = SqliteStore(tmp_path)
    await store.open()
    recorder = Recorder(store, clock=time.time)
    recorder.start()
    made = Node(store=store, recorder=recorder, cache=CountingCache(store))
    yield made
    if made.engine is not None:
        await made.engine.stop(grace=0.5)
    await recorder.stop()
    await store.close()


def in_flight_is(engine: Engine, n: int) -> Callable[[], bool]:
    return lambda: engine.in_flight == n


# -- which endpoints are held --------------------------------------------------------------


async def test_the_owns_filter_keeps_other_nodes_endpoints_out(node: Node) -> None:
    mine, theirs, later_mine, later_theirs = (endpoint() for _ in range(4))
    await node.add(mine, theirs, later_mine, later_theirs)
    held = {mine.id, later_mine.id}
    engine = node.run(owns=held.__contains__)
    await engine.start([mine, theirs])
    assert engine.endpoint_ids() == [mine.id]

    engine.endpoint_changed(later_theirs)
    engine.endpoint_changed(later_mine)
    assert sorted(engine.endpoint_ids()) == sorted(held)

    both = await node.ingest(mine, theirs)
    only_theirs = await node.ingest(theirs)
    engine.accepted(both + only_theirs)
    await eventually(lambda: len(node.by(mine)) == 1)
    await asyncio.sleep(QUIET)
    assert node.by(theirs) == []
    # A body goes to the cache only for an event some lane here took a delivery of.
    assert node.cache.put_ids == [both[0].event.id]
    await node.recorder.flush()
    pending = await node.pending()
    assert {d.endpoint_id for d in pending} == {theirs.id}  # left for the node holding it
    assert len(pending) == 2


async def test_without_an_owns_filter_every_endpoint_is_held(node: Node) -> None:
    first, second = endpoint(), endpoint()
    await node.add(first, second)
    engine = node.run()
    await engine.start([first])
    engine.endpoint_changed(second)
    assert sorted(engine.endpoint_ids()) == sorted([first.id, second.id])
    writes = await node.ingest(second)
    engine.accepted(writes)
    await eventually(lambda: len(node.sender.requests) == 1)
    assert node.cache.put_ids == [writes[0].event.id]


# -- the fence at attempt start ------------------------------------------------------------


async def test_a_refused_start_leaves_nothing_behind(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "FENCE_RECHECK", 30.0)
    # One request a minute, and a breaker half open: were the fence asked after the limiter
    # and the breaker without giving back, the attempt allowed later would find neither.
    e = endpoint(rate_limit=1, rate_limit_duration=60.0)
    await node.add(e)
    asked: list[str] = []
    allowed = False

    def may_start(endpoint_id: str) -> bool:
        asked.append(endpoint_id)
        return allowed

    engine = node.run(may_start=may_start)
    await engine.start([])
    await node.ingest(e)
    half_open = BreakerSnapshot(
        state=BreakerState.HALF_OPEN,
        cooldown=30.0,
        next_probe_at=time.time() - 1,
        consecutive_trips=1,
        consecutive_failures=0,
    )
    engine.take([e], await node.pending(), breakers={e.id: half_open})
    await eventually(lambda: asked == [e.id])
    await asyncio.sleep(QUIET)
    assert node.sender.sent == []
    assert engine.in_flight == 0
    assert engine.queued() == 1  # still held in its lane
    assert engine.breaker_snapshots()[e.id] == half_open

    # The lane is parked, not spun on: more work for it does not ask the fence again.
    engine.accepted(await node.ingest(e))
    await asyncio.sleep(QUIET)
    assert (asked, engine.queued()) == ([e.id], 2)

    allowed = True
    engine.endpoint_changed(e)  # wakes it
    await eventually(lambda: len(node.by(e)) == 1)  # the probe goes, and the one grant
    await eventually(lambda: engine.breaker_snapshots()[e.id].state is BreakerState.CLOSED)
    await asyncio.sleep(QUIET)
    assert len(node.by(e)) == 1  # the limit holds: one a minute
    assert engine.queued() == 1


async def test_a_fenced_lane_is_looked_at_again(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "FENCE_RECHECK", 0.2)
    e = endpoint()
    await node.add(e)
    asked: list[str] = []

    def may_start(endpoint_id: str) -> bool:
        asked.append(endpoint_id)
        return len(asked) > 1

    engine = node.run(may_start=may_start)
    await engine.start([e])
    engine.accepted(await node.ingest(e))
    await eventually(lambda: len(node.sender.requests) == 1)
    assert asked == [e.id, e.id]
    await eventually(lambda: engine.queued() == 0 and engine.in_flight == 0)


async def test_a_refusal_holds_every_delivery_of_the_lane(node: Node) -> None:
    e, other = endpoint(), endpoint()
    await node.add(e, other)
    engine = node.run(may_start=lambda endpoint_id: endpoint_id == other.id)
    await engine.start([e, other])
    engine.accepted(await node.ingest(e, other, count=5))
    await eventually(lambda: len(node.by(other)) == 5)
    await asyncio.sleep(QUIET)
    assert node.by(e) == []
    assert engine.queued() == 5


# -- taking endpoints over -----------------------------------------------------------------


async def test_a_taken_open_breaker_sends_nothing_before_its_probe_time(node: Node) -> None:
    e = endpoint()
    await node.add(e)
    engine = node.run()
    await engine.start([])
    await node.ingest(e, count=3)
    probe_at = time.time() + 0.5
    opened = BreakerSnapshot(
        state=BreakerState.OPEN,
        cooldown=30.0,
        next_probe_at=probe_at,
        consecutive_trips=2,
        consecutive_failures=0,
    )
    engine.take([e], await node.pending(), breakers={e.id: opened})
    assert engine.breaker_snapshots([e.id]) == {e.id: opened}
    status = engine.breaker_status(e.id)
    assert status is not None and status.next_probe_at == probe_at
    await eventually(lambda: len(node.by(e)) == 3)
    first, *rest = node.by(e)
    assert first >= probe_at
    assert all(at >= first for at in rest)
    snapshot = engine.breaker_snapshots()[e.id]
    assert (snapshot.state, snapshot.consecutive_trips) == (BreakerState.CLOSED, 0)


@pytest.mark.parametrize("filled", [True, False], ids=["filled", "not-filled"])
async def test_a_taken_rate_limit_waits_one_window(node: Node, filled: bool) -> None:
    e = endpoint(rate_limit=2, rate_limit_duration=0.4)
    window = 0.4 * 1.05  # the engine's guard on every window (delivery.lane)
    await node.add(e)
    engine = node.run()
    await engine.start([])
    await node.ingest(e, count=3)
    moved_at = time.time()
    engine.take([e], await node.pending(), fill_limiters_at=moved_at if filled else None)
    await eventually(lambda: len(node.by(e)) == 3)
    sent = node.by(e)
    if filled:
        # The previous owner may have sent two at the move: none here within that window.
        assert sent[0] >= moved_at + window
        assert sent[2] >= moved_at + 2 * window
    else:
        assert sent[1] < moved_at + window
        assert sent[2] >= moved_at + window


async def test_take_updates_a_lane_already_held(node: Node) -> None:
    gate = Gate()
    e = endpoint(max_concurrency=1)
    await node.add(e)
    engine = node.run(script=[gate])
    await engine.start([e])
    engine.accepted(await node.ingest(e, count=2))
    await eventually(in_flight_is(engine, 1))
    # Taken again while an attempt is in flight: that attempt still counts against the
    # endpoint's concurrency, and what is queued stays queued once.
    engine.take([e], await node.pending())
    await asyncio.sleep(QUIET)
    assert (engine.in_flight, engine.queued(), len(node.sender.requests)) == (1, 1, 1)
    gate.opened.set()
    await eventually(lambda: len(node.sender.requests) == 2)
    await asyncio.sleep(QUIET)
    assert len(node.sender.requests) == 2


# -- giving endpoints up -------------------------------------------------------------------


async def test_drop_forgets_what_the_lanes_held(node: Node) -> None:
    gate = Gate()
    e, other = endpoint(max_concurrency=1, retry_policy=ONE_RETRY), endpoint()
    await node.add(e, other)
    engine = node.run(script=[500, gate])  # the first attempt fails: its retry is timed
    await engine.start([e, other])
    engine.accepted(await node.ingest(e, count=3))
    # The second delivery held in flight, the third queued, the first's retry timed.
    await eventually(lambda: len(node.sender.requests) == 2 and engine.in_flight == 1)
    assert engine.queued() == 1

    engine.drop([e.id])
    assert engine.endpoint_ids() == [other.id]
    assert engine.queued() == 0
    assert engine.in_flight == 1  # left to finish
    gate.opened.set()
    await eventually(in_flight_is(engine, 0))
    await asyncio.sleep(0.3 + QUIET)  # the retry's time has come and gone
    assert len(node.by(e)) == 2

    # Nothing of it is tracked any more: taken back, everything pending goes out again.
    await node.recorder.flush()
    pending = [d for d in await node.pending() if d.endpoint_id == e.id]
    assert sorted(d.status for d in pending) == [DeliveryStatus.RETRY, DeliveryStatus.SCHEDULED]
    engine.take([e], pending)
    await eventually(lambda: len(node.by(e)) == 4)
    await node.recorder.flush()
    assert [d for d in await node.pending() if d.endpoint_id == e.id] == []


async def test_a_retry_timed_before_a_drop_stays_forgotten_when_taken_back(node: Node) -> None:
    e = endpoint(retry_policy=ONE_RETRY)
    await node.add(e)
    engine = node.run(script=[500])
    await engine.start([e])
    engine.accepted(await node.ingest(e))
    await eventually(lambda: len(node.sender.requests) == 1 and engine.in_flight == 0)
    await node.recorder.flush()
    (retry,) = await node.pending()  # due in 0.3 s, on this engine's timer heap
    engine.drop([e.id])
    # Meanwhile another node sends it, and the endpoint comes back here before the old timer
    # would have fired: only what the store says now may be sent.
    done = dataclasses.replace(retry, status=DeliveryStatus.SUCCESS, next_attempt_at=None)
    await node.store.record([AttemptRecord(attempt=None, delivery=done)])
    engine.take([e], await node.pending())
    await asyncio.sleep(0.3 + QUIET)
    assert len(node.sender.requests) == 1


async def test_an_attempt_in_flight_when_dropped_leaves_no_trace_in_memory(node: Node) -> None:
    old, new = Gate(status=500), Gate()
    e = endpoint(retry_policy=ONE_RETRY)
    await node.add(e)
    engine = node.run(script=[old, new])
    await engine.start([e])
    engine.accepted(await node.ingest(e))
    await eventually(in_flight_is(engine, 1))
    engine.drop([e.id])
    # Taken back before that attempt ends (the store has the delivery pending): it is sent
    # again, the attempts overlapping (at least once).
    engine.take([e], await node.pending())
    await eventually(lambda: len(node.sender.requests) == 2)
    # The old attempt ends (a failure, stored as RETRY): neither it nor the store's pending
    # row may start a third attempt while the new one is in flight.
    old.opened.set()
    await eventually(in_flight_is(engine, 1))
    await node.recorder.flush()
    (retry,) = await node.pending()
    assert retry.status is DeliveryStatus.RETRY
    engine.admit([retry])
    await asyncio.sleep(0.3 + QUIET)
    assert len(node.sender.requests) == 2
    new.opened.set()
    await eventually(in_flight_is(engine, 0))
    await node.recorder.flush()
    assert await node.pending() == []


async def test_release_waits_for_attempts_in_flight_then_drops(node: Node) -> None:
    first, second = Gate(), Gate()
    e = endpoint(max_concurrency=2)
    await node.add(e)
    engine = node.run(script=[first, second])
    await engine.start([e])
    engine.accepted(await node.ingest(e, count=3))
    await eventually(in_flight_is(engine, 2))

    release = asyncio.create_task(engine.release([e.id], timeout=10))
    first.opened.set()
    await eventually(in_flight_is(engine, 1))
    await asyncio.sleep(QUIET)
    # A slot is free and a delivery waits, but no attempt starts on a lane being handed off.
    assert not release.done()
    assert len(node.sender.requests) == 2
    assert engine.endpoint_ids() == [e.id]

    second.opened.set()
    await asyncio.wait_for(release, 5)
    assert engine.endpoint_ids() == []
    assert engine.in_flight == 0
    # The outcomes are stored by then: the next owner loads only what is left.
    assert [d.status for d in await node.pending()] == [DeliveryStatus.SCHEDULED]


async def test_release_gives_up_waiting_after_its_timeout(node: Node) -> None:
    gate = Gate()
    e = endpoint()
    await node.add(e)
    engine = node.run(script=[gate])
    await engine.start([e])
    engine.accepted(await node.ingest(e))
    await eventually(in_flight_is(engine, 1))
    started = time.monotonic()
    await engine.release([e.id], timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert engine.endpoint_ids() == []
    assert engine.in_flight == 1
    gate.opened.set()
    await eventually(in_flight_is(engine, 0))


async def test_take_during_release_keeps_the_lane(node: Node) -> None:
    gate = Gate()
    e = endpoint()
    await node.add(e)
    engine = node.run(script=[gate])
    await engine.start([e])
    engine.accepted(await node.ingest(e, count=2))
    await eventually(in_flight_is(engine, 1))
    release = asyncio.create_task(engine.release([e.id], timeout=10))
    await asyncio.sleep(0)
    engine.take([e], [])  # claimed back before the hand-off finished
    gate.opened.set()
    await asyncio.wait_for(release, 5)
    assert engine.endpoint_ids() == [e.id]
    await eventually(lambda: len(node.sender.requests) == 2)


async def test_a_row_read_before_an_outcome_was_stored_is_not_sent_again(node: Node) -> None:
    # A cluster node admits rows its poll and notifications read; one read before this node's
    # attempt of it was stored shows the delivery pending still.
    e = endpoint()
    await node.add(e)
    engine = node.run(owns=lambda _id: True)
    await engine.start([])
    await node.ingest(e)
    read_before = await node.pending()
    engine.take([e], read_before)
    await eventually(lambda: len(node.sender.requests) == 1 and engine.in_flight == 0)
    await node.recorder.flush()
    engine.admit(read_before)
    await asyncio.sleep(QUIET)
    assert len(node.sender.requests) == 1
    # A newer row (retried through the API: as many attempts as this node knows of) goes out.
    done = await node.store.get_delivery(read_before[0].id)
    assert (done.status, done.attempt_count) == (DeliveryStatus.SUCCESS, 1)
    retried = dataclasses.replace(done, status=DeliveryStatus.SCHEDULED, next_attempt_at=None)
    engine.admit([retried])
    await eventually(lambda: len(node.sender.requests) == 2)


async def test_breaker_snapshots_of_the_lanes_held(node: Node) -> None:
    tripping, healthy = endpoint(), endpoint()
    await node.add(tripping, healthy)
    engine = node.run(script=[503] * 10)
    await engine.start([tripping, healthy])
    engine.accepted(await node.ingest(tripping, count=10))
    await eventually(lambda: engine.breaker_snapshots()[tripping.id].state is BreakerState.OPEN)
    snapshots = engine.breaker_snapshots()
    assert set(snapshots) == {tripping.id, healthy.id}
    assert snapshots[tripping.id].consecutive_trips == 1
    assert snapshots[healthy.id].state is BreakerState.CLOSED
    assert engine.breaker_snapshots([healthy.id, "ep_unknown"]) == {
        healthy.id: snapshots[healthy.id]
    }
    engine.drop([tripping.id])
    assert set(engine.breaker_snapshots()) == {healthy.id}
