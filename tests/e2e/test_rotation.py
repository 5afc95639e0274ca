"""Zero-downtime secret rotation against the real `convoyd serve` process, per signature scheme."""

from __future__ import annotations

import secrets as random_secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from google.protobuf import timestamp_pb2
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as StandardVerificationError

from convoyd import webhooks
from convoyd.client import Client, InvalidArgumentError, ResourceExhaustedError
from convoyd.v1 import delivery_pb2, endpoint_pb2
from tests.conftest import DaemonProcess, Running
from tests.receivers import Received, Receiver, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]

# Long enough to cover a delivery, a daemon restart and another delivery on a loaded CI box
# (together ~0.5 s here); short enough that waiting for the expiry keeps the file fast.
OVERLAP = 4.0
DAY = 86400.0


@dataclass(frozen=True)
class Scheme:
    """A signature configuration as the API takes it and as a receiver verifies it."""

    proto: endpoint_pb2.SignatureConfig
    scheme: webhooks.SignatureScheme
    hash: webhooks.SignatureHash = webhooks.SignatureHash.SHA256
    encoding: webhooks.SignatureEncoding = webhooks.SignatureEncoding.HEX
    # Convoy schemes accept any 16..256 printable characters; STANDARD needs whsec_<base64>.
    custom_secrets: bool = False


STANDARD = Scheme(
    proto=endpoint_pb2.SignatureConfig(scheme=endpoint_pb2.SIGNATURE_SCHEME_STANDARD),
    scheme=webhooks.SignatureScheme.STANDARD,
)
CONVOY_SIMPLE = Scheme(
    proto=endpoint_pb2.SignatureConfig(
        scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_SIMPLE,
        hash=endpoint_pb2.SIGNATURE_HASH_SHA512,
        encoding=endpoint_pb2.SIGNATURE_ENCODING_BASE64,
    ),
    scheme=webhooks.SignatureScheme.CONVOY_SIMPLE,
    hash=webhooks.SignatureHash.SHA512,
    encoding=webhooks.SignatureEncoding.BASE64,
    custom_secrets=True,
)
CONVOY_ADVANCED = Scheme(
    proto=endpoint_pb2.SignatureConfig(
        scheme=endpoint_pb2.SIGNATURE_SCHEME_CONVOY_ADVANCED,
        hash=endpoint_pb2.SIGNATURE_HASH_SHA256,
        encoding=endpoint_pb2.SIGNATURE_ENCODING_HEX,
    ),
    scheme=webhooks.SignatureScheme.CONVOY_ADVANCED,
    hash=webhooks.SignatureHash.SHA256,
    encoding=webhooks.SignatureEncoding.HEX,
    custom_secrets=True,
)


def passes(scheme: Scheme, request: Received, secret: str) -> bool:
    """Whether a receiver holding ONLY ``secret`` accepts the request."""
    try:
        webhooks.verify(
            request.body,
            request.headers,
            [secret],
            scheme=scheme.scheme,
            hash=scheme.hash,
            encoding=scheme.encoding,
        )
    except webhooks.WebhookVerificationError:
        return False
    standard_passes = scheme.scheme != webhooks.SignatureScheme.STANDARD or passes_standardwebhooks(
        request, secret
    )
    # The reference implementation must agree with convoyd's own verifier.
    assert standard_passes, "convoyd.webhooks accepted what standardwebhooks rejects"
    return True


def passes_standardwebhooks(request: Received, secret: str) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except StandardVerificationError:
        return False
    return True


def signature_count(scheme: Scheme, request: Received) -> int:
    headers = {k.lower(): v for k, v in request.headers.items()}
    if scheme.scheme == webhooks.SignatureScheme.STANDARD:
        return len(headers["webhook-signature"].split())
    value = headers["x-convoy-signature"]
    if scheme.scheme == webhooks.SignatureScheme.CONVOY_SIMPLE:
        return 1 if value else 0
    return sum(part.startswith("v1=") for part in value.split(","))


def seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


