"""Bad input over the real gRPC server: INVALID_ARGUMENT naming the field, never INTERNAL, and
never more than a short prefix of the input echoed back (hardening items 1, 5 and 6)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from convoyd.core import paging
from convoyd.v1 import (
    delivery_pb2,
    delivery_pb2_grpc,
    endpoint_pb2,
    endpoint_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    portal_pb2,
    portal_pb2_grpc,
)
from tests.conftest import Running
from tests.control.test_endpoint_service import violations
from tests.pki import EndpointPem, endpoint_pem

pytestmark = pytest.mark.both_stores

ep, ev, dl, pl = endpoint_pb2, event_pb2, delivery_pb2, portal_pb2
HUGE_ID = "ep_" + "X" * 1_000_000  # 1 MB: came back whole in NOT_FOUND before
UNKNOWN = {p: f"{p}_" + "0" * 26 for p in ("ep", "ev", "dl", "pl")}
MAX_ECHO = 64


@dataclass
class Stubs:
    endpoints: Any
    events: Any
    deliveries: Any
    portal: Any
    running: Running

    async def call(self, rpc: Callable[..., Any], request: Message) -> Any:
        return await rpc(request, metadata=self.running.metadata, timeout=10)

    async def refused(self, rpc: Callable[..., Any], request: Message) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            if rpc is self.deliveries.WatchDeliveries:
                async for _ in rpc(request, metadata=self.running.metadata, timeout=10):
                    break
            else:
                await self.call(rpc, request)
        return info.value


@pytest.fixture
async def api(app: Running) -> AsyncIterator[Stubs]:
    async with app.channel() as channel:
        yield Stubs(
            endpoint_pb2_grpc.EndpointServiceStub(channel),
            event_pb2_grpc.EventServiceStub(channel),
            delivery_pb2_grpc.DeliveryServiceStub(channel),
            portal_pb2_grpc.PortalServiceStub(channel),
            app,
        )


def assert_invalid(err: grpc.aio.AioRpcError, field: str) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert field in violations(err), (field, violations(err))
    details = err.details() or ""
    assert len(details) < 600, details[:200]
    assert "X" * (MAX_ECHO + 1) not in details


def endpoint(**fields: Any) -> ep.Endpoint:
    return ep.Endpoint(url="https://hooks.example.invalid/x", **fields)


async def test_every_id_of_the_wrong_shape_is_invalid_argument_and_not_echoed(api: Stubs) -> None:
    e, v, d, p = api.endpoints, api.events, api.deliveries, api.portal
    bad = HUGE_ID
    cases: list[tuple[Callable[..., Any], Message, str]] = [
        (e.GetEndpoint, ep.GetEndpointRequest(endpoint_id=bad), "endpoint_id"),
        (e.DeleteEndpoint, ep.DeleteEndpointRequest(endpoint_id=bad), "endpoint_id"),
        (e.PauseEndpoint, ep.PauseEndpointRequest(endpoint_id=bad), "endpoint_id"),
        (e.ResumeEndpoint, ep.ResumeEndpointRequest(endpoint_id=bad), "endpoint_id"),
        (e.ActivateEndpoint, ep.ActivateEndpointRequest(endpoint_id=bad), "endpoint_id"),
        (e.RotateEndpointSecret, ep.RotateEndpointSecretRequest(endpoint_id=bad), "endpoint_id"),
        (e.GetEndpointSecret, ep.GetEndpointSecretRequest(endpoint_id=bad), "endpoint_id"),
        (
            e.UpdateEndpoint,
            ep.UpdateEndpointRequest(
                endpoint=ep.Endpoint(id=bad, name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            "endpoint.id",
        ),
        (e.ListEndpoints, ep.ListEndpointsRequest(owner_id="o" * 1_000_000), "owner_id"),
        (
            v.CreateEvent,
            ev.CreateEventRequest(endpoint_ids=[bad], event_type="a", data=b"{}"),
            "endpoint_ids[0]",
        ),
        (v.GetEvent, ev.GetEventRequest(event_id="ev_" + "X" * 100_000), "event_id"),
        (v.ListEvents, ev.ListEventsRequest(endpoint_id=bad), "endpoint_id"),
        (v.ListEvents, ev.ListEventsRequest(owner_id="a b"), "owner_id"),
        (v.ListEvents, ev.ListEventsRequest(event_type="X" * 10_000), "event_type"),
        (d.GetDelivery, dl.GetDeliveryRequest(delivery_id="dl_" + "X" * 100), "delivery_id"),
        (d.RetryDelivery, dl.RetryDeliveryRequest(delivery_id="X" * 100), "delivery_id"),
        (d.ForceResendDelivery, dl.ForceResendDeliveryRequest(delivery_id="ep_1"), "delivery_id"),
        (
            d.ListDeliveryAttempts,
            dl.ListDeliveryAttemptsRequest(delivery_id=UNKNOWN["ev"]),
            "delivery_id",
        ),
        (d.ListDeliveries, dl.ListDeliveriesRequest(endpoint_id=bad), "endpoint_id"),
        (d.ListDeliveries, dl.ListDeliveriesRequest(event_id=UNKNOWN["dl"]), "event_id"),
        (d.ListDeliveries, dl.ListDeliveriesRequest(owner_id="\x00"), "owner_id"),
        (
            d.BatchRetryDeliveries,
            dl.BatchRetryDeliveriesRequest(endpoint_id=bad, dry_run=True),
            "endpoint_id",
        ),
        (d.WatchDeliveries, dl.WatchDeliveriesRequest(endpoint_id=bad), "endpoint_id"),
        (p.GetPortalLink, pl.GetPortalLinkRequest(portal_link_id=bad), "portal_link_id"),
        (p.RevokePortalLink, pl.RevokePortalLinkRequest(portal_link_id=bad), "portal_link_id"),
        (p.CreatePortalLink, pl.CreatePortalLinkRequest(endpoint_ids=[bad]), "endpoint_ids[0]"),
        (p.ListPortalLinks, pl.ListPortalLinksRequest(owner_id="é"), "owner_id"),
    ]
    for rpc, request, field in cases:
        assert_invalid(await api.refused(rpc, request), field)


async def test_ids_of_the_right_shape_that_do_not_exist_are_not_found(api: Stubs) -> None:
    e, v, d, p = api.endpoints, api.events, api.deliveries, api.portal
    for rpc, request in [
        (e.GetEndpoint, ep.GetEndpointRequest(endpoint_id=UNKNOWN["ep"])),
        (v.GetEvent, ev.GetEventRequest(event_id=UNKNOWN["ev"])),
        (d.GetDelivery, dl.GetDeliveryRequest(delivery_id=UNKNOWN["dl"])),
        (p.GetPortalLink, pl.GetPortalLinkRequest(portal_link_id=UNKNOWN["pl"])),
    ]:
        assert (await api.refused(rpc, request)).code() == grpc.StatusCode.NOT_FOUND


async def test_an_update_mask_path_is_not_echoed_whole(api: Stubs) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    request = ep.UpdateEndpointRequest(
        endpoint=ep.Endpoint(id=created.id),
        update_mask=field_mask_pb2.FieldMask(paths=["X" * 100_000]),
    )
    assert_invalid(await api.refused(api.endpoints.UpdateEndpoint, request), "update_mask")


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_deeply_nested_event_data_is_invalid_argument(api: Stubs) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    for data in (nested(1000), nested(100_000), b'{"a":' * 1000 + b"1" + b"}" * 1000, b"[" * 5000):
        request = ev.CreateEventRequest(endpoint_ids=[created.id], event_type="a", data=data)
        assert_invalid(await api.refused(api.events.CreateEvent, request), "data")
        batch = ev.BatchCreateEventsRequest(requests=[request])
        assert_invalid(await api.refused(api.events.BatchCreateEvents, batch), "requests[0].data")
    # A hundred levels is fine, and so are brackets inside strings.
    for data in (nested(100), json.dumps(["[" * 5000]).encode()):
        request = ev.CreateEventRequest(endpoint_ids=[created.id], event_type="a", data=data)
        assert (await api.call(api.events.CreateEvent, request)).data == data


def deep_token(depth: int = 1000) -> str:
    return base64.urlsafe_b64encode(nested(depth)).decode().rstrip("=")


async def test_bad_page_tokens_are_invalid_argument(api: Stubs) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    event = await api.call(
        api.events.CreateEvent,
        ev.CreateEventRequest(endpoint_ids=[created.id], event_type="a", data=b"{}"),
    )
    listed = await api.call(
        api.deliveries.ListDeliveries, dl.ListDeliveriesRequest(event_id=event.id)
    )
    delivery_id = listed.deliveries[0].id
    # The filter key is a plain hash: anyone can forge a token with any cursor inside.
    forged = [
        paging.encode_token("not-a-number", ("attempts", delivery_id)),
        paging.encode_token("9" * 5000, ("attempts", delivery_id)),
        paging.encode_token("-1", ("attempts", delivery_id)),
    ]
    for token in (deep_token(300), deep_token(), deep_token(50_000), "A" * 100_000, *forged):
        for rpc, request in [
            (api.endpoints.ListEndpoints, ep.ListEndpointsRequest(page_token=token)),
            (api.events.ListEvents, ev.ListEventsRequest(page_token=token)),
            (api.deliveries.ListDeliveries, dl.ListDeliveriesRequest(page_token=token)),
            (
                api.deliveries.ListDeliveryAttempts,
                dl.ListDeliveryAttemptsRequest(delivery_id=delivery_id, page_token=token),
            ),
            (api.portal.ListPortalLinks, pl.ListPortalLinksRequest(page_token=token)),
        ]:
            assert_invalid(await api.refused(rpc, request), "page_token")


EXTREME_TIMES = [
    timestamp_pb2.Timestamp(seconds=2**62),
    timestamp_pb2.Timestamp(seconds=-(2**62)),
    timestamp_pb2.Timestamp(seconds=2**63 - 1),
    timestamp_pb2.Timestamp(seconds=253_402_300_800),  # 10000-01-01
    timestamp_pb2.Timestamp(seconds=0, nanos=-1),
    timestamp_pb2.Timestamp(seconds=0, nanos=1_000_000_000),
    timestamp_pb2.Timestamp(seconds=0, nanos=2**31 - 1),
]


async def test_timestamps_out_of_range_in_filters_are_invalid_argument(api: Stubs) -> None:
    for ts in EXTREME_TIMES:
        for name in ("created_after", "created_before"):
            for rpc, request in [
                (api.events.ListEvents, ev.ListEventsRequest(**{name: ts})),
                (api.deliveries.ListDeliveries, dl.ListDeliveriesRequest(**{name: ts})),
                (
                    api.deliveries.BatchRetryDeliveries,
                    dl.BatchRetryDeliveriesRequest(
                        endpoint_id=UNKNOWN["ep"], dry_run=True, **{name: ts}
                    ),
                ),
            ]:
                assert_invalid(await api.refused(rpc, request), name)
    # The ends of the range itself are fine.
    for ts in (
        timestamp_pb2.Timestamp(seconds=-62_135_596_800),
        timestamp_pb2.Timestamp(seconds=253_402_300_799, nanos=999_999_999),
    ):
        await api.call(api.events.ListEvents, ev.ListEventsRequest(created_after=ts))
        await api.call(api.deliveries.ListDeliveries, dl.ListDeliveriesRequest(created_before=ts))


EXTREME_DURATIONS = [
    duration_pb2.Duration(seconds=2**62),
    duration_pb2.Duration(seconds=-(2**62)),
    duration_pb2.Duration(seconds=1, nanos=2**31 - 1),
    duration_pb2.Duration(seconds=1, nanos=-5),  # signs differ
    duration_pb2.Duration(seconds=0, nanos=-(2**31)),
]


async def test_durations_out_of_range_are_invalid_argument(api: Stubs) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    for d in EXTREME_DURATIONS:
        policies = {
            "retry_policy.schedule.delays[1]": ep.RetryPolicy(
                schedule=ep.ScheduleRetry(delays=[duration_pb2.Duration(seconds=1), d])
            ),
            "retry_policy.exponential.initial_interval": ep.RetryPolicy(
                exponential=ep.ExponentialRetry(initial_interval=d)
            ),
            "retry_policy.exponential.max_interval": ep.RetryPolicy(
                exponential=ep.ExponentialRetry(max_interval=d)
            ),
            "retry_policy.linear.interval": ep.RetryPolicy(linear=ep.LinearRetry(interval=d)),
        }
        for field, policy in policies.items():
            request = ep.CreateEndpointRequest(endpoint=endpoint(retry_policy=policy))
            assert_invalid(await api.refused(api.endpoints.CreateEndpoint, request), field)
        for field in ("http_timeout", "rate_limit_duration"):
            request = ep.CreateEndpointRequest(endpoint=endpoint(**{field: d}))
            assert_invalid(await api.refused(api.endpoints.CreateEndpoint, request), field)
        rotate = ep.RotateEndpointSecretRequest(endpoint_id=created.id, old_secret_lifetime=d)
        err = await api.refused(api.endpoints.RotateEndpointSecret, rotate)
        assert_invalid(err, "old_secret_lifetime")
        link = pl.CreatePortalLinkRequest(owner_id="acme", lifetime=d)
        assert_invalid(await api.refused(api.portal.CreatePortalLink, link), "lifetime")
    # Huge but well-formed numbers elsewhere: refused by range, never an overflow.
    for field, value in [("rate_limit", 2**32 - 1), ("max_concurrency", 2**32 - 1)]:
        request = ep.CreateEndpointRequest(endpoint=endpoint(**{field: value}))
        assert_invalid(await api.refused(api.endpoints.CreateEndpoint, request), field)
    huge = ep.RetryPolicy(exponential=ep.ExponentialRetry(multiplier=1e308, max_retries=2**32 - 1))
    request = ep.CreateEndpointRequest(endpoint=endpoint(retry_policy=huge))
    err = await api.refused(api.endpoints.CreateEndpoint, request)
    assert_invalid(err, "retry_policy.exponential.multiplier")
    assert "retry_policy.exponential.max_retries" in violations(err)
    for size in (-1, -(2**31)):
        request = ep.ListEndpointsRequest(page_size=size)
        assert_invalid(await api.refused(api.endpoints.ListEndpoints, request), "page_size")
    assert await api.call(api.endpoints.ListEndpoints, ep.ListEndpointsRequest(page_size=2**31 - 1))


# Every byte aiohttp refuses in a header value (it raises ValueError for all of them).
CONTROL_BYTES = [chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F)]


async def test_header_values_the_http_client_refuses_are_invalid_argument(api: Stubs) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    for char in CONTROL_BYTES:
        value = f"a{char}b"
        request = ep.CreateEndpointRequest(endpoint=endpoint(headers={"X-P": value}))
        assert_invalid(await api.refused(api.endpoints.CreateEndpoint, request), "headers['X-P']")
        update = ep.UpdateEndpointRequest(
            endpoint=ep.Endpoint(id=created.id, headers={"X-P": value}),
            update_mask=field_mask_pb2.FieldMask(paths=["headers"]),
        )
        assert_invalid(await api.refused(api.endpoints.UpdateEndpoint, update), "headers['X-P']")
        auth = ep.EndpointAuthentication(
            api_key=ep.ApiKeyAuthentication(header_name="X-Key", header_value=value)
        )
        request = ep.CreateEndpointRequest(endpoint=endpoint(authentication=auth))
        err = await api.refused(api.endpoints.CreateEndpoint, request)
        assert_invalid(err, "authentication.api_key.header_value")
        event = ev.CreateEventRequest(
            endpoint_ids=[created.id], event_type="a", data=b"{}", headers={"X-P": value}
        )
        assert_invalid(await api.refused(api.events.CreateEvent, event), "headers['X-P']")
    # Names: token characters only ("X-A\n" used to pass the check), and of bounded length.
    for name in ("X-A\n", "X A", "X:A", "é", "X" * 257):
        request = ep.CreateEndpointRequest(endpoint=endpoint(headers={name: "v"}))
        err = await api.refused(api.endpoints.CreateEndpoint, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any(f.startswith("headers") for f in violations(err))
        assert "X" * (MAX_ECHO + 1) not in (err.details() or "")
        auth = ep.EndpointAuthentication(
            api_key=ep.ApiKeyAuthentication(header_name=name, header_value="v")
        )
        request = ep.CreateEndpointRequest(endpoint=endpoint(authentication=auth))
        err = await api.refused(api.endpoints.CreateEndpoint, request)
        assert_invalid(err, "authentication.api_key.header_name")
    # Tab, and characters beyond ASCII (sent as UTF-8: obs-text bytes) are fine.
    fine = {"X-Tab": "a\tb", "X-Latin": "é", "X-Euro": "€", "X-Emoji": "🙂"}
    made = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint(headers=fine))
    )
    assert dict(made.headers) == fine


async def test_text_ending_in_a_newline_is_refused(api: Stubs) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    for field, request in [
        ("event_type", ev.CreateEventRequest(endpoint_ids=[created.id], event_type="a\n")),
        (
            "idempotency_key",
            ev.CreateEventRequest(
                endpoint_ids=[created.id], event_type="a", data=b"{}", idempotency_key="k\n"
            ),
        ),
        ("owner_id", ev.CreateEventRequest(owner_id="acme\n", event_type="a", data=b"{}")),
    ]:
        assert_invalid(await api.refused(api.events.CreateEvent, request), field)
    for field, value in [("owner_id", "acme\n"), ("event_types", ["a\n"])]:
        request = ep.CreateEndpointRequest(endpoint=endpoint(**{field: value}))
        err = await api.refused(api.endpoints.CreateEndpoint, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any(f.startswith(field) for f in violations(err))


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> EndpointPem:
    return endpoint_pem(tmp_path_factory.mktemp("pki"))


async def test_bad_tls_material_is_invalid_argument_naming_the_field(
    api: Stubs, pem: EndpointPem
) -> None:
    created = await api.call(
        api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=endpoint())
    )
    not_pem = "-----BEGIN CERTIFICATE-----\n" + "X" * 100_000 + "\n-----END CERTIFICATE-----\n"
    cases = [
        (ep.EndpointTls(client_certificate_pem="garbage", client_key_pem=pem.client_key),
         "tls.client_certificate_pem"),
        (ep.EndpointTls(client_certificate_pem=pem.client_certificate, client_key_pem="garbage"),
         "tls.client_key_pem"),
        # The key of another certificate.
        (ep.EndpointTls(client_certificate_pem=pem.client_certificate,
                        client_key_pem=pem.other_key), "tls.client_key_pem"),
        (ep.EndpointTls(ca_pem="garbage"), "tls.ca_pem"),
        (ep.EndpointTls(ca_pem=not_pem), "tls.ca_pem"),  # too long, and never echoed
    ]  # fmt: skip
    for tls, field in cases:
        request = ep.CreateEndpointRequest(endpoint=endpoint(tls=tls))
        assert_invalid(await api.refused(api.endpoints.CreateEndpoint, request), field)
        update = ep.UpdateEndpointRequest(
            endpoint=ep.Endpoint(id=created.id, tls=tls),
            update_mask=field_mask_pb2.FieldMask(paths=["tls"]),
        )
        assert_invalid(await api.refused(api.endpoints.UpdateEndpoint, update), field)
    # TLS settings need an https URL, and say so.
    plain = ep.Endpoint(url="http://hooks.example.invalid/x", tls=ep.EndpointTls(ca_pem=pem.ca))
    err = await api.refused(api.endpoints.CreateEndpoint, ep.CreateEndpointRequest(endpoint=plain))
    assert_invalid(err, "tls")
    assert "https" in violations(err)["tls"]
