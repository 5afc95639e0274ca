"""Tracing in one process: the spans convoyd exports (to a loopback OTLP/gRPC collector), the
traceparent its webhook requests carry (to real receivers), sampling, and the trace kept with
the event in the store. The real `convoyd serve` with its sender workers: tests/e2e."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from convoyd.app import App
from convoyd.client import Client, event_request
from convoyd.core.tracecontext import TraceParent, parse_traceparent
from convoyd.settings import TelemetrySettings
from convoyd.store.base import EventQuery
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import event_pb2, event_pb2_grpc
from tests.conftest import LOOPBACK_ALLOWED, Running, running_app
from tests.otlp_collector import Collector, Exported
from tests.receivers import Receiver, eventually

CALLER_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
CALLER_SPAN = 0xB7AD6B7169203331
CALLER = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"
SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10cmFjaW5n"
API_KEY = "key-that-must-never-be-in-a-span-7d1f"
CUSTOM_VALUE = "custom-header-value-3a9e"
PAYLOAD_MARK = "payload-content-5b2c"

ReceiverFactory = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = await Collector().start()
    yield c
    await c.close()


@pytest.fixture(autouse=True)
def quick_export(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's own variables: spans leave within 50 ms, under this service name.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "convoyd-under-test")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)


def traced(
    tmp_path: Path, collector: Collector, ratio: float | None = None
) -> AsyncIterator[tuple[App, Running]]:
    telemetry = TelemetrySettings(otlp_endpoint=collector.endpoint, sampling_ratio=ratio)
    return running_app(tmp_path / "data", delivery=LOOPBACK_ALLOWED, telemetry=telemetry)


async def send(
    running: Running, requests: list[event_pb2.CreateEventRequest], *extra: tuple[str, str]
) -> list[event_pb2.Event]:
    """BatchCreateEvents with the caller's own metadata (traceparent, tracestate)."""
    async with running.channel() as channel:
        stub = event_pb2_grpc.EventServiceStub(channel)
        reply = await stub.BatchCreateEvents(
            event_pb2.BatchCreateEventsRequest(requests=requests),
            metadata=(*running.metadata, *extra),
            timeout=10,
        )
    return list(reply.events)


def header(received: dict[str, str], name: str) -> str | None:
    return {k.lower(): v for k, v in received.items()}.get(name)


def no_secret_in(spans: list[Exported], *secrets: str) -> None:
    for span in spans:
        for key, value in span.attributes.items():
            for secret in secrets:
                assert secret not in str(value), (span.name, key)
        for secret in secrets:
            assert secret not in span.name
            assert secret not in span.span.status.message


