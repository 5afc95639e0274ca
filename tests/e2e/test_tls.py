"""TLS and mutual TLS on the gRPC listener, with certificates made by openssl for the test."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from convoyd.v1 import endpoint_pb2, endpoint_pb2_grpc
from tests.conftest import DaemonProcess
from tests.pki import make_pki

pytestmark = pytest.mark.e2e


async def check(target: str, credentials: grpc.ChannelCredentials, token: str) -> int:
    async with grpc.aio.secure_channel(target, credentials) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        await endpoint_pb2_grpc.EndpointServiceStub(channel).ListEndpoints(
            endpoint_pb2.ListEndpointsRequest(),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=5,
        )
        return int(health.status)


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    daemon.env.update(
        CONVOYD_TLS_CERT_FILE=str(pki["server.crt"]),
        CONVOYD_TLS_KEY_FILE=str(pki["server.key"]),
        CONVOYD_TLS_CLIENT_CA_FILE=str(pki["ca.crt"]),
    )
    running = daemon.start()
    ca = pki["ca.crt"].read_bytes()
    with_client_cert = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=pki["client.key"].read_bytes(),
        certificate_chain=pki["client.crt"].read_bytes(),
    )
    assert (
        await check(running.grpc_target, with_client_cert, running.token)
        == health_pb2.HealthCheckResponse.SERVING
    )

    without = grpc.ssl_channel_credentials(root_certificates=ca)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await check(running.grpc_target, without, running.token)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    async with grpc.aio.insecure_channel(running.grpc_target) as plain:
        with pytest.raises(grpc.aio.AioRpcError):
            await health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    assert daemon.stop() == 0


async def test_tls_without_client_certificates(daemon: DaemonProcess, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    daemon.env.update(
        CONVOYD_TLS_CERT_FILE=str(pki["server.crt"]), CONVOYD_TLS_KEY_FILE=str(pki["server.key"])
    )
    running = daemon.start()
    credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca.crt"].read_bytes())
    assert (
        await check(running.grpc_target, credentials, running.token)
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert daemon.stop() == 0
