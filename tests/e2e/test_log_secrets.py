"""No secret reaches the logs: the real daemon at log_level=debug, through every path that
handles signing secrets, authentication header values and tokens, successes and failures."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable

import grpc
import pytest

from convoyd.client import Client
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import endpoint_pb2_grpc
from tests.conftest import DaemonProcess
from tests.receivers import Receiver, eventually

pytestmark = pytest.mark.e2e


def standard_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def api_key(value: str) -> pb.EndpointAuthentication:
    return pb.EndpointAuthentication(
        api_key=pb.ApiKeyAuthentication(header_name="X-Api-Key", header_value=value)
    )


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
async def test_no_secret_or_token_is_ever_logged(
    daemon: DaemonProcess, receivers: Callable[..., Awaitable[Receiver]], log_format: str
) -> None:
    daemon.env.update(
        CONVOYD_LOG_LEVEL="debug",
        CONVOYD_LOG_FORMAT=log_format,
        CONVOYD_DELIVERY_ALLOW_CIDRS="127.0.0.0/8",
    )
    ok = await receivers()
    failing = await receivers(default_status=500)
    running = daemon.start()
    sensitive = {running.token}

    def remember(*values: str) -> None:
        assert all(values)
        sensitive.update(values)

    async with Client(running.grpc_target, token=running.token) as client:
        targets = []
        for url, scheme in (
            (ok.url, pb.SIGNATURE_SCHEME_STANDARD),
            (failing.url, pb.SIGNATURE_SCHEME_CONVOY_ADVANCED),
            ("http://[::1]:9/blocked", pb.SIGNATURE_SCHEME_CONVOY_SIMPLE),  # not allowed
        ):
            secret = standard_secret()
            auth = "key-" + secrets.token_urlsafe(24)
            custom = "tenant-" + secrets.token_urlsafe(24)
            remember(secret, auth, custom)
            created = await client.create_endpoint(
                pb.Endpoint(
                    url=url,
                    owner_id="leak",
                    signature=pb.SignatureConfig(scheme=scheme),
                    authentication=api_key(auth),
                    headers={"X-Tenant-Token": custom},
                ),
                secret=secret,
            )
            targets.append(created.id)
        # Rotation with a chosen and with a generated secret, then reading them back.
        chosen = standard_secret()
        remember(chosen)
        await client.rotate_endpoint_secret(targets[0], secret=chosen, old_secret_lifetime=60)
        generated = await client.rotate_endpoint_secret(targets[1], old_secret_lifetime=0)
        remember(generated.secret.value)
        remember(*[s.value for s in (await client.get_endpoint_secret(targets[0])).secrets])
        # A new authentication value replaces the old one.
        new_auth = "key-" + secrets.token_urlsafe(24)
        remember(new_auth)
        await client.update_endpoint(
            pb.Endpoint(id=targets[1], authentication=api_key(new_auth)), ["authentication"]
        )
        for i in range(3):
            await client.create_event(event_type="t", data={"i": i}, owner_id="leak")
        await ok.wait_for(3)
        await failing.wait_for(3)

        async def blocked_attempted() -> bool:
            page = await client.list_deliveries(endpoint_id=targets[2])
            return all(d.attempt_count >= 1 for d in page.deliveries)

        await eventually(blocked_attempted)
        # A rejected token (a wrong one that looks right) is not logged either.
        wrong = "cvd_" + secrets.token_urlsafe(32)
        remember(wrong)
        async with running.channel() as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await endpoint_pb2_grpc.EndpointServiceStub(channel).GetEndpoint(
                    pb.GetEndpointRequest(endpoint_id=targets[0]),
                    metadata=(("authorization", f"Bearer {wrong}"),),
                    timeout=10,
                )
    # The receivers did get the values: the test would catch a leak if there were one.
    assert ok.requests[-1].headers["X-Api-Key"] in sensitive
    assert daemon.stop() == 0

    log = daemon.log()
    assert ("level=debug" if log_format == "logfmt" else '"level": "debug"') in log
    assert "attempt http_error" in log and "attempt blocked" in log and "attempt success" in log
    leaked = sorted(value for value in sensitive if value in log)
    assert not leaked, f"{len(leaked)} secret(s) found in the daemon's log"
    # Nor their secret parts alone (the base64 inside whsec_, a token without its prefix).
    parts = {v.split("_", 1)[1] for v in sensitive if v.startswith(("whsec_", "cvd_"))}
    assert not [p for p in parts if p in log]