async def test_a_batch_joins_the_callers_trace_and_the_receivers_join_it_too(
    tmp_path: Path, collector: Collector, receivers: ReceiverFactory
) -> None:
    traced_rx, plain_rx = await receivers(), await receivers()
    async with traced(tmp_path, collector) as (_, running):
        async with Client(running.grpc_target, token=running.token) as client:
            with_trace = await client.create_endpoint(
                pb.Endpoint(
                    url=traced_rx.url,
                    headers={"X-Custom": CUSTOM_VALUE},
                    authentication=pb.EndpointAuthentication(
                        api_key=pb.ApiKeyAuthentication(
                            header_name="X-Api-Key", header_value=API_KEY
                        )
                    ),
                ),
                secret=SECRET,
            )
            without = await client.create_endpoint(
                pb.Endpoint(url=plain_rx.url, send_trace_context=False)
            )
            assert with_trace.send_trace_context and not without.send_trace_context
        requests = [
            event_request(
                event_type="order.created",
                data={"mark": PAYLOAD_MARK, "i": i},
                endpoint_ids=[with_trace.id, without.id],
                headers={"X-Event-Note": CUSTOM_VALUE},
            )
            for i in range(2)
        ]
        events = await send(
            running, requests, ("traceparent", CALLER), ("tracestate", "vendor=abc, other=1")
        )
        got = await traced_rx.wait_for(2)
        plain = await plain_rx.wait_for(2)
        spans = await collector.wait(
            lambda s: (
                sum(x.name == "convoyd attempt" for x in s) >= 4
                and any(x.name == "convoyd store record" for x in s)
            )
        )

    # The receiver that takes trace context gets the caller's trace with an attempt span's id.
    sent: dict[str, TraceParent] = {}
    for request in got:
        parent = parse_traceparent(header(request.headers, "traceparent") or "")
        assert parent is not None and parent.trace_id == CALLER_TRACE and parent.sampled
        assert header(request.headers, "tracestate") == "vendor=abc,other=1"
        sent[header(request.headers, "webhook-id") or ""] = parent
    # The other one gets neither header.
    for request in plain:
        assert header(request.headers, "traceparent") is None
        assert header(request.headers, "tracestate") is None

    (ingest,) = [s for s in spans if s.name == "convoyd.v1.EventService/BatchCreateEvents"]
    assert (ingest.trace_id, ingest.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    assert ingest.attributes["convoyd.event_count"] == 2
    assert ingest.attributes["convoyd.delivery_count"] == 4
    assert ingest.attributes["rpc.method"] == "BatchCreateEvents"
    assert ingest.resource["service.name"] == "convoyd-under-test"  # OTEL_SERVICE_NAME
    (store_ingest,) = collector.named("convoyd store ingest")
    assert (store_ingest.trace_id, store_ingest.parent_id) == (CALLER_TRACE, ingest.span_id)
    assert store_ingest.attributes["db.system.name"] == "sqlite"

    attempts = collector.named("convoyd attempt")
    assert len(attempts) == 4
    by_delivery = {a.attributes["convoyd.delivery.id"]: a for a in attempts}
    for attempt in attempts:
        assert (attempt.trace_id, attempt.parent_id) == (CALLER_TRACE, CALLER_SPAN)
        assert attempt.links == [(CALLER_TRACE, ingest.span_id)]
        assert attempt.attributes["convoyd.attempt.number"] == 1
        assert attempt.attributes["http.response.status_code"] == 200
        assert attempt.attributes["convoyd.attempt.result"] == "success"
        assert attempt.attributes["convoyd.event.id"] in {e.id for e in events}
        assert not attempt.failed
        assert attempt.end_ns >= attempt.start_ns
    # The span id each request carried is its attempt's exported span.
    for delivery_id, parent in sent.items():
        assert by_delivery[delivery_id].span_id == parent.span_id
        assert by_delivery[delivery_id].attributes["convoyd.endpoint.id"] == with_trace.id
    assert len({a.span_id for a in attempts}) == 4

    record = collector.named("convoyd store record")[0]
    assert record.parent_id == 0 and record.attributes["db.operation.batch.size"] >= 1
    no_secret_in(spans, SECRET, SECRET[len("whsec_") :], API_KEY, CUSTOM_VALUE, PAYLOAD_MARK)
    no_secret_in(spans, running.token)


async def test_without_a_caller_trace_each_event_starts_its_own(
    tmp_path: Path, collector: Collector, receivers: ReceiverFactory
) -> None:
    rx = await receivers()
    async with traced(tmp_path, collector) as (_, running):
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url=rx.url))
            single = await client.create_event(event_type="t", data={"n": 0}, endpoint_ids=[ep.id])
        batch = await send(
            running,
            [event_request(event_type="t", data={"n": i}, endpoint_ids=[ep.id]) for i in (1, 2)],
        )
        got = await rx.wait_for(3)
        spans = await collector.wait(lambda s: sum(x.name == "convoyd attempt" for x in s) >= 3)

    parents = [parse_traceparent(header(r.headers, "traceparent") or "") for r in got]
    assert all(p is not None and p.sampled for p in parents)
    assert len({p.trace_id for p in parents if p}) == 3  # a trace per event
    ingests = [s for s in spans if s.name.startswith("convoyd.v1.EventService/")]
    assert sorted(s.name.rsplit("/")[1] for s in ingests) == ["BatchCreateEvents", "CreateEvent"]
    assert all(s.parent_id == 0 for s in ingests)  # roots of their own traces
    events = {s.attributes["convoyd.event.id"]: s for s in collector.named("convoyd event")}
    assert set(events) == {single.id, *(e.id for e in batch)}
    ingest_ids = {(s.trace_id, s.span_id) for s in ingests}
    for attempt in collector.named("convoyd attempt"):
        root = events[attempt.attributes["convoyd.event.id"]]
        assert root.parent_id == 0 and root.links[0] in ingest_ids
        assert (attempt.trace_id, attempt.parent_id) == (root.trace_id, root.span_id)
        assert attempt.links == root.links  # to its event's ingest span
        assert attempt.span_id in {p.span_id for p in parents if p}


