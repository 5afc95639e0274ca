"""Every RPC against generated bad input: always a clean status, never INTERNAL or a crash.

Requests are built from the proto descriptors, so a field added to the contract is fuzzed
without touching this file. The daemon is the real `convoyd serve` process.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import duration_pb2, message_factory, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convoyd.v1 import cluster_pb2, delivery_pb2, endpoint_pb2, event_pb2, portal_pb2
from tests.conftest import DaemonProcess, Running, daemon_env

pytestmark = pytest.mark.e2e

SERVICES = [
    m.DESCRIPTOR.services_by_name[name]
    for m, name in (
        (endpoint_pb2, "EndpointService"),
        (event_pb2, "EventService"),
        (delivery_pb2, "DeliveryService"),
        (portal_pb2, "PortalService"),
        (cluster_pb2, "ClusterService"),
    )
]
METHODS = [(service, method) for service in SERVICES for method in service.methods]
# Outcomes a well-behaved server may give to arbitrary input.
CLEAN = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # only for streams we stop waiting on
}

F = d.FieldDescriptor
DEEP_JSON = b"[" * 1000 + b"]" * 1000
DEEP_TOKEN = base64.urlsafe_b64encode(DEEP_JSON).decode().rstrip("=")
IDS = [f"{s.name}.{m.name}" for s, m in METHODS]
NASTY_TEXT = st.sampled_from(
    [
        "",
        "ep_00000000000000000000000000",
        "a\r\nX-Injected: 1",
        "\x00",
        "../../etc/passwd",
        "' OR 1=1 --",
        "http://127.0.0.1:1/",
        "https://user:pw@example.com/",
        "🙂" * 50,
        "x" * 70_000,
        "*",
        "order.*",
        "cHJvYmFibHkgbm90IGEgdG9rZW4",
        DEEP_TOKEN,  # base64 of JSON nested 1,000 deep: a page token that broke the decoder
        "a\x01b",  # a header byte the HTTP client refuses
        "a\x7f",
        "X-P",
        "ep_" + "X" * 100_000,  # an id far longer than any issued (it was echoed whole)
        "http://127.0.0.1.:9/",  # IPv4 spellings the HTTP client refuses
        "http://2130706434:9/",
        "http://[::1%25lo]:9/",
        "order.created\n",
    ]
)


def _scalar(field: d.FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == d.FieldDescriptor.TYPE_STRING:
        return st.one_of(NASTY_TEXT, st.text(max_size=40))
    if t == d.FieldDescriptor.TYPE_BYTES:
        return st.one_of(
            st.binary(max_size=64),
            st.sampled_from(
                [
                    b"{}",
                    b'{"a": 1}',
                    b"[",
                    b"\xff\xfe",
                    b'"' + b"x" * 2_000_000 + b'"',
                    DEEP_JSON,
                    b"[" * 100_000,
                ]
            ),
        )
    if t == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == d.FieldDescriptor.TYPE_ENUM:
        return st.integers(min_value=-3, max_value=12)  # includes values the enum does not have
    if t in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return st.floats(
            allow_nan=True,
            allow_infinity=True,
            width=64 if t == d.FieldDescriptor.TYPE_DOUBLE else 32,
        )
    if t in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return st.integers(min_value=0, max_value=2**32 - 1)
    if t in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return st.integers(min_value=0, max_value=2**64 - 1)
    if t in (
        d.FieldDescriptor.TYPE_INT64,
        d.FieldDescriptor.TYPE_SINT64,
        d.FieldDescriptor.TYPE_SFIXED64,
    ):
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    return st.integers(min_value=-(2**31), max_value=2**31 - 1)


def _time_like(desc: d.Descriptor) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(desc)
    # Past the types' own ranges too: the wire carries any int64 seconds and int32 nanos.
    extremes = st.sampled_from([2**62, -(2**62), 2**63 - 1, -(2**63), 253_402_300_800])
    return st.builds(
        lambda s, n: cls(seconds=s, nanos=n),
        st.one_of(st.integers(min_value=-(10**11), max_value=10**11), extremes),
        st.one_of(
            st.integers(min_value=-999_999_999, max_value=999_999_999),
            st.sampled_from([2**31 - 1, -(2**31), 1_000_000_000]),
        ),
    )


def message_strategy(desc: d.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    if desc.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
        return _time_like(desc)
    cls = message_factory.GetMessageClass(desc)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in desc.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = _scalar(field.message_type.fields_by_name["key"])
            value = _scalar(field.message_type.fields_by_name["value"])
            fields[field.name] = st.dictionaries(key, value, max_size=4)
            continue
        if field.message_type is not None:
            if depth > 2:
                continue
            one: st.SearchStrategy[Any] = message_strategy(field.message_type, depth + 1)
        else:
            one = _scalar(field)
        repeated = field.is_repeated
        fields[field.name] = st.lists(one, max_size=4) if repeated else one

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        msg = cls()
        for name, strategy in fields.items():
            if not draw(st.booleans()):
                continue
            value = draw(strategy)
            field = desc.fields_by_name[name]
            try:
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    getattr(msg, name).update(value)
                elif field.is_repeated:
                    getattr(msg, name).extend(value)
                elif field.message_type is not None:
                    getattr(msg, name).CopyFrom(value)
                else:
                    setattr(msg, name, value)
            except (ValueError, TypeError):
                continue  # a value protobuf itself refuses to hold (e.g. a Duration out of range)
        return msg

    return build()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    process = DaemonProcess(data_dir=data_dir, env=daemon_env(data_dir))
    try:
        yield process.start()
        assert process.stop() == 0, process.log()
    finally:
        if process.proc is not None:
            process.proc.kill()


@pytest.fixture(scope="module")
def channel(running: Running) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(running.grpc_target) as ch:
        yield ch


def call(
    channel: grpc.Channel,
    running: Running,
    service: d.ServiceDescriptor,
    method: d.MethodDescriptor,
    request: bytes,
) -> grpc.StatusCode:
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(request, metadata=running.metadata, timeout=0.3)
            for _ in stream:
                break
            stream.cancel()
        else:
            channel.unary_unary(path)(request, metadata=running.metadata, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS]
)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_requests_get_clean_statuses(
    channel: grpc.Channel,
    running: Running,
    service: d.ServiceDescriptor,
    method: d.MethodDescriptor,
    data: st.DataObject,
) -> None:
    request = data.draw(message_strategy(method.input_type))
    code = call(channel, running, service, method, request.SerializeToString())
    assert code in CLEAN, f"{method.full_name}: {code} for {request!r:.300}"


@pytest.mark.parametrize(
    ("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS]
)
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.one_of(st.binary(max_size=64), st.sampled_from([b"\x0a\x02\xff\xfe", b"\x0a\x7fab"])))
def test_corrupt_wire_bytes_are_invalid_argument(
    channel: grpc.Channel,
    running: Running,
    service: d.ServiceDescriptor,
    method: d.MethodDescriptor,
    raw: bytes,
) -> None:
    code = call(channel, running, service, method, raw)
    assert code in CLEAN, f"{method.full_name}: {code} for {raw!r}"


def _targeted() -> list[tuple[str, str, Message]]:
    """The reproductions of the hardening issue and their variations: (method, field, request)."""
    ep, ev, dl, pl = endpoint_pb2, event_pb2, delivery_pb2, portal_pb2
    far = timestamp_pb2.Timestamp(seconds=2**62)
    before = timestamp_pb2.Timestamp(seconds=-(2**62))
    bad_nanos = timestamp_pb2.Timestamp(seconds=1, nanos=2**31 - 1)
    huge = duration_pb2.Duration(seconds=2**62)
    unknown = "ep_" + "0" * 26
    url = "https://hooks.example.invalid/x"
    return [
        (
            "EndpointService.CreateEndpoint",
            "url",
            ep.CreateEndpointRequest(endpoint=ep.Endpoint(url="http://127.0.0.1.:9/")),
        ),
        (
            "EndpointService.CreateEndpoint",
            "url",
            ep.CreateEndpointRequest(endpoint=ep.Endpoint(url="http://127.2:9/")),
        ),
        (
            "EndpointService.CreateEndpoint",
            "headers['X-P']",
            ep.CreateEndpointRequest(endpoint=ep.Endpoint(url=url, headers={"X-P": "a\x01b"})),
        ),
        (
            "EndpointService.CreateEndpoint",
            "http_timeout",
            ep.CreateEndpointRequest(endpoint=ep.Endpoint(url=url, http_timeout=huge)),
        ),
        (
            "EndpointService.GetEndpoint",
            "endpoint_id",
            ep.GetEndpointRequest(endpoint_id="ep_" + "X" * 1_000_000),
        ),
        (
            "EndpointService.ListEndpoints",
            "page_token",
            ep.ListEndpointsRequest(page_token=DEEP_TOKEN),
        ),
        (
            "EventService.CreateEvent",
            "data",
            ev.CreateEventRequest(endpoint_ids=[unknown], event_type="a", data=DEEP_JSON),
        ),
        (
            "EventService.CreateEvent",
            "headers['X-P']",
            ev.CreateEventRequest(
                endpoint_ids=[unknown], event_type="a", data=b"{}", headers={"X-P": "\x7f"}
            ),
        ),
        ("EventService.ListEvents", "created_after", ev.ListEventsRequest(created_after=far)),
        ("EventService.ListEvents", "created_before", ev.ListEventsRequest(created_before=before)),
        (
            "DeliveryService.ListDeliveries",
            "created_after",
            dl.ListDeliveriesRequest(created_after=bad_nanos),
        ),
        (
            "DeliveryService.ListDeliveries",
            "page_token",
            dl.ListDeliveriesRequest(page_token=DEEP_TOKEN),
        ),
        (
            "DeliveryService.BatchRetryDeliveries",
            "created_before",
            dl.BatchRetryDeliveriesRequest(endpoint_id=unknown, created_before=far),
        ),
        (
            "PortalService.CreatePortalLink",
            "lifetime",
            pl.CreatePortalLinkRequest(owner_id="acme", lifetime=huge),
        ),
        (
            "PortalService.GetPortalLink",
            "portal_link_id",
            pl.GetPortalLinkRequest(portal_link_id="x" * 100_000),
        ),
    ]


@pytest.mark.parametrize(
    ("method", "field", "request_"), _targeted(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_known_bad_inputs_are_invalid_argument_naming_the_field(
    channel: grpc.Channel, running: Running, method: str, field: str, request_: Message
) -> None:
    service, name = method.split(".")
    try:
        channel.unary_unary(f"/convoyd.v1.{service}/{name}")(
            request_.SerializeToString(), metadata=running.metadata, timeout=10
        )
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, exc.details())
        assert len(exc.details() or "") < 600  # no more than a prefix of the input
        fields = set()
        for key, value in exc.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                for detail in status_pb2.Status.FromString(value).details:
                    bad = error_details_pb2.BadRequest()
                    if detail.Unpack(bad):
                        fields |= {v.field for v in bad.field_violations}
        assert field in fields, (method, fields)
    else:
        pytest.fail(f"{method} accepted {field}")


def test_the_daemon_survived(running: Running, channel: grpc.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