async def deliver(client: Client, receiver: Receiver, endpoint_id: str, n: int) -> Received:
    """Sends one event to the endpoint and returns the request the receiver got for it."""
    event = await client.create_event(
        event_type="invoice.paid", data={"n": n}, endpoint_ids=[endpoint_id]
    )
    found: list[delivery_pb2.Delivery] = []

    async def succeeded() -> bool:
        got = await client.list_deliveries(event_id=event.id)
        found[:] = [d for d in got.deliveries if d.status == delivery_pb2.DELIVERY_STATUS_SUCCESS]
        return bool(found)

    await eventually(succeeded)
    (delivery,) = found
    # The delivery id is the webhook-id header: it names the request unambiguously.
    matching = [
        r
        for r in receiver.requests
        if {k.lower(): v for k, v in r.headers.items()}.get("webhook-id") == delivery.id
    ]
    assert len(matching) == 1, f"expected one request for {delivery.id}, got {len(matching)}"
    return matching[0]


async def new_endpoint(client: Client, receiver: Receiver, scheme: Scheme) -> endpoint_pb2.Endpoint:
    secret = f"convoy-{random_secrets.token_urlsafe(24)}" if scheme.custom_secrets else ""
    return await client.create_endpoint(
        endpoint_pb2.Endpoint(url=receiver.url, owner_id="acme", signature=scheme.proto),
        secret=secret,
    )