async def test_each_retry_is_a_span_of_its_own_with_its_number_and_outcome(
    tmp_path: Path, collector: Collector, receivers: ReceiverFactory
) -> None:
    rx = await receivers(script=[503])
    async with traced(tmp_path, collector) as (_, running):
        async with Client(running.grpc_target, token=running.token) as client:
            retry_now = pb.RetryPolicy(schedule=pb.ScheduleRetry(), jitter=0)
            retry_now.schedule.delays.add()  # one retry, at once
            ep = await client.create_endpoint(pb.Endpoint(url=rx.url, retry_policy=retry_now))
        await send(
            running,
            [event_request(event_type="t", data={}, endpoint_ids=[ep.id])],
            ("traceparent", CALLER),
        )
        got = await rx.wait_for(2)
        await collector.wait(lambda s: sum(x.name == "convoyd attempt" for x in s) >= 2)
    first, second = sorted(collector.named("convoyd attempt"), key=lambda a: a.start_ns)
    assert [
        first.attributes["convoyd.attempt.number"],
        second.attributes["convoyd.attempt.number"],
    ] == [1, 2]
    assert first.failed and first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert first.attributes["convoyd.attempt.result"] == "http_error"
    assert not second.failed and second.attributes["http.response.status_code"] == 200
    carried = [parse_traceparent(header(r.headers, "traceparent") or "") for r in got]
    assert [p.span_id for p in carried if p] == [first.span_id, second.span_id]
    assert first.attributes["convoyd.delivery.id"] == second.attributes["convoyd.delivery.id"]


async def test_an_attempt_that_gets_no_answer_says_why(
    tmp_path: Path, collector: Collector
) -> None:
    async with traced(tmp_path, collector) as (_, running):
        async with Client(running.grpc_target, token=running.token) as client:
            # A port just closed: nothing listens there, the connection is refused.
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            ep = await client.create_endpoint(pb.Endpoint(url=f"http://127.0.0.1:{port}/in"))
            await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
        await collector.wait(lambda s: any(x.name == "convoyd attempt" for x in s))
    (attempt,) = collector.named("convoyd attempt")
    assert attempt.failed and attempt.attributes["error.type"] == "network"
    assert attempt.attributes["convoyd.attempt.result"] == "network_error"
    assert "http.response.status_code" not in attempt.attributes


async def test_sampling_keeps_a_callers_decision_and_samples_new_traces_by_ratio(
    tmp_path: Path, collector: Collector, receivers: ReceiverFactory
) -> None:
    rx = await receivers()
    async with traced(tmp_path, collector, ratio=0.0) as (_, running):
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url=rx.url))
            # No caller trace at ratio 0: a trace is started, sent as not sampled, not recorded.
            (unsampled,) = await send(
                running, [event_request(event_type="t", data={}, endpoint_ids=[ep.id])]
            )
            (first,) = await rx.wait_for(1)

            async def delivered() -> bool:
                listed = await client.list_deliveries(event_id=unsampled.id)
                return [d.status for d in listed.deliveries] == [dpb.DELIVERY_STATUS_SUCCESS]

            # Its attempt is over (a span, were there one, would be on its way already).
            await eventually(delivered)
        # A caller that sampled its trace: recorded whatever the ratio.
        await send(
            running,
            [event_request(event_type="t", data={}, endpoint_ids=[ep.id])],
            ("traceparent", CALLER),
        )
        got = await rx.wait_for(2)
        spans = await collector.wait(lambda s: any(x.name == "convoyd attempt" for x in s))
    not_sampled = parse_traceparent(header(first.headers, "traceparent") or "")
    assert not_sampled is not None and not not_sampled.sampled
    assert not_sampled.trace_id != CALLER_TRACE
    sampled = parse_traceparent(header(got[1].headers, "traceparent") or "")
    assert sampled is not None and sampled.sampled and sampled.trace_id == CALLER_TRACE
    assert {s.trace_id for s in spans} == {CALLER_TRACE}  # nothing of the unsampled trace
    assert not collector.named("convoyd store record")  # root spans at ratio 0: none


async def test_tracing_off_sends_and_stores_no_trace_context(
    tmp_path: Path, receivers: ReceiverFactory
) -> None:
    rx = await receivers()
    async with running_app(tmp_path / "data", delivery=LOOPBACK_ALLOWED) as (app, running):
        assert not app.tracing.enabled
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url=rx.url))
        (event,) = await send(
            running,
            [event_request(event_type="t", data={}, endpoint_ids=[ep.id])],
            ("traceparent", CALLER),
        )
        (request,) = await rx.wait_for(1)
        assert (await app.store.get_event(event.id)).trace is None
    assert header(request.headers, "traceparent") is None


