"""Tracing in a cluster: an event accepted by one node and delivered by the node that holds its
endpoint keeps the caller's trace (it travels with the event's body between nodes, or is read
from the store), and the delivering node exports the attempt span the receiver's request names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convoyd.core.tracecontext import parse_traceparent
from convoyd.v1 import endpoint_pb2, event_pb2, event_pb2_grpc
from tests.e2e.cluster_support import Cluster, Node
from tests.otlp_collector import Collector
from tests.receivers import Receiver

pytestmark = pytest.mark.e2e

CALLER_TRACE = 0x5C2A3E9B1F0D4E7A8B6C5D4E3F2A1B0C
CALLER = f"00-{CALLER_TRACE:032x}-1122334455667788-01"


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = await Collector().start()
    yield c
    await c.close()


@pytest.fixture
async def two(
    tmp_path: Path, postgres_dsn: str, collector: Collector
) -> AsyncIterator[tuple[Cluster, Node, Node]]:
    cluster = Cluster(tmp_path, postgres_dsn)
    try:
        nodes = [cluster.add() for _ in range(2)]
        for node in nodes:
            node.daemon.env.update(
                CONVOYD_TELEMETRY_OTLP_ENDPOINT=collector.endpoint, OTEL_BSP_SCHEDULE_DELAY="50"
            )
        first, second = [await cluster.start(node) for node in nodes]
        await cluster.wait_spread([first, second])
        yield cluster, first, second
    finally:
        await cluster.close()


async def test_the_delivering_node_carries_the_trace_the_accepting_node_stored(
    two: tuple[Cluster, Node, Node], collector: Collector
) -> None:
    cluster, accepting, delivering = two
    receiver = await Receiver().start()
    try:
        assert accepting.client is not None and accepting.running is not None
        for n in range(64):
            made = await accepting.client.create_endpoint(
                endpoint_pb2.Endpoint(url=f"{receiver.url}/{n}")
            )
            if await cluster.owner_of(made.id) == delivering.node_id:
                break
        else:
            raise AssertionError("no endpoint landed on the delivering node's shards")
        async with accepting.running.channel() as channel:
            event = await event_pb2_grpc.EventServiceStub(channel).CreateEvent(
                event_pb2.CreateEventRequest(endpoint_ids=[made.id], event_type="t", data=b"{}"),
                metadata=(*accepting.running.metadata, ("traceparent", CALLER)),
                timeout=10,
            )
        (request,) = await receiver.wait_for(1, within=30)
        spans = await collector.wait(
            lambda s: any(
                x.name == "convoyd attempt" and x.attributes["convoyd.event.id"] == event.id
                for x in s
            ),
            within=30,
        )
    finally:
        await receiver.close()
    carried = parse_traceparent(
        {k.lower(): v for k, v in request.headers.items()}.get("traceparent", "")
    )
    assert carried is not None and carried.trace_id == CALLER_TRACE
    (attempt,) = [s for s in spans if s.name == "convoyd attempt"]
    assert attempt.span_id == carried.span_id and attempt.trace_id == CALLER_TRACE
    (ingest,) = [s for s in spans if s.name == "convoyd.v1.EventService/CreateEvent"]
    assert attempt.links == [(CALLER_TRACE, ingest.span_id)]
