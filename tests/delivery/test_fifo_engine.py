"""The engine's FIFO lanes against a real SqliteStore: a lane taken (a shard move) starts from
the store's head whatever the previous owner left, a change to FIFO holds what was queued, and
the breaker-opened hook (operator events) is told and cannot hurt the engine."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

from convoyd.core.breaker import BreakerConfig
from convoyd.core.model import DeliveryStatus, Endpoint, Ordering
from convoyd.delivery.config import EngineConfig
from convoyd.delivery.engine import Engine
from convoyd.store.base import AttemptRecord
from tests.delivery import test_engine_ownership
from tests.delivery.test_engine_ownership import (  # the same real engine, store and sender
    Gate,
    Node,
    TimedSender,
    endpoint,
)
from tests.receivers import eventually

node = test_engine_ownership.node  # the fixture


def fifo() -> Endpoint:
    e = endpoint()
    return dataclasses.replace(e, spec=dataclasses.replace(e.spec, ordering=Ordering.FIFO))


def sent_ids(node: Node) -> list[str]:
    return [dict(r.headers)["webhook-id"] for r in node.sender.requests]


async def test_a_taken_fifo_lane_starts_from_the_stores_head(node: Node) -> None:
    e = fifo()
    await node.add(e)
    engine = node.run()
    await engine.start([])
    writes = await node.ingest(e, count=5)
    ids = [w.deliveries[0].id for w in writes]
    # The previous owner delivered the first two; the third was in flight when it lost the
    # shard (PROCESSING, as a crash leaves it).
    done = [dataclasses.replace(w.deliveries[0], status=DeliveryStatus.SUCCESS) for w in writes[:2]]
    busy = dataclasses.replace(writes[2].deliveries[0], status=DeliveryStatus.PROCESSING)
    await node.store.record([AttemptRecord(attempt=None, delivery=d) for d in (*done, busy)])

    # Handed over in no particular order, as a notification or poll might.
    engine.take([e], list(reversed(await node.pending())))
    await eventually(lambda: len(node.sender.requests) == 3)
    assert sent_ids(node) == ids[2:]


async def test_a_change_to_fifo_holds_what_was_queued_behind_the_head(node: Node) -> None:
    gate = Gate(status=500)
    e = endpoint(max_concurrency=4)
    await node.add(e)
    engine = node.run(script=[gate])
    await engine.start([e])
    writes = await node.ingest(e, count=4)
    ids = [w.deliveries[0].id for w in writes]
    engine.accepted(writes[:1])
    await eventually(lambda: engine.in_flight == 1)  # the first attempt of the first one

    ordered = dataclasses.replace(e, spec=dataclasses.replace(e.spec, ordering=Ordering.FIFO))
    engine.endpoint_changed(ordered)
    engine.accepted(writes[1:])
    await asyncio.sleep(0.3)  # nothing may start beside the attempt in flight
    assert (engine.in_flight, sent_ids(node)) == (1, ids[:1])
    gate.opened.set()  # it fails: a retry (its policy's, seconds ahead) holds the others
    await eventually(lambda: engine.in_flight == 0)
    await asyncio.sleep(0.3)
    assert sent_ids(node) == ids[:1]
    heads = await node.store.fifo_heads([e.id])
    assert heads[e.id].id == ids[0]
    assert heads[e.id].status is DeliveryStatus.RETRY


async def test_the_breaker_opened_hook_is_told_and_cannot_break_the_engine(node: Node) -> None:
    e = endpoint()
    await node.add(e)
    told: list[str] = []

    def hook(endpoint: Endpoint) -> None:
        told.append(endpoint.id)
        raise RuntimeError("the hook's own bug")

    node.sender = TimedSender([500] * 3)
    engine = Engine(
        node.store,
        node.sender,
        node.recorder,
        clock=time.time,
        rng=random.Random(7),
        config=EngineConfig(
            sweep_interval=60.0,
            breaker=BreakerConfig(min_requests=2, consecutive_failures=2, cooldown=30.0),
        ),
        payloads=node.cache,
        on_breaker_opened=hook,
    )
    node.engine = engine
    await engine.start([e])
    engine.accepted(await node.ingest(e, count=3))
    await eventually(lambda: told == [e.id])
    assert engine.alive
    assert engine.breaker_counts()["open"] == 1