@pytest.mark.both_stores
async def test_the_events_trace_is_stored_with_it(
    tmp_path: Path, collector: Collector, store_backend: str
) -> None:
    async with traced(tmp_path, collector) as (app, running):
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url="https://hooks.example.invalid/in"))
            await client.pause_endpoint(ep.id)  # nothing is sent: the rows are what counts
        (joined,) = await send(
            running,
            [event_request(event_type="t", data={}, endpoint_ids=[ep.id])],
            ("traceparent", CALLER),
            ("tracestate", "vendor=abc"),
        )
        (own,) = await send(running, [event_request(event_type="t", data={}, endpoint_ids=[ep.id])])
        stored = await app.store.get_event(joined.id)
        found = await app.store.list_events(EventQuery(), before_id="", limit=10)
        listed = {e.id: e for e in found}
        payloads = await app.store.load_payloads([joined.id, own.id])
    assert stored.trace is not None and listed[joined.id].trace == stored.trace
    assert stored.trace.parent == TraceParent(trace_id=CALLER_TRACE, span_id=CALLER_SPAN, flags=1)
    assert stored.trace.tracestate == "vendor=abc"
    assert stored.trace.ingest is not None and stored.trace.ingest.trace_id == CALLER_TRACE
    assert payloads[joined.id].trace == stored.trace
    fresh = payloads[own.id].trace
    assert fresh is not None and fresh.parent.trace_id != CALLER_TRACE
    assert fresh.ingest is not None and fresh.ingest.trace_id != fresh.parent.trace_id


async def test_a_refused_call_and_a_replay_are_told_by_the_ingest_span(
    tmp_path: Path, collector: Collector, receivers: ReceiverFactory
) -> None:
    rx = await receivers()
    other = f"00-{0x1234:032x}-{0x5678:016x}-01"
    async with traced(tmp_path, collector) as (app, running):
        async with Client(running.grpc_target, token=running.token) as client:
            ep = await client.create_endpoint(pb.Endpoint(url=rx.url))
        keyed = event_request(event_type="t", data={}, endpoint_ids=[ep.id], idempotency_key="k1")
        (first,) = await send(running, [keyed], ("traceparent", CALLER))
        (again,) = await send(running, [keyed], ("traceparent", other))
        missing = event_request(
            event_type="t", data={}, endpoint_ids=["ep_01HZZZZZZZZZZZZZZZZZZZZZZZ"]
        )
        with pytest.raises(Exception, match="not found"):
            await send(running, [missing], ("traceparent", other))
        await rx.wait_for(1)
        spans = await collector.wait(
            lambda s: (
                sum(x.name.endswith("/BatchCreateEvents") for x in s) >= 3
                and any(x.name == "convoyd attempt" for x in s)
            )
        )
        stored = await app.store.get_event(first.id)
    assert again.id == first.id  # the replay returns the original event...
    assert stored.trace is not None and stored.trace.parent.trace_id == CALLER_TRACE  # ...and trace
    ingests = {
        s.trace_id: s
        for s in spans
        if s.name.endswith("/BatchCreateEvents") and s.attributes.get("convoyd.replayed_count")
    }
    assert set(ingests) == {0x1234}
    assert ingests[0x1234].attributes["convoyd.delivery_count"] == 0  # it made none
    (refused,) = [s for s in spans if s.name.endswith("/BatchCreateEvents") and s.failed]
    assert refused.trace_id == 0x1234 and refused.attributes["error.type"] == "NotFoundError"
    assert "ep_01HZZZZZZZZZZZZZZZZZZZZZZZ" not in refused.span.status.message
    assert len(collector.named("convoyd attempt")) == 1  # the replay sent nothing again


async def test_spans_go_over_otlp_http_protobuf_too(
    tmp_path: Path, receivers: ReceiverFactory
) -> None:
    """otlp_protocol http/protobuf: spans POSTed to the URL, /v1/traces added to a bare one."""
    exported: list[trace_service_pb2.ExportTraceServiceRequest] = []
    arrived = asyncio.Event()

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        exported.append(
            trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read())
        )
        arrived.set()
        return web.Response(
            body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    collector_app = web.Application()
    collector_app.router.add_post("/v1/traces", traces)
    server = TestServer(collector_app, host="127.0.0.1", port=0)
    await server.start_server()
    rx = await receivers()
    try:
        telemetry = TelemetrySettings(
            otlp_endpoint=f"http://127.0.0.1:{server.port}", otlp_protocol="http/protobuf"
        )
        async with running_app(
            tmp_path / "data", delivery=LOOPBACK_ALLOWED, telemetry=telemetry
        ) as (_, running):
            async with Client(running.grpc_target, token=running.token) as client:
                ep = await client.create_endpoint(pb.Endpoint(url=rx.url))
                await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
            await rx.wait_for(1)

            def names() -> set[str]:
                return {
                    span.name
                    for req in exported
                    for rs in req.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                }

            async with asyncio.timeout(20):
                while "convoyd attempt" not in names():
                    await arrived.wait()
                    arrived.clear()
    finally:
        await server.close()
    assert {"convoyd.v1.EventService/CreateEvent", "convoyd event", "convoyd attempt"} <= names()
