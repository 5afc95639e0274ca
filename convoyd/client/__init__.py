"""Typed async client for convoyd's gRPC control plane, with gRPC errors mapped to exceptions.

async with Client() as client:          # token from CONVOYD_TOKEN or ./convoyd-data
    endpoint = await client.create_endpoint(endpoint_pb2.Endpoint(url="https://..."))
"""

from __future__ import annotations

from convoyd.client.cluster import ClusterCalls
from convoyd.client.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_TARGET,
    TOKEN_FILE,
    duration,
    event_request,
    resolve_target,
    resolve_token,
    timestamp,
)
from convoyd.client.deliveries import DeliveryCalls
from convoyd.client.endpoints import EndpointCalls
from convoyd.client.errors import (
    AlreadyExistsError,
    ConvoydClientError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    error_from_rpc,
)
from convoyd.client.events import EventCalls
from convoyd.client.portal import PortalCalls


class Client(EndpointCalls, EventCalls, DeliveryCalls, PortalCalls, ClusterCalls):
    """One channel to convoyd. Use as ``async with Client() as c:`` or call ``close()``.

    Every call carries ``authorization: Bearer <token>`` when a token was found (see
    ``resolve_token``) and fails with a ``ConvoydClientError`` subclass. ``timeout`` bounds
    each unary call; ``watch_deliveries`` runs until cancelled.
    """


__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_TARGET",
    "TOKEN_FILE",
    "AlreadyExistsError",
    "Client",
    "ConvoydClientError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "duration",
    "error_from_rpc",
    "event_request",
    "resolve_target",
    "resolve_token",
    "timestamp",
]
