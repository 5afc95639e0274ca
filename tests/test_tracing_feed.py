"""An event's trace crosses between cluster nodes with its body: the work notification one node
sends (convoyd/cluster/feed.py) gives the owning node's engine the body with its trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from convoyd.cluster import feed
from convoyd.core.tracecontext import EventTrace, TraceParent
from convoyd.store import codec
from convoyd.store.base import Payload
from tests.feed_support import cluster_feed
from tests.store.contract_data import endpoint, event_write

TRACE = EventTrace(
    parent=TraceParent(trace_id=0xABC, span_id=0xDEF, flags=1),
    tracestate="vendor=1",
    ingest=TraceParent(trace_id=0xABC, span_id=0x123, flags=1),
)


# Only what taking work touches: the engine's intake and whether this node owns an endpoint.
class _Engine:
    def __init__(self) -> None:
        self.bodies: dict[str, Payload] = {}
        self.admitted: list[str] = []

    def remember_payload(self, event_id: str, payload: Payload) -> None:
        self.bodies[event_id] = payload

    def admit(self, deliveries: Any) -> int:
        self.admitted.extend(d.id for d in deliveries)
        return len(self.admitted)


class _Membership:
    node_id = "node-b"

    def owns(self, endpoint_id: str) -> bool:
        return True


@pytest.mark.parametrize("trace", [TRACE, None])
def test_a_work_notification_carries_the_body_with_its_trace(trace: EventTrace | None) -> None:
    write = event_write([endpoint()])
    (delivery,) = write.deliveries
    body = Payload(data=b'{"a":1}', headers={"X-A": "1"}, trace=trace)
    (message,) = feed._work_messages(
        "node-a", 0.0, {delivery.id: (list(codec.delivery_to_row(delivery)), body)}
    )
    engine = _Engine()
    receiving = cluster_feed(engine=engine, membership=_Membership())
    parsed = json.loads(message)
    receiving._take_work(parsed["d"], parsed["p"])
    assert engine.admitted == [delivery.id]
    assert engine.bodies == {delivery.event_id: body}
