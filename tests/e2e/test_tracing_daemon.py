"""Traces from the caller's gRPC request to the receiver's, through the real `convoyd serve`
(its attempts made by sender worker processes): the spans reach a loopback OTLP/gRPC collector,
the receivers (real aiohttp servers) get the trace id and the exported attempt span's id, no
secret is in any span, and convoyctl turns trace context off and on per endpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convoyd.client import Client
from convoyd.core.tracecontext import TraceParent, parse_traceparent
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import event_pb2, event_pb2_grpc
from tests.conftest import DaemonProcess, Running, daemon_env
from tests.otlp_collector import Collector, Exported
from tests.receivers import Received, Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

CALLER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN = 0x00F067AA0BA902B7
CALLER = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"
SECRET = "whsec_" + "ZTJlLXNpZ25pbmctc2VjcmV0LWZvci10cmFjZXM="
API_KEY = "api-key-value-never-in-spans-91c4"
HEADER_VALUE = "custom-value-never-in-spans-55aa"
PAYLOAD_MARK = "payload-never-in-spans-0f3e"


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = await Collector().start()
    yield c
    await c.close()


@pytest.fixture
async def tracing_daemon(tmp_path: Path, collector: Collector) -> AsyncIterator[DaemonProcess]:
    data_dir = tmp_path / "data"
    env = daemon_env(
        data_dir,
        CONVOYD_TELEMETRY_OTLP_ENDPOINT=collector.endpoint,
        CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
        CONVOYD_DELIVERY_SENDER_WORKERS="1",  # attempts are made in a worker process
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_SERVICE_NAME="convoyd-e2e",
    )
    process = DaemonProcess(data_dir=data_dir, env=env)
    try:
        yield process
    finally:
        if process.proc is not None and process.proc.poll() is None:
            # Stopped from a thread: the collector and receivers live in this loop and must
            # answer the daemon's last export while it drains.
            await asyncio.to_thread(process.stop)


def header(request: Received, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name)


def ctl(running: Running, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "convoyd.ctl", "--target", running.grpc_target, "--json", *args],
        env={"PATH": "/usr/bin:/bin", "CONVOYD_TOKEN": running.token},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = json.loads(result.stdout)
    return out


async def create_event(
    running: Running, endpoint_ids: list[str], i: int, *metadata: tuple[str, str]
) -> event_pb2.Event:
    async with running.channel() as channel:
        stub = event_pb2_grpc.EventServiceStub(channel)
        return await stub.CreateEvent(
            event_pb2.CreateEventRequest(
                endpoint_ids=endpoint_ids,
                event_type="order.created",
                data=json.dumps({"mark": PAYLOAD_MARK, "i": i}).encode(),
                headers={"X-Note": HEADER_VALUE},
            ),
            metadata=(*running.metadata, *metadata),
            timeout=10,
        )


def attempts_for(spans: list[Exported], event_id: str) -> list[Exported]:
    return [
        s
        for s in spans
        if s.name == "convoyd attempt" and s.attributes["convoyd.event.id"] == event_id
    ]


async def test_a_trace_runs_from_the_caller_through_convoyd_to_the_receiver(
    tracing_daemon: DaemonProcess, collector: Collector
) -> None:
    joined, opted_out = await Receiver().start(), await Receiver().start()
    try:
        running = await asyncio.to_thread(tracing_daemon.start)
        async with Client(running.grpc_target, token=running.token) as client:
            traced = await client.create_endpoint(
                pb.Endpoint(
                    url=joined.url,
                    headers={"X-Custom": HEADER_VALUE},
                    authentication=pb.EndpointAuthentication(
                        api_key=pb.ApiKeyAuthentication(
                            header_name="X-Api-Key", header_value=API_KEY
                        )
                    ),
                ),
                secret=SECRET,
            )
        # The opted-out endpoint is made the way an operator would.
        plain = await asyncio.to_thread(
            ctl, running, "endpoints", "create", "--url", opted_out.url, "--no-trace-context"
        )
        assert plain["sendTraceContext"] is False
        plain_id = str(plain["id"])

        event = await create_event(
            running,
            [traced.id, plain_id],
            0,
            ("traceparent", CALLER),
            ("tracestate", "congo=t61rcWkgMzE"),
        )
        (got,) = await joined.wait_for(1)
        (bare,) = await opted_out.wait_for(1)
        spans = await collector.wait(lambda s: len(attempts_for(s, event.id)) == 2)

        # Back on, with convoyctl: the next event's request to it carries the trace too.
        again = await asyncio.to_thread(
            ctl, running, "endpoints", "update", plain_id, "--trace-context"
        )
        assert again["sendTraceContext"] is True
        second = await create_event(running, [plain_id], 1, ("traceparent", CALLER))
        _, now_traced = await opted_out.wait_for(2)
        spans = await collector.wait(lambda s: len(attempts_for(s, second.id)) == 1)
    finally:
        await joined.close()
        await opted_out.close()

    carried = parse_traceparent(header(got, "traceparent") or "")
    assert carried is not None and carried.trace_id == CALLER_TRACE and carried.sampled
    assert header(got, "tracestate") == "congo=t61rcWkgMzE"
    assert header(bare, "traceparent") is None and header(bare, "tracestate") is None

    by_endpoint = {a.attributes["convoyd.endpoint.id"]: a for a in attempts_for(spans, event.id)}
    attempt = by_endpoint[traced.id]
    # Its link names the ingest span of its call (which ended before it began: exported).
    ingests = {s.span_id: s for s in spans if s.name == "convoyd.v1.EventService/CreateEvent"}
    ingest = ingests[attempt.links[0][1]]
    assert ingest.trace_id == CALLER_TRACE and ingest.attributes["convoyd.event_count"] == 1
    assert ingest.parent_id == CALLER_SPAN
    assert ingest.resource["service.name"] == "convoyd-e2e"
    # The receiver's parent span is the attempt span convoyd exported.
    assert attempt.span_id == carried.span_id
    assert attempt.attributes["convoyd.delivery.id"] == header(got, "webhook-id")
    for span in by_endpoint.values():
        assert (span.trace_id, span.parent_id) == (CALLER_TRACE, CALLER_SPAN)
        assert span.links == [(CALLER_TRACE, ingest.span_id)]
        assert span.attributes["http.response.status_code"] == 200
        assert span.attributes["convoyd.attempt.number"] == 1
        assert span.end_ns >= span.start_ns
    later = parse_traceparent(header(now_traced, "traceparent") or "")
    (second_attempt,) = attempts_for(spans, second.id)
    assert later == TraceParent(trace_id=CALLER_TRACE, span_id=second_attempt.span_id, flags=1)

    forbidden = [SECRET, SECRET.removeprefix("whsec_"), API_KEY, HEADER_VALUE, PAYLOAD_MARK]
    forbidden.append(running.token)
    for span in spans:
        text = json.dumps([span.name, span.attributes, span.span.status.message], default=str)
        for secret in forbidden:
            assert secret not in text, (span.name, secret[:8])


async def test_without_a_caller_trace_each_event_gets_a_fresh_one(
    tracing_daemon: DaemonProcess, collector: Collector
) -> None:
    receiver = await Receiver().start()
    try:
        running = await asyncio.to_thread(tracing_daemon.start)
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url=receiver.url))
        events = [await create_event(running, [ep.id], i) for i in range(3)]
        got = await receiver.wait_for(3)
        spans = await collector.wait(lambda s: all(len(attempts_for(s, e.id)) == 1 for e in events))
    finally:
        await receiver.close()
    carried = {
        header(r, "webhook-id"): parse_traceparent(header(r, "traceparent") or "") for r in got
    }
    assert all(p is not None and p.sampled for p in carried.values())
    assert len({p.trace_id for p in carried.values() if p}) == 3
    roots = {s.attributes["convoyd.event.id"]: s for s in spans if s.name == "convoyd event"}
    for event in events:
        (attempt,) = attempts_for(spans, event.id)
        parent = carried[attempt.attributes["convoyd.delivery.id"]]
        assert parent == TraceParent(trace_id=attempt.trace_id, span_id=attempt.span_id, flags=1)
        root = roots[event.id]
        assert root.parent_id == 0 and (attempt.trace_id, attempt.parent_id) == (
            root.trace_id,
            root.span_id,
        )
        assert attempt.links == root.links and len(root.links) == 1
    assert CALLER_TRACE not in {s.trace_id for s in spans}
