"""convoyd.client against a real grpc.aio server on loopback: error mapping, tokens, paging."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from convoyd.client import (
    Client,
    ConvoydClientError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    duration,
    resolve_target,
    resolve_token,
)
from convoyd.v1 import delivery_pb2, delivery_pb2_grpc, endpoint_pb2, endpoint_pb2_grpc

TOKEN = "s3cret"
VIOLATIONS = [("url", "must be an http or https URL"), ("http_timeout", "must be at most 60s")]


def authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    return str(dict(context.invocation_metadata() or ()).get("authorization", ""))


class Endpoints(endpoint_pb2_grpc.EndpointServiceServicer):
    """GetEndpoint answers by id: each ep_<case> fails its own way; any other id echoes the
    authorization header it received in the endpoint's name."""

    def __init__(self) -> None:
        self.list_requests: list[endpoint_pb2.ListEndpointsRequest] = []

    async def GetEndpoint(
        self, request: endpoint_pb2.GetEndpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> endpoint_pb2.Endpoint:
        if request.endpoint_id == "ep_invalid":
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in VIOLATIONS
                ]
            )
            detail = any_pb2.Any()
            detail.Pack(bad)
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="the endpoint is invalid", details=[detail]
            )
            await context.abort_with_status(rpc_status.to_status(status))
        if request.endpoint_id == "ep_missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no endpoint ep_missing")
        if request.endpoint_id == "ep_full":
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "disk full")
        if request.endpoint_id == "ep_broken":
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        if request.endpoint_id == "ep_private" and authorization(context) != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown token")
        return endpoint_pb2.Endpoint(id=request.endpoint_id, name=authorization(context))

    async def ListEndpoints(
        self,
        request: endpoint_pb2.ListEndpointsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> endpoint_pb2.ListEndpointsResponse:
        self.list_requests.append(request)
        start = int(request.page_token or 0)
        end = min(start + request.page_size, 5)
        return endpoint_pb2.ListEndpointsResponse(
            endpoints=[endpoint_pb2.Endpoint(id=f"ep_{i}") for i in range(start, end)],
            next_page_token=str(end) if end < 5 else "",
        )

    async def RotateEndpointSecret(
        self,
        request: endpoint_pb2.RotateEndpointSecretRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> endpoint_pb2.RotateEndpointSecretResponse:
        # Echoes the lifetime asked for as the new secret's id, to check the conversion.
        lifetime = request.old_secret_lifetime
        secret = endpoint_pb2.EndpointSecret(id=f"{lifetime.seconds}.{lifetime.nanos}")
        return endpoint_pb2.RotateEndpointSecretResponse(secret=secret)


class Deliveries(delivery_pb2_grpc.DeliveryServiceServicer):
    async def WatchDeliveries(
        self,
        request: delivery_pb2.WatchDeliveriesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[delivery_pb2.WatchDeliveriesResponse]:
        delivery = delivery_pb2.Delivery(id="dl_1", status_reason=authorization(context))
        yield delivery_pb2.WatchDeliveriesResponse(delivery=delivery)
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the endpoint was deleted")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CONVOYD_TOKEN", "CONVOYD_DATA_DIR", "CONVOYD_GRPC_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # so that ./convoyd-data is this test's own


@pytest.fixture
async def servicers() -> AsyncIterator[tuple[str, Endpoints]]:
    endpoints = Endpoints()
    server = grpc.aio.server()
    endpoint_pb2_grpc.add_EndpointServiceServicer_to_server(endpoints, server)
    delivery_pb2_grpc.add_DeliveryServiceServicer_to_server(Deliveries(), server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", endpoints
    await server.stop(None)


@pytest.fixture
def target(servicers: tuple[str, Endpoints]) -> str:
    return servicers[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_invalid_argument_carries_field_violations(target: str) -> None:
    async with Client(target, token=TOKEN) as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.get_endpoint("ep_invalid")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == "the endpoint is invalid"
    assert caught.value.field_violations == VIOLATIONS
    assert str(caught.value) == "INVALID_ARGUMENT: the endpoint is invalid"


@pytest.mark.parametrize(
    ("endpoint_id", "error", "message"),
    [
        ("ep_missing", NotFoundError, "no endpoint ep_missing"),
        ("ep_full", ResourceExhaustedError, "disk full"),
        ("ep_private", UnauthenticatedError, "missing or unknown token"),
    ],
)
async def test_status_codes_map_to_classes(
    target: str, endpoint_id: str, error: type[ConvoydClientError], message: str
) -> None:
    async with Client(target, token="wrong") as client:
        with pytest.raises(error) as caught:
            await client.get_endpoint(endpoint_id)
    assert caught.value.message == message
    assert caught.value.field_violations == []


async def test_unmapped_codes_raise_the_root_class(target: str) -> None:
    async with Client(target, token=TOKEN) as client:
        with pytest.raises(ConvoydClientError) as caught:
            await client.get_endpoint("ep_broken")
    assert type(caught.value) is ConvoydClientError
    assert caught.value.code == grpc.StatusCode.INTERNAL


async def test_the_bearer_token_is_sent(target: str) -> None:
    async with Client(target, token=TOKEN) as client:
        endpoint = await client.get_endpoint("ep_private")
    assert endpoint.id == "ep_private"
    assert endpoint.name == f"Bearer {TOKEN}"


async def test_streams_carry_the_token_and_map_errors(target: str) -> None:
    seen: list[delivery_pb2.WatchDeliveriesResponse] = []
    async with Client(target, token=TOKEN) as client:
        with pytest.raises(FailedPreconditionError, match="the endpoint was deleted"):
            async for change in client.watch_deliveries(endpoint_id="ep_1"):
                seen.append(change)
    assert [c.delivery.status_reason for c in seen] == [f"Bearer {TOKEN}"]


async def test_unreachable_daemon_is_unavailable() -> None:
    async with Client(f"127.0.0.1:{closed_port()}", token=TOKEN, timeout=10) as client:
        with pytest.raises(UnavailableError):
            await client.get_endpoint("ep_1")


async def test_iter_endpoints_follows_page_tokens(servicers: tuple[str, Endpoints]) -> None:
    target, endpoints = servicers
    async with Client(target, token=TOKEN) as client:
        ids = [ep.id async for ep in client.iter_endpoints(owner_id="acme", page_size=2)]
    assert ids == [f"ep_{i}" for i in range(5)]
    assert [r.page_token for r in endpoints.list_requests] == ["", "2", "4"]
    assert {r.owner_id for r in endpoints.list_requests} == {"acme"}


async def test_rotate_sends_the_lifetime_as_a_duration(target: str) -> None:
    async with Client(target, token=TOKEN) as client:
        got = await client.rotate_endpoint_secret("ep_1", old_secret_lifetime=90.25)
    assert got.secret.id == "90.250000000"


async def test_health(target: str) -> None:
    async with Client(target) as client:
        assert await client.health() == "SERVING"


# Token resolution: the argument, then $CONVOYD_TOKEN, then <data dir>/admin.token.


def write_token(directory: Path, token: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "admin.token").write_text(token + "\n", encoding="utf-8")
    return directory


async def sent_authorization(target: str, **options: Any) -> str:
    async with Client(target, **options) as client:
        return (await client.get_endpoint("ep_echo")).name


async def test_token_argument_beats_env_and_file(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVOYD_TOKEN", "from-env")
    data_dir = write_token(tmp_path / "data", "from-file")
    assert await sent_authorization(target, token="from-arg", data_dir=data_dir) == (
        "Bearer from-arg"
    )


async def test_env_token_beats_file(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVOYD_TOKEN", "from-env")
    data_dir = write_token(tmp_path / "data", "from-file")
    assert await sent_authorization(target, data_dir=data_dir) == "Bearer from-env"


async def test_token_file_in_data_dir_argument_beats_env_data_dir(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVOYD_DATA_DIR", str(write_token(tmp_path / "env", "from-env-dir")))
    data_dir = write_token(tmp_path / "arg", "from-arg-dir")
    assert await sent_authorization(target, data_dir=str(data_dir)) == "Bearer from-arg-dir"


async def test_token_file_in_env_data_dir(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONVOYD_DATA_DIR", str(write_token(tmp_path / "env", "from-env-dir")))
    assert await sent_authorization(target) == "Bearer from-env-dir"


async def test_token_file_in_default_data_dir(target: str, tmp_path: Path) -> None:
    write_token(tmp_path / "convoyd-data", "from-default-dir")  # the cwd is tmp_path
    assert await sent_authorization(target) == "Bearer from-default-dir"


async def test_no_token_sends_no_authorization(target: str) -> None:
    async with Client(target) as client:
        assert client.token is None
        assert (await client.get_endpoint("ep_echo")).name == ""
        with pytest.raises(UnauthenticatedError):
            await client.get_endpoint("ep_private")


def test_resolve_token_with_an_injected_env(tmp_path: Path) -> None:
    data_dir = write_token(tmp_path / "d", "  from-file  ")
    assert resolve_token(None, None, {"CONVOYD_DATA_DIR": str(data_dir)}) == "from-file"
    assert resolve_token(None, None, {"CONVOYD_TOKEN": "t", "CONVOYD_DATA_DIR": str(data_dir)}) == (
        "t"
    )
    assert resolve_token(None, tmp_path / "nowhere", {}) is None


@pytest.mark.parametrize(
    ("target", "env", "expected"),
    [
        ("h:1", {"CONVOYD_GRPC_LISTEN": "127.0.0.1:9"}, "h:1"),
        (None, {"CONVOYD_GRPC_LISTEN": "127.0.0.2:9"}, "127.0.0.2:9"),
        (None, {"CONVOYD_GRPC_LISTEN": "0.0.0.0:9"}, "127.0.0.1:9"),
        (None, {"CONVOYD_GRPC_LISTEN": "[::]:9"}, "[::1]:9"),
        (None, {}, "127.0.0.1:7400"),
    ],
)
def test_resolve_target(target: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_target(target, env) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0, (0, 0)), (1.5, (1, 500_000_000)), (86400, (86400, 0))]
)
def test_duration(seconds: float, expected: tuple[int, int]) -> None:
    got = duration(seconds)
    assert (got.seconds, got.nanos) == expected
