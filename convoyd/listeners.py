"""Opening convoyd's sockets: the gRPC server and the HTTP listeners, each failing in one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from convoyd import ports
from convoyd.errors import StartupError
from convoyd.http import limits as httplimits
from convoyd.settings import DeliverySettings, HttpServerSettings, split_host_port
from convoyd.v1 import cluster_pb2, delivery_pb2, endpoint_pb2, event_pb2, portal_pb2

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (endpoint_pb2, "EndpointService"),
        (event_pb2, "EventService"),
        (delivery_pb2, "DeliveryService"),
        (portal_pb2, "PortalService"),
        (cluster_pb2, "ClusterService"),
    )
)
# One event's fields besides its payload: ids, event type, idempotency key, 32 headers.
REQUEST_ENVELOPE = 1024 * 1024
# Responses: room for a page of events with large payloads.
MAX_GRPC_SEND = 64 * 1024 * 1024
# Request headers (the token is ~50 bytes): grpc refuses some calls past the soft limit and
# every call past the hard one, before any handler runs.
MAX_METADATA_SOFT = 8 * 1024
MAX_METADATA = 16 * 1024
# Streams one connection may have open at once; a client past it waits for a free one.
MAX_STREAMS_PER_CONNECTION = 1000


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def refuse_if_in_use(listen: str, setting: str) -> None:
    """StartupError in one line when another process already listens on ``listen``, naming
    it (another convoyd's pid, say): before grpc would log its own multi-line complaint."""
    host, port = split_host_port(listen)
    if ports.in_use(host, port):
        raise StartupError(
            f"{setting} {listen} is in use by {ports.holder(port)}; stop it, or give this"
            f" one another {setting} (port 0 picks a free port)"
        )


def receive_limit(delivery: DeliverySettings) -> int:
    """The largest gRPC message convoyd reads: the largest valid request, a BatchCreateEvents
    of ``max_batch_bytes`` (at least ``max_payload_bytes``) plus one event's envelope.

    grpc has no per-method limit, so a CreateEvent may reach this size too; its payload is then
    refused by validation. Callers without a valid token never get a message read at all (see
    convoyd.control.auth), so this only bounds what authenticated callers can make us hold."""
    return delivery.max_batch_bytes + REQUEST_ENVELOPE


def grpc_server(interceptors: Sequence[Any], *, max_receive: int) -> grpc.aio.Server:
    """A server that reads messages of at most ``max_receive`` bytes (RESOURCE_EXHAUSTED)."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", max_receive),
            ("grpc.max_send_message_length", MAX_GRPC_SEND),
            ("grpc.max_metadata_size", MAX_METADATA_SOFT),
            ("grpc.absolute_max_metadata_size", MAX_METADATA),
            ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
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
    refuse_if_in_use(listen, "grpc_listen")
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


async def serve_http(
    app: web.Application,
    listen: str,
    setting: str,
    limits: HttpServerSettings | None = None,
) -> tuple[web.AppRunner, str]:
    """Serves ``app`` on ``listen`` within ``limits`` (see convoyd.http.limits); returns the
    runner (to clean up) and the bound address."""
    limits = limits or HttpServerSettings()
    host, port = split_host_port(listen)
    refuse_if_in_use(listen, setting)
    app.middlewares.insert(0, httplimits.body_middleware(limits))
    options = httplimits.handler_options(limits)
    runner = web.AppRunner(app, **options)
    await runner.setup()
    try:
        await httplimits.GuardedSite(runner, host, port, limits, options).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"{setting} {listen}: cannot listen: {exc.strerror or exc}") from None
    # With port 0 the kernel picks the port; the runner knows the bound addresses.
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, host_port(host, bound)
