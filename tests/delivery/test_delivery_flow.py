"""Events to deliveries to real loopback receivers, through the real gRPC API and engine."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.protobuf import duration_pb2
from standardwebhooks.webhooks import Webhook

from convoyd.app import App
from convoyd.client import AlreadyExistsError, Client, FailedPreconditionError, InvalidArgumentError
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import endpoint_pb2 as pb
from tests.conftest import Running
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.both_stores

Make = Callable[..., Awaitable[Receiver]]
FAST_RETRIES = pb.RetryPolicy(
    schedule=pb.ScheduleRetry(delays=[duration_pb2.Duration(nanos=50_000_000)] * 3), jitter=0.0
)


async def endpoint(client: Client, url: str, **fields: Any) -> pb.Endpoint:
    return await client.create_endpoint(pb.Endpoint(url=url, **fields))


async def statuses(client: Client, event_id: str) -> dict[str, int]:
    page = await client.list_deliveries(event_id=event_id)
    return {d.endpoint_id: d.status for d in page.deliveries}


async def settled(
    client: Client, delivery_id: str, status: int = dpb.DELIVERY_STATUS_SUCCESS
) -> dpb.Delivery:
    async def check() -> bool:
        return (await client.get_delivery(delivery_id)).status == status

    await eventually(check)
    return await client.get_delivery(delivery_id)


async def test_owner_fan_out_reaches_every_endpoint_signed(client: Client, receivers: Make) -> None:
    std, simple, advanced, other_owner = [await receivers() for _ in range(4)]
    e_std = await endpoint(client, std.url, owner_id="acme")
    e_simple = await endpoint(
        client,
        simple.url,
        owner_id="acme",
        signature=pb.SignatureConfig(
            scheme=pb.SIGNATURE_SCHEME_CONVOY_SIMPLE,
            hash=pb.SIGNATURE_HASH_SHA512,
            encoding=pb.SIGNATURE_ENCODING_BASE64,
        ),
    )
    e_adv = await endpoint(
        client,
        advanced.url,
        owner_id="acme",
        signature=pb.SignatureConfig(scheme=pb.SIGNATURE_SCHEME_CONVOY_ADVANCED),
        authentication=pb.EndpointAuthentication(
            api_key=pb.ApiKeyAuthentication(header_name="X-Api-Key", header_value="k3y")
        ),
        headers={"X-Tenant": "acme"},
    )
    await endpoint(client, other_owner.url, owner_id="globex")
    body = b'{"order": 42, "items": ["a", "b"]}'

    event = await client.create_event(event_type="order.created", data=body, owner_id="acme")
    assert event.delivery_count == 3
    for receiver in (std, simple, advanced):
        await receiver.wait_for(1)
    assert other_owner.requests == []
    assert {r.requests[0].body for r in (std, simple, advanced)} == {body}

    # STANDARD: verified by the standardwebhooks package from PyPI.
    got = std.requests[0]
    Webhook(e_std.secrets[0].value).verify(got.body, got.headers)
    assert got.headers["User-Agent"].startswith("convoyd/")
    assert got.headers["Content-Type"] == "application/json"
    deliveries = await client.list_deliveries(event_id=event.id)
    by_endpoint = {d.endpoint_id: d.id for d in deliveries.deliveries}
    assert got.headers["webhook-id"] == by_endpoint[e_std.id]

    # CONVOY_SIMPLE: base64 HMAC-SHA512 of the body, keyed by the secret string itself.
    key = e_simple.secrets[0].value.encode()
    expected = base64.b64encode(hmac.new(key, body, hashlib.sha512).digest()).decode()
    assert simple.requests[0].headers["X-Convoy-Signature"] == expected

    # CONVOY_ADVANCED: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>,<body>">.
    adv = advanced.requests[0]
    parts = dict(p.split("=", 1) for p in adv.headers["X-Convoy-Signature"].split(","))
    signed = f"{parts['t']},".encode() + body
    key = e_adv.secrets[0].value.encode()
    assert parts["v1"] == hmac.new(key, signed, hashlib.sha256).hexdigest()
    assert adv.headers["X-Api-Key"] == "k3y" and adv.headers["X-Tenant"] == "acme"


async def test_failures_are_retried_logged_and_end_in_success(
    client: Client, receivers: Make
) -> None:
    flaky = await receivers(script=[500, 500, 200])
    ep = await endpoint(client, flaky.url, retry_policy=FAST_RETRIES)
    event = await client.create_event(event_type="t", data={"n": 1}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
    final = await settled(client, delivery.id)
    assert final.attempt_count == 3 and final.last_http_status == 200
    attempts = (await client.list_delivery_attempts(delivery.id)).attempts
    assert [(a.number, a.response_status, a.result) for a in attempts] == [
        (1, 500, dpb.ATTEMPT_RESULT_HTTP_ERROR),
        (2, 500, dpb.ATTEMPT_RESULT_HTTP_ERROR),
        (3, 200, dpb.ATTEMPT_RESULT_SUCCESS),
    ]
    assert attempts[0].remote_address == "127.0.0.1"
    assert attempts[0].response_body == b"nope"
    assert len({r.headers["webhook-id"] for r in flaky.requests}) == 1  # stable across retries
    sig = {n.lower(): v for n, v in ((h.name, h.value) for h in attempts[0].request_headers)}
    assert sig["webhook-id"] == delivery.id


async def test_exhausted_retries_end_in_failure_and_retry_delivery_sends_again(
    client: Client, receivers: Make
) -> None:
    down = await receivers(default_status=503)
    policy = pb.RetryPolicy(
        linear=pb.LinearRetry(interval=duration_pb2.Duration(nanos=100_000_000), max_retries=1),
        jitter=0.0,
    )
    ep = await endpoint(client, down.url, retry_policy=policy)
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
    failed = await settled(client, delivery.id, dpb.DELIVERY_STATUS_FAILURE)
    assert failed.attempt_count == 2

    down.default_status = 200
    retried = await client.retry_delivery(delivery.id)
    assert retried.status == dpb.DELIVERY_STATUS_SCHEDULED
    done = await settled(client, delivery.id)
    assert done.attempt_count == 3
    with pytest.raises(FailedPreconditionError):
        await client.retry_delivery(delivery.id)  # SUCCESS is not retryable...
    await client.force_resend_delivery(delivery.id)  # ...but can be resent
    await down.wait_for(4)


async def test_redirects_are_failures_and_never_followed(client: Client, receivers: Make) -> None:
    target = await receivers()
    redirector = await receivers(default_status=302, headers={"Location": target.url})
    ep = await endpoint(
        client, redirector.url, retry_policy=pb.RetryPolicy(schedule=pb.ScheduleRetry())
    )
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
    failed = await settled(client, delivery.id, dpb.DELIVERY_STATUS_FAILURE)
    assert failed.last_http_status == 302
    assert target.requests == []


async def test_gone_makes_the_endpoint_inactive(client: Client, receivers: Make) -> None:
    gone = await receivers(default_status=410)
    ep = await endpoint(client, gone.url)
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
    await settled(client, delivery.id, dpb.DELIVERY_STATUS_FAILURE)

    async def inactive() -> bool:
        return (await client.get_endpoint(ep.id)).status == pb.ENDPOINT_STATUS_INACTIVE

    await eventually(inactive)
    later = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    assert list((await statuses(client, later.id)).values()) == [dpb.DELIVERY_STATUS_DISCARDED]
    assert len(gone.requests) == 1


async def test_paused_endpoint_discards_new_events(client: Client, receivers: Make) -> None:
    receiver = await receivers()
    ep = await endpoint(client, receiver.url)
    await client.pause_endpoint(ep.id)
    event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    assert list((await statuses(client, event.id)).values()) == [dpb.DELIVERY_STATUS_DISCARDED]
    await client.resume_endpoint(ep.id)
    (discarded,) = (await client.list_deliveries(event_id=event.id)).deliveries
    await client.retry_delivery(discarded.id)
    await settled(client, discarded.id)
    assert len(receiver.requests) == 1


async def test_event_types_filter_fan_out(client: Client, receivers: Make) -> None:
    orders, all_types = await receivers(), await receivers()
    await endpoint(client, orders.url, owner_id="o", event_types=["order.*"])
    await endpoint(client, all_types.url, owner_id="o")
    invoice = await client.create_event(event_type="invoice.paid", data={}, owner_id="o")
    order = await client.create_event(event_type="order.created", data={}, owner_id="o")
    assert (invoice.delivery_count, order.delivery_count) == (1, 2)


async def test_idempotency_key_returns_the_original_or_conflicts(
    client: Client, receivers: Make
) -> None:
    receiver = await receivers()
    ep = await endpoint(client, receiver.url)
    first = await client.create_event(
        event_type="t", data={"a": 1}, endpoint_ids=[ep.id], idempotency_key="k1"
    )
    again = await client.create_event(
        event_type="t", data={"a": 1}, endpoint_ids=[ep.id], idempotency_key="k1"
    )
    assert again.id == first.id
    with pytest.raises(AlreadyExistsError):
        await client.create_event(
            event_type="t", data={"a": 2}, endpoint_ids=[ep.id], idempotency_key="k1"
        )
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1
    assert len((await client.list_deliveries(event_id=first.id)).deliveries) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": b"not json"}, "data"),
        ({"data": b'"' + b"x" * (1024 * 1024) + b'"'}, "data"),
        ({"event_type": "has space"}, "event_type"),
        ({"endpoint_ids": [], "owner_id": ""}, "endpoint_ids"),
        ({"headers": {"X-A": "a\r\nb"}}, "headers['X-A']"),
    ],
)
async def test_bad_events_name_the_field(
    client: Client, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"event_type": "t", "data": b"{}", "owner_id": "x"}
    args.update(kwargs)
    with pytest.raises(InvalidArgumentError) as info:
        await client.create_event(**args)
    assert field in [f for f, _ in info.value.field_violations]


async def test_batch_is_all_or_nothing_and_names_the_bad_request(
    client: Client, receivers: Make
) -> None:
    from convoyd.client import event_request

    receiver = await receivers()
    ep = await endpoint(client, receiver.url)
    good = event_request(event_type="t", data={"i": 1}, endpoint_ids=[ep.id])
    bad = event_request(event_type="t", data=b"{oops", endpoint_ids=[ep.id])
    with pytest.raises(InvalidArgumentError) as info:
        await client.batch_create_events([good, bad])
    assert [f for f, _ in info.value.field_violations] == ["requests[1].data"]
    assert (await client.list_events()).events == []

    batch = [event_request(event_type="t", data={"i": i}, endpoint_ids=[ep.id]) for i in range(50)]
    response = await client.batch_create_events(batch)
    assert len(response.events) == 50
    await receiver.wait_for(50)
    assert sorted(json.loads(r.body)["i"] for r in receiver.requests) == list(range(50))


async def test_loopback_is_blocked_unless_allow_listed(app: Running, receivers: Make) -> None:
    receiver = await receivers()
    async with Client(app.grpc_target, token=app.token) as client:
        ep = await endpoint(
            client, receiver.url, retry_policy=pb.RetryPolicy(schedule=pb.ScheduleRetry())
        )
        event = await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
        (delivery,) = (await client.list_deliveries(event_id=event.id)).deliveries
        await settled(client, delivery.id, dpb.DELIVERY_STATUS_FAILURE)
        (attempt,) = (await client.list_delivery_attempts(delivery.id)).attempts
    assert attempt.result == dpb.ATTEMPT_RESULT_BLOCKED
    assert "blocked" in attempt.error and "allow_cidrs" in attempt.error
    assert receiver.requests == []


async def test_a_hung_endpoint_does_not_slow_a_healthy_one(client: Client, receivers: Make) -> None:
    hung = await receivers(hang=asyncio.Event())
    healthy = await receivers()
    slow_ep = await endpoint(client, hung.url, http_timeout=duration_pb2.Duration(seconds=30))
    fast_ep = await endpoint(client, healthy.url)
    for _ in range(40):  # far more than the hung endpoint's concurrency limit
        await client.create_event(event_type="t", data={}, endpoint_ids=[slow_ep.id])
    await hung.wait_for(8)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(20):
        await client.create_event(event_type="t", data={"i": i}, endpoint_ids=[fast_ep.id])
    await healthy.wait_for(20)
    assert loop.time() - started < 5.0
    assert len(hung.requests) == 8  # its own limit, no more


async def test_watch_streams_status_changes(client: Client, receivers: Make) -> None:
    receiver = await receivers()
    ep = await endpoint(client, receiver.url)
    seen: list[int] = []
    stream = client.watch_deliveries(endpoint_id=ep.id)

    async def consume() -> None:
        async for change in stream:
            if change.HasField("delivery"):
                seen.append(change.delivery.status)
                if change.delivery.status == dpb.DELIVERY_STATUS_SUCCESS:
                    return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # the stream is open
    await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    await asyncio.wait_for(consumer, 10)
    # PROCESSING is shown when it was committed before the outcome (not for a fast answer).
    assert seen[-1] == dpb.DELIVERY_STATUS_SUCCESS
    assert set(seen) <= {dpb.DELIVERY_STATUS_PROCESSING, dpb.DELIVERY_STATUS_SUCCESS}


async def test_batch_retry_counts_then_resends(
    client: Client, receivers: Make, delivering: tuple[App, Running]
) -> None:
    receiver = await receivers()
    ep = await endpoint(client, receiver.url)
    await client.pause_endpoint(ep.id)
    for _ in range(5):
        await client.create_event(event_type="t", data={}, endpoint_ids=[ep.id])
    await client.resume_endpoint(ep.id)
    dry = await client.batch_retry_deliveries(endpoint_id=ep.id, dry_run=True)
    assert dry.queued_count == 5
    assert receiver.requests == []
    done = await client.batch_retry_deliveries(endpoint_id=ep.id)
    assert done.queued_count == 5
    await receiver.wait_for(5)


async def test_deleting_an_endpoint_mid_attempt_does_not_block_other_outcomes(
    client: Client, receivers: Make
) -> None:
    hung = await receivers(hang=asyncio.Event())
    healthy = await receivers()
    doomed = await endpoint(client, hung.url)
    fine = await endpoint(client, healthy.url)
    await client.create_event(event_type="t", data={}, endpoint_ids=[doomed.id])
    await hung.wait_for(1)  # the attempt is in flight
    await client.delete_endpoint(doomed.id)  # its deliveries go with it
    assert hung.hang is not None
    hung.hang.set()  # the attempt ends; its outcome has no delivery row any more
    await asyncio.sleep(0.2)
    later = await client.create_event(event_type="t", data={}, endpoint_ids=[fine.id])
    (delivery,) = (await client.list_deliveries(event_id=later.id)).deliveries
    await settled(client, delivery.id)  # outcomes are still being stored
