"""The channel, the bearer token on every call, error mapping and paging: what every call uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import grpc
import grpc.aio

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from grpc_health.v1 import health_pb2, health_pb2_grpc

from convoyd.client.config import resolve_target, resolve_token
from convoyd.client.errors import error_from_rpc
from convoyd.v1 import (
    cluster_pb2_grpc,
    delivery_pb2_grpc,
    endpoint_pb2_grpc,
    event_pb2_grpc,
    portal_pb2_grpc,
)

R = TypeVar("R")
T = TypeVar("T")


class _Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.endpoints = endpoint_pb2_grpc.EndpointServiceStub(channel)
        self.events = event_pb2_grpc.EventServiceStub(channel)
        self.deliveries = delivery_pb2_grpc.DeliveryServiceStub(channel)
        self.portal = portal_pb2_grpc.PortalServiceStub(channel)
        self.cluster = cluster_pb2_grpc.ClusterServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


class ClientBase:
    """One channel to convoyd. Use as ``async with Client() as c:`` or call ``close()``.

    Every call carries ``authorization: Bearer <token>`` when a token was found (see
    ``resolve_token``) and fails with a ``ConvoydClientError`` subclass. ``timeout`` bounds
    each unary call; ``watch_deliveries`` runs until cancelled.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        data_dir: str | Path | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        timeout: float | None = 30,
    ) -> None:
        self.target = resolve_target(target)
        self.token = resolve_token(token, data_dir)
        self.timeout = timeout
        self._tls = tls or root_certificates is not None or certificate_chain is not None
        self._credentials = (root_certificates, private_key, certificate_chain)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {self.token}"),) if self.token else ()
        )
        self._channel: grpc.aio.Channel | None = None
        self._stubs: _Stubs | None = None

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._stubs = self._channel, None, None
            await channel.close(None)

    def _open(self) -> _Stubs:
        # The channel is made lazily: grpc.aio binds it to the running event loop.
        if self._stubs is None:
            options = [("grpc.primary_user_agent", "convoyd-client")]
            if self._tls:
                root, key, chain = self._credentials
                creds = grpc.ssl_channel_credentials(root, key, chain)
                self._channel = grpc.aio.secure_channel(self.target, creds, options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options)
            self._stubs = _Stubs(self._channel)
        return self._stubs

    async def _unary(self, rpc: Callable[..., Awaitable[Any]], request: Any, _: type[R]) -> R:
        try:
            response = await rpc(request, metadata=self._metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        return cast(R, response)

    @staticmethod
    async def _pages(
        fetch: Callable[[str], Awaitable[R]], items: Callable[[R], Iterable[T]]
    ) -> AsyncIterator[T]:
        token = ""
        while True:
            page = await fetch(token)
            for item in items(page):
                yield item
            token = cast(str, getattr(page, "next_page_token", ""))
            if not token:
                return

    async def health(self, service: str = "") -> str:
        """The serving status name, e.g. "SERVING" or "NOT_SERVING"."""
        request = health_pb2.HealthCheckRequest(service=service)
        got = await self._unary(self._open().health.Check, request, health_pb2.HealthCheckResponse)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(got.status))