def start(daemon: DaemonProcess) -> Running:
    daemon.env["CONVOYD_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    return daemon.start()


def connect(running: Running) -> Client:
    return Client(running.grpc_target, token=running.token)


async def assert_live_secrets(client: Client, endpoint_id: str, expected: list[str]) -> None:
    """GetEndpoint lists the live secrets' ids without values; GetEndpointSecret has values."""
    endpoint = await client.get_endpoint(endpoint_id)
    values = (await client.get_endpoint_secret(endpoint_id)).secrets
    assert [s.value for s in values] == expected  # newest first
    assert [s.id for s in endpoint.secrets] == [s.id for s in values]
    assert all(s.value == "" for s in endpoint.secrets)
    assert all(s.HasField("created_at") for s in endpoint.secrets)


@pytest.mark.parametrize(
    "scheme",
    [STANDARD, CONVOY_SIMPLE, CONVOY_ADVANCED],
    ids=["standard", "convoy-simple-sha512-base64", "convoy-advanced-sha256-hex"],
)
async def test_rotation_overlaps_survives_a_restart_and_then_expires(
    daemon: DaemonProcess,
    receivers: Callable[..., Awaitable[Receiver]],
    scheme: Scheme,
) -> None:
    receiver = await receivers()
    simple = scheme.scheme == webhooks.SignatureScheme.CONVOY_SIMPLE
    running = start(daemon)
    async with connect(running) as client:
        created = await new_endpoint(client, receiver, scheme)
        (original,) = [s.value for s in created.secrets]

        # (a) Before the rotation: the original secret verifies.
        before = await deliver(client, receiver, created.id, 0)
        assert passes(scheme, before, original)
        assert signature_count(scheme, before) == 1

        # (b) Rotate: the new secret signs at once; the old one keeps signing for OVERLAP s.
        new_value = f"convoy-{random_secrets.token_urlsafe(24)}" if scheme.custom_secrets else ""
        rotated = await client.rotate_endpoint_secret(
            created.id, secret=new_value, old_secret_lifetime=OVERLAP
        )
        new = rotated.secret.value
        assert new and new != original and (not new_value or new == new_value)
        assert not rotated.secret.HasField("expires_at")
        listed = await client.get_endpoint(created.id)
        assert [s.id for s in listed.secrets] == [rotated.secret.id, created.secrets[0].id]
        old_expiry = seconds(listed.secrets[1].expires_at)
        assert old_expiry - time.time() <= OVERLAP
        await assert_live_secrets(client, created.id, [new, original])

        during = await deliver(client, receiver, created.id, 1)
        assert time.time() < old_expiry, "the test box is too slow for OVERLAP"
        assert passes(scheme, during, original)
        if simple:
            # One signature per request: the OLDEST live secret signs until it expires.
            assert not passes(scheme, during, new)
            assert signature_count(scheme, during) == 1
        else:
            assert passes(scheme, during, new)
            assert signature_count(scheme, during) == 2
    assert daemon.stop() == 0

    # (c) A restart in the middle of the overlap: secrets and their expiry are persisted.
    running = start(daemon)
    async with connect(running) as client:
        after_restart = await deliver(client, receiver, created.id, 2)
        assert time.time() < old_expiry, "the test box is too slow for OVERLAP"
        assert passes(scheme, after_restart, original)
        assert passes(scheme, after_restart, new) is not simple
        listed = await client.get_endpoint(created.id)
        assert seconds(listed.secrets[1].expires_at) == old_expiry
        await assert_live_secrets(client, created.id, [new, original])

        # (d) After the expiry only the new secret signs, in every scheme.
        await eventually(lambda: time.time() > old_expiry, timeout=OVERLAP + 5)
        expired = await deliver(client, receiver, created.id, 3)
        assert not passes(scheme, expired, original)
        assert passes(scheme, expired, new)
        assert signature_count(scheme, expired) == 1
        if scheme.scheme == webhooks.SignatureScheme.STANDARD:
            assert not passes_standardwebhooks(expired, original)
        await assert_live_secrets(client, created.id, [new])
    assert daemon.stop() == 0


async def test_zero_lifetime_expires_the_old_secret_at_once(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    async with connect(start(daemon)) as client:
        # CONVOY_SIMPLE too: with no live old secret left, the new one signs the next request.
        for scheme in (STANDARD, CONVOY_SIMPLE):
            created = await new_endpoint(client, receiver, scheme)
            rotated = await client.rotate_endpoint_secret(created.id, old_secret_lifetime=0)
            assert [s.id for s in rotated.endpoint.secrets] == [rotated.secret.id]
            await assert_live_secrets(client, created.id, [rotated.secret.value])
            request = await deliver(client, receiver, created.id, 0)
            assert not passes(scheme, request, created.secrets[0].value)
            assert passes(scheme, request, rotated.secret.value)
    assert daemon.stop() == 0


async def test_rotation_limits_and_validation(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    async with connect(start(daemon)) as client:
        created = await new_endpoint(client, receiver, STANDARD)

        with pytest.raises(InvalidArgumentError) as bad_lifetime:
            await client.rotate_endpoint_secret(created.id, old_secret_lifetime=8 * DAY)
        assert [f for f, _ in bad_lifetime.value.field_violations] == ["old_secret_lifetime"]
        with pytest.raises(InvalidArgumentError) as negative:
            await client.rotate_endpoint_secret(created.id, old_secret_lifetime=-1)
        assert [f for f, _ in negative.value.field_violations] == ["old_secret_lifetime"]

        not_whsec = "not-a-standard-webhooks-secret-value"
        with pytest.raises(InvalidArgumentError) as bad_secret:
            await client.rotate_endpoint_secret(created.id, secret=not_whsec)
        assert [f for f, _ in bad_secret.value.field_violations] == ["secret"]
        assert not_whsec not in str(bad_secret.value)  # secret material is never echoed

        # Nothing was changed by the rejected calls.
        await assert_live_secrets(client, created.id, [created.secrets[0].value])

        # 7 days is the longest lifetime; then up to 10 live secrets, the new one included.
        await fill_with_live_secrets(client, created.id)
        with pytest.raises(ResourceExhaustedError):
            await client.rotate_endpoint_secret(created.id, old_secret_lifetime=3600)
        assert len((await client.get_endpoint(created.id)).secrets) == 10
    assert daemon.stop() == 0


async def fill_with_live_secrets(client: Client, endpoint_id: str) -> None:
    await client.rotate_endpoint_secret(endpoint_id, old_secret_lifetime=7 * DAY)
    for _ in range(8):
        await client.rotate_endpoint_secret(endpoint_id, old_secret_lifetime=3600)
    assert len((await client.get_endpoint(endpoint_id)).secrets) == 10


async def test_zero_lifetime_rotation_frees_a_full_endpoint(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    async with connect(start(daemon)) as client:
        created = await new_endpoint(client, receiver, STANDARD)
        await fill_with_live_secrets(client, created.id)
        # 0 expires the 10 live secrets now: one live secret remains, the new one.
        rotated = await client.rotate_endpoint_secret(created.id, old_secret_lifetime=0)
        await assert_live_secrets(client, created.id, [rotated.secret.value])
    assert daemon.stop() == 0
