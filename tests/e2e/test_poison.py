"""Poison input against the real `convoyd serve`: every bad request gets a clean status, and a
healthy endpoint keeps receiving every event sent between them.

A bounded mix over gRPC: header bytes the HTTP client refuses (in event headers, endpoint
headers and API keys), deeply nested JSON, huge ids, bad timestamps and durations, unknown enum
values, oversized messages and bodies that are not protobuf. Each case must end in its expected
status (never INTERNAL or UNKNOWN, and never a hang); between the cases a healthy event goes to
a healthy endpoint and must arrive; at the end no attempt is left in flight. The figures go to
$CONVOYD_FIGURES_DIR/poison.json (``make reliability``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from convoyd.client import Client
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import event_pb2 as epb
from tests.conftest import DaemonProcess, Running, record_figures
from tests.receivers import Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

Code = grpc.StatusCode
BAD = Code.INVALID_ARGUMENT
EVENTS = "/convoyd.v1.EventService/"
ENDPOINTS = "/convoyd.v1.EndpointService/"
DELIVERIES = "/convoyd.v1.DeliveryService/"
CALL_TIMEOUT = 15.0


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    request: bytes
    expected: frozenset[Code]


def case(name: str, method: str, request: Message | bytes, *expected: Code) -> Case:
    body = request if isinstance(request, bytes) else request.SerializeToString()
    return Case(name, method, body, frozenset(expected or (BAD,)))


def cases(sink: str, healthy: str) -> list[Case]:
    def event(**fields: object) -> epb.CreateEventRequest:
        fields.setdefault("endpoint_ids", [sink])
        fields.setdefault("event_type", "poison")
        fields.setdefault("data", b"{}")
        return epb.CreateEventRequest(**fields)  # type: ignore[arg-type]

    def endpoint(**fields: object) -> pb.CreateEndpointRequest:
        fields.setdefault("url", "http://poison.invalid/hook")  # never sent to: each is refused
        return pb.CreateEndpointRequest(endpoint=pb.Endpoint(**fields))  # type: ignore[arg-type]

    def api_key(name: str, value: str) -> pb.EndpointAuthentication:
        return pb.EndpointAuthentication(
            api_key=pb.ApiKeyAuthentication(header_name=name, header_value=value)
        )

    def update(**fields: object) -> pb.UpdateEndpointRequest:
        return pb.UpdateEndpointRequest(
            endpoint=pb.Endpoint(id=sink, **fields),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
        )

    nested = b"[" * 100_000 + b"]" * 100_000
    far = timestamp_pb2.Timestamp(seconds=2**62)
    out = [
        # Header bytes aiohttp refuses: every control byte but HTAB.
        *(
            case(
                f"event header value {byte!r}",
                EVENTS + "CreateEvent",
                event(headers={"X-P": f"a{byte}b"}),
            )
            for byte in ("\x7f", "\x01", "\x08", "\x0b", "\x1f", "\r", "\n", "\x00")
        ),
        case("event header name DEL", EVENTS + "CreateEvent", event(headers={"X\x7fP": "v"})),
        case("event header name space", EVENTS + "CreateEvent", event(headers={"X P": "v"})),
        case("event header name empty", EVENTS + "CreateEvent", event(headers={"": "v"})),
        case(
            "batch with one bad header",
            EVENTS + "BatchCreateEvents",
            epb.BatchCreateEventsRequest(requests=[event(), event(headers={"X-P": "a\x7fb"})]),
        ),
        case(
            "endpoint header value DEL",
            ENDPOINTS + "CreateEndpoint",
            endpoint(headers={"X-P": "a\x7fb"}),
        ),
        case(
            "endpoint header value SOH",
            ENDPOINTS + "CreateEndpoint",
            endpoint(headers={"X-P": "\x01"}),
        ),
        case(
            "endpoint header name colon",
            ENDPOINTS + "CreateEndpoint",
            endpoint(headers={"X:P": "v"}),
        ),
        case(
            "api key value DEL",
            ENDPOINTS + "CreateEndpoint",
            endpoint(authentication=api_key("X-Api-Key", "k\x7fy")),
        ),
        case(
            "api key value US",
            ENDPOINTS + "CreateEndpoint",
            endpoint(authentication=api_key("X-Api-Key", "k\x1fy")),
        ),
        case(
            "api key name control",
            ENDPOINTS + "CreateEndpoint",
            endpoint(authentication=api_key("X-Api\x01Key", "k")),
        ),
        case(
            "update header value DEL",
            ENDPOINTS + "UpdateEndpoint",
            update(headers={"X-P": "a\x7fb"}),
        ),
        case(
            "update api key value VT",
            ENDPOINTS + "UpdateEndpoint",
            update(authentication=api_key("X-Api-Key", "k\x0by")),
        ),
        # JSON and sizes.
        case("deeply nested JSON", EVENTS + "CreateEvent", event(data=nested), BAD, Code.OK),
        case("data not JSON", EVENTS + "CreateEvent", event(data=b"\xff\xfe{"), BAD, Code.OK),
        case("data over the payload limit", EVENTS + "CreateEvent", event(data=b"1" * (2 << 20))),
        case(
            "message over the gRPC limit",
            EVENTS + "CreateEvent",
            event(data=b"1" * (65 << 20)),
            Code.RESOURCE_EXHAUSTED,
        ),
        case(
            "event with 10,000 headers",
            EVENTS + "CreateEvent",
            event(headers={f"X-{i}": "v" for i in range(10_000)}),
        ),
        # Ids.
        case(
            "huge endpoint id in event",
            EVENTS + "CreateEvent",
            event(endpoint_ids=["ep_" + "x" * 200_000]),
            BAD,
            Code.NOT_FOUND,
        ),
        case(
            "huge endpoint id",
            ENDPOINTS + "GetEndpoint",
            pb.GetEndpointRequest(endpoint_id="ep_" + "x" * 200_000),
            BAD,
            Code.NOT_FOUND,
            Code.RESOURCE_EXHAUSTED,  # convoyd's cap on a request's size
        ),
        case(
            "control bytes in delivery id",
            DELIVERIES + "GetDelivery",
            dpb.GetDeliveryRequest(delivery_id="dl_\x00\x7f"),
            BAD,
            Code.NOT_FOUND,
        ),
        case("huge idempotency key", EVENTS + "CreateEvent", event(idempotency_key="k" * 200_000)),
        case("huge event type", EVENTS + "CreateEvent", event(event_type="t" * 200_000)),
        case(
            "huge owner id", EVENTS + "CreateEvent", event(endpoint_ids=[], owner_id="o" * 200_000)
        ),
        case(
            "bad page token",
            DELIVERIES + "ListDeliveries",
            dpb.ListDeliveriesRequest(page_token="\x00not-a-token"),
        ),
        # Times.
        case(
            "timestamp past year 9999",
            DELIVERIES + "ListDeliveries",
            dpb.ListDeliveriesRequest(created_after=far),
        ),
        case(
            "timestamp with bad nanos",
            DELIVERIES + "BatchRetryDeliveries",
            dpb.BatchRetryDeliveriesRequest(
                endpoint_id=healthy,
                created_before=timestamp_pb2.Timestamp(seconds=1, nanos=-5),
                dry_run=True,
            ),
        ),
        case(
            "negative http timeout",
            ENDPOINTS + "CreateEndpoint",
            endpoint(http_timeout=duration_pb2.Duration(seconds=-1)),
        ),
        case(
            "huge retry delay",
            ENDPOINTS + "CreateEndpoint",
            endpoint(
                retry_policy=pb.RetryPolicy(
                    schedule=pb.ScheduleRetry(delays=[duration_pb2.Duration(seconds=2**62)])
                )
            ),
        ),
        # Enums and bodies that are not the message.
        case(
            "unknown signature scheme",
            ENDPOINTS + "CreateEndpoint",
            endpoint(signature=pb.SignatureConfig(scheme=99)),
        ),  # type: ignore[arg-type]
        case("body not protobuf", EVENTS + "CreateEvent", b"\xff\xff\xff\xff\xff"),
        case(
            "truncated protobuf",
            EVENTS + "CreateEvent",
            event(data=b"x" * 100).SerializeToString()[:-10],
        ),
        case(
            "invalid UTF-8 in a string field", EVENTS + "CreateEvent", b"\x1a\x02\xc3\x28"
        ),  # event_type
    ]
    return out


def deliveries_in_flight(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("convoyd_in_flight_attempts "):
            return float(line.split()[1])
    raise AssertionError("convoyd_in_flight_attempts not exposed")


async def test_poison_input_gets_clean_statuses_and_healthy_delivery_goes_on(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    healthy_rx = await receivers()
    sink_rx = await receivers()
    running: Running = daemon.start()
    loop = asyncio.get_running_loop()
    sent_at: dict[bytes, float] = {}
    seen: Counter[str] = Counter()
    wrong: list[str] = []
    async with Client(running.grpc_target, token=running.token) as client:
        healthy = await client.create_endpoint(pb.Endpoint(url=healthy_rx.url))
        sink = await client.create_endpoint(pb.Endpoint(url=sink_rx.url))
        poison = cases(sink.id, healthy.id)
        async with grpc.aio.insecure_channel(
            running.grpc_target,
            options=[("grpc.max_send_message_length", 128 << 20)],
        ) as channel:
            for i, c in enumerate(poison):
                call = channel.unary_unary(c.method)  # raw bytes both ways
                try:
                    await call(c.request, metadata=running.metadata, timeout=CALL_TIMEOUT)
                    code = Code.OK
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                seen[code.name] += 1
                if code not in c.expected:
                    wrong.append(f"{c.name}: {code.name}")
                body = json.dumps({"healthy": i}).encode()
                sent_at[body] = loop.time()
                await client.create_event(event_type="ok", data=body, endpoint_ids=[healthy.id])

        with contextlib.suppress(TimeoutError):
            await healthy_rx.wait_for(len(poison), within=20)
        delays = [r.at - sent_at[r.body] for r in healthy_rx.requests if r.body in sent_at]

        async def in_flight() -> float:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{running.http_url}/metrics") as response,
            ):
                return deliveries_in_flight(await response.text())

        async def nothing_in_flight() -> bool:
            return await in_flight() == 0

        with contextlib.suppress(AssertionError):
            await eventually(nothing_in_flight, timeout=10)
        stuck = await in_flight()

    record_figures(
        "poison",
        {
            "cases_sent": len(poison),
            "statuses_seen": dict(seen),
            "unexpected": wrong,
            "healthy_sent": len(sent_at),
            "healthy_delivered": len(delays),
            "max_healthy_delay_ms": round(max(delays, default=0.0) * 1000, 1),
            "in_flight_at_end": stuck,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    assert not wrong, "\n".join(wrong)
    assert sorted(r.body for r in healthy_rx.requests) == sorted(sent_at)
    assert stuck == 0
    assert daemon.stop() == 0
