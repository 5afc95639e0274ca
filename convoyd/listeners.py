"""Opening convoyd's sockets: the gRPC server and the HTTP listeners, each failing in one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from convoyd.errors import ConvoydError
from convoyd.settings import split_host_port
from convoyd.v1 import delivery_pb2, endpoint_pb2, event_pb2, portal_pb2

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (endpoint_pb2, "EndpointService"),
        (event_pb2, "EventService"),
        (delivery_pb2, "DeliveryService"),
        (portal_pb2, "PortalService"),
    )
)
# Room for a BatchCreateEvents of many events; single payloads are limited by delivery settings.
MAX_GRPC_MESSAGE = 64 * 1024 * 1024


class StartupError(ConvoydError):
    """convoyd cannot start; the message says what and where, in one line."""


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def grpc_server(interceptors: Sequence[Any]) -> grpc.aio.Server:
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    return server


def enable_reflection(server: grpc.aio.Server) -> None:
    health = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((*SERVICE_NAMES, health, reflection.SERVICE_NAME), server)


def bind_grpc(
    server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials | None
) -> str:
    """Binds ``listen`` (TLS when credentials are given); returns the address as bound."""
    try:
        port = (
            server.add_secure_port(listen, credentials)
            if credentials is not None
            else server.add_insecure_port(listen)
        )
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(f"grpc_listen {listen}: cannot listen (address in use or not local?)")
    host, _ = split_host_port(listen)
    return host_port(host, port)


async def serve_http(app: web.Application, listen: str, setting: str) -> tuple[web.AppRunner, str]:
    """Serves ``app`` on ``listen``; returns the runner (to clean up) and the bound address."""
    host, port = split_host_port(listen)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=False).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"{setting} {listen}: cannot listen: {exc.strerror or exc}") from None
    # With port 0 the kernel picks the port; the runner knows the bound addresses.
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, host_port(host, bound)
