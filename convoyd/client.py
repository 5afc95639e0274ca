"""Typed async client for convoyd's gRPC control plane, with gRPC errors mapped to exceptions."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2, health_pb2_grpc

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

DEFAULT_TARGET: Final = "127.0.0.1:7400"
DEFAULT_DATA_DIR: Final = "./convoyd-data"
TOKEN_FILE: Final = "admin.token"  # noqa: S105 - a file name, not a secret
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"

R = TypeVar("R")
T = TypeVar("T")


# --- errors ---------------------------------------------------------------------------------


class ConvoydClientError(Exception):
    """A call failed. ``message`` is the server's; ``field_violations`` name bad request fields."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        super().__init__(f"{code.name}: {message}")


class InvalidArgumentError(ConvoydClientError):
    """INVALID_ARGUMENT: the request is malformed; see ``field_violations``."""


class NotFoundError(ConvoydClientError):
    """NOT_FOUND."""


class AlreadyExistsError(ConvoydClientError):
    """ALREADY_EXISTS, e.g. an idempotency key reused with another payload."""


class FailedPreconditionError(ConvoydClientError):
    """FAILED_PRECONDITION: the resource's state does not allow the call."""


class UnauthenticatedError(ConvoydClientError):
    """UNAUTHENTICATED: no token, or a wrong one."""


class PermissionDeniedError(ConvoydClientError):
    """PERMISSION_DENIED."""


class ResourceExhaustedError(ConvoydClientError):
    """RESOURCE_EXHAUSTED: a limit is reached."""


class UnavailableError(ConvoydClientError):
    """UNAVAILABLE: the daemon is unreachable or shutting down; retry later."""


ERROR_CLASSES: Final[Mapping[grpc.StatusCode, type[ConvoydClientError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def error_from_rpc(exc: grpc.aio.AioRpcError) -> ConvoydClientError:
    """The exception for a failed call, with the BadRequest field violations the server sent."""
    code = exc.code()
    message = exc.details() or ""
    violations: list[tuple[str, str]] = []
    # grpc.aio's Metadata iterates as (key, value) pairs; grpc-stubs type it as the sync kind.
    trailing = cast(Iterable[tuple[str, str | bytes]], exc.trailing_metadata() or ())
    for key, value in trailing:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: S112 - a garbled detail must not hide the error itself
            continue
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    return ERROR_CLASSES.get(code, ConvoydClientError)(code, message, violations)


# --- conversions and configuration --------------------------------------------------------


def duration(seconds: float) -> duration_pb2.Duration:
    """A Duration of ``seconds`` (fractions kept to the nanosecond)."""
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("timestamps need an aware datetime (e.g. datetime.now(UTC))")
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def resolve_target(target: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """``target``, else ``CONVOYD_GRPC_LISTEN`` (a wildcard listen host becomes loopback)."""
    if target:
        return target
    listen = (os.environ if env is None else env).get("CONVOYD_GRPC_LISTEN", "") or DEFAULT_TARGET
    host, sep, port = listen.rpartition(":")
    if sep and host in ("0.0.0.0", "", "*"):  # noqa: S104 - recognising, not binding, a wildcard
        return f"127.0.0.1:{port}"
    if sep and host == "[::]":
        return f"[::1]:{port}"
    return listen


def resolve_token(
    token: str | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """``token``, else ``CONVOYD_TOKEN``, else ``<data_dir>/admin.token``; None when none is found.

    data_dir is the argument, else ``CONVOYD_DATA_DIR``, else ``./convoyd-data``.
    """
    environ = os.environ if env is None else env
    if token:
        return token
    if environ.get("CONVOYD_TOKEN"):
        return environ["CONVOYD_TOKEN"]
    directory = Path(data_dir or environ.get("CONVOYD_DATA_DIR") or DEFAULT_DATA_DIR)
    try:
        found = (directory / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return found or None


def event_request(
    *,
    event_type: str,
    data: Any,
    endpoint_ids: Sequence[str] = (),
    owner_id: str = "",
    idempotency_key: str = "",
    headers: Mapping[str, str] | None = None,
) -> event_pb2.CreateEventRequest:
    """A CreateEventRequest. ``data``: bytes and str are sent as they are (JSON text);
    anything else is encoded with ``json.dumps``."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return event_pb2.CreateEventRequest(
        endpoint_ids=list(endpoint_ids),
        owner_id=owner_id,
        event_type=event_type,
        data=payload,
        idempotency_key=idempotency_key,
        headers=dict(headers or {}),
    )


def _ts(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    return None if when is None else timestamp(when)


# --- the client -----------------------------------------------------------------------------


class _Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.endpoints = endpoint_pb2_grpc.EndpointServiceStub(channel)
        self.events = event_pb2_grpc.EventServiceStub(channel)
        self.deliveries = delivery_pb2_grpc.DeliveryServiceStub(channel)
        self.portal = portal_pb2_grpc.PortalServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


class Client:
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

    async def __aenter__(self) -> Client:
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

    # Endpoints

    async def create_endpoint(
        self, endpoint: endpoint_pb2.Endpoint, *, secret: str = ""
    ) -> endpoint_pb2.Endpoint:
        """Creates an endpoint; the answer holds the signing secret's value."""
        request = endpoint_pb2.CreateEndpointRequest(endpoint=endpoint, secret=secret)
        return await self._unary(
            self._open().endpoints.CreateEndpoint, request, endpoint_pb2.Endpoint
        )

    async def get_endpoint(self, endpoint_id: str) -> endpoint_pb2.Endpoint:
        request = endpoint_pb2.GetEndpointRequest(endpoint_id=endpoint_id)
        return await self._unary(self._open().endpoints.GetEndpoint, request, endpoint_pb2.Endpoint)

    async def list_endpoints(
        self,
        *,
        owner_id: str = "",
        status: endpoint_pb2.EndpointStatus = endpoint_pb2.ENDPOINT_STATUS_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
    ) -> endpoint_pb2.ListEndpointsResponse:
        request = endpoint_pb2.ListEndpointsRequest(
            owner_id=owner_id, status=status, page_size=page_size, page_token=page_token
        )
        rpc = self._open().endpoints.ListEndpoints
        return await self._unary(rpc, request, endpoint_pb2.ListEndpointsResponse)

    def iter_endpoints(
        self,
        *,
        owner_id: str = "",
        status: endpoint_pb2.EndpointStatus = endpoint_pb2.ENDPOINT_STATUS_UNSPECIFIED,
        page_size: int = 0,
    ) -> AsyncIterator[endpoint_pb2.Endpoint]:
        """Every matching endpoint, fetching pages as needed."""

        async def fetch(token: str) -> endpoint_pb2.ListEndpointsResponse:
            return await self.list_endpoints(
                owner_id=owner_id, status=status, page_size=page_size, page_token=token
            )

        return self._pages(fetch, lambda page: page.endpoints)

    async def update_endpoint(
        self, endpoint: endpoint_pb2.Endpoint, update_mask: Sequence[str]
    ) -> endpoint_pb2.Endpoint:
        """Replaces the fields of ``endpoint`` (its id set) named in ``update_mask``."""
        request = endpoint_pb2.UpdateEndpointRequest(
            endpoint=endpoint, update_mask=field_mask_pb2.FieldMask(paths=list(update_mask))
        )
        return await self._unary(
            self._open().endpoints.UpdateEndpoint, request, endpoint_pb2.Endpoint
        )

    async def delete_endpoint(self, endpoint_id: str) -> None:
        request = endpoint_pb2.DeleteEndpointRequest(endpoint_id=endpoint_id)
        rpc = self._open().endpoints.DeleteEndpoint
        await self._unary(rpc, request, endpoint_pb2.DeleteEndpointResponse)

    async def pause_endpoint(self, endpoint_id: str, *, reason: str = "") -> endpoint_pb2.Endpoint:
        request = endpoint_pb2.PauseEndpointRequest(endpoint_id=endpoint_id, reason=reason)
        return await self._unary(
            self._open().endpoints.PauseEndpoint, request, endpoint_pb2.Endpoint
        )

    async def resume_endpoint(self, endpoint_id: str) -> endpoint_pb2.Endpoint:
        request = endpoint_pb2.ResumeEndpointRequest(endpoint_id=endpoint_id)
        return await self._unary(
            self._open().endpoints.ResumeEndpoint, request, endpoint_pb2.Endpoint
        )

    async def activate_endpoint(
        self, endpoint_id: str, *, reason: str = ""
    ) -> endpoint_pb2.Endpoint:
        request = endpoint_pb2.ActivateEndpointRequest(endpoint_id=endpoint_id, reason=reason)
        rpc = self._open().endpoints.ActivateEndpoint
        return await self._unary(rpc, request, endpoint_pb2.Endpoint)

    async def rotate_endpoint_secret(
        self, endpoint_id: str, *, secret: str = "", old_secret_lifetime: float | None = None
    ) -> endpoint_pb2.RotateEndpointSecretResponse:
        """Adds a secret; the old ones sign for ``old_secret_lifetime`` seconds (None: server's)."""
        request = endpoint_pb2.RotateEndpointSecretRequest(endpoint_id=endpoint_id, secret=secret)
        if old_secret_lifetime is not None:
            request.old_secret_lifetime.CopyFrom(duration(old_secret_lifetime))
        rpc = self._open().endpoints.RotateEndpointSecret
        return await self._unary(rpc, request, endpoint_pb2.RotateEndpointSecretResponse)

    async def get_endpoint_secret(self, endpoint_id: str) -> endpoint_pb2.GetEndpointSecretResponse:
        request = endpoint_pb2.GetEndpointSecretRequest(endpoint_id=endpoint_id)
        rpc = self._open().endpoints.GetEndpointSecret
        return await self._unary(rpc, request, endpoint_pb2.GetEndpointSecretResponse)

    # Events

    async def create_event(
        self,
        *,
        event_type: str,
        data: Any,
        endpoint_ids: Sequence[str] = (),
        owner_id: str = "",
        idempotency_key: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> event_pb2.Event:
        """Accepts one event (see ``event_request`` for how ``data`` is encoded)."""
        request = event_request(
            event_type=event_type,
            data=data,
            endpoint_ids=endpoint_ids,
            owner_id=owner_id,
            idempotency_key=idempotency_key,
            headers=headers,
        )
        return await self._unary(self._open().events.CreateEvent, request, event_pb2.Event)

    async def batch_create_events(
        self, requests: Sequence[event_pb2.CreateEventRequest]
    ) -> event_pb2.BatchCreateEventsResponse:
        """Accepts all the events or none (build them with ``event_request``)."""
        request = event_pb2.BatchCreateEventsRequest(requests=list(requests))
        rpc = self._open().events.BatchCreateEvents
        return await self._unary(rpc, request, event_pb2.BatchCreateEventsResponse)

    async def get_event(self, event_id: str) -> event_pb2.Event:
        request = event_pb2.GetEventRequest(event_id=event_id)
        return await self._unary(self._open().events.GetEvent, request, event_pb2.Event)

    async def list_events(
        self,
        *,
        event_type: str = "",
        owner_id: str = "",
        endpoint_id: str = "",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> event_pb2.ListEventsResponse:
        request = event_pb2.ListEventsRequest(
            event_type=event_type,
            owner_id=owner_id,
            endpoint_id=endpoint_id,
            created_after=_ts(created_after),
            created_before=_ts(created_before),
            page_size=page_size,
            page_token=page_token,
        )
        rpc = self._open().events.ListEvents
        return await self._unary(rpc, request, event_pb2.ListEventsResponse)

    def iter_events(
        self,
        *,
        event_type: str = "",
        owner_id: str = "",
        endpoint_id: str = "",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
    ) -> AsyncIterator[event_pb2.Event]:
        """Every matching event, fetching pages as needed."""

        async def fetch(token: str) -> event_pb2.ListEventsResponse:
            return await self.list_events(
                event_type=event_type,
                owner_id=owner_id,
                endpoint_id=endpoint_id,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
                page_token=token,
            )

        return self._pages(fetch, lambda page: page.events)

    # Deliveries

    async def get_delivery(self, delivery_id: str) -> delivery_pb2.Delivery:
        request = delivery_pb2.GetDeliveryRequest(delivery_id=delivery_id)
        return await self._unary(
            self._open().deliveries.GetDelivery, request, delivery_pb2.Delivery
        )

    async def list_deliveries(
        self,
        *,
        event_id: str = "",
        endpoint_id: str = "",
        owner_id: str = "",
        statuses: Sequence[delivery_pb2.DeliveryStatus] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> delivery_pb2.ListDeliveriesResponse:
        request = delivery_pb2.ListDeliveriesRequest(
            event_id=event_id,
            endpoint_id=endpoint_id,
            owner_id=owner_id,
            statuses=list(statuses),
            created_after=_ts(created_after),
            created_before=_ts(created_before),
            page_size=page_size,
            page_token=page_token,
        )
        rpc = self._open().deliveries.ListDeliveries
        return await self._unary(rpc, request, delivery_pb2.ListDeliveriesResponse)

    def iter_deliveries(
        self,
        *,
        event_id: str = "",
        endpoint_id: str = "",
        owner_id: str = "",
        statuses: Sequence[delivery_pb2.DeliveryStatus] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
    ) -> AsyncIterator[delivery_pb2.Delivery]:
        """Every matching delivery, fetching pages as needed."""

        async def fetch(token: str) -> delivery_pb2.ListDeliveriesResponse:
            return await self.list_deliveries(
                event_id=event_id,
                endpoint_id=endpoint_id,
                owner_id=owner_id,
                statuses=statuses,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
                page_token=token,
            )

        return self._pages(fetch, lambda page: page.deliveries)

    async def list_delivery_attempts(
        self, delivery_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> delivery_pb2.ListDeliveryAttemptsResponse:
        request = delivery_pb2.ListDeliveryAttemptsRequest(
            delivery_id=delivery_id, page_size=page_size, page_token=page_token
        )
        rpc = self._open().deliveries.ListDeliveryAttempts
        return await self._unary(rpc, request, delivery_pb2.ListDeliveryAttemptsResponse)

    def iter_delivery_attempts(
        self, delivery_id: str, *, page_size: int = 0
    ) -> AsyncIterator[delivery_pb2.DeliveryAttempt]:
        async def fetch(token: str) -> delivery_pb2.ListDeliveryAttemptsResponse:
            return await self.list_delivery_attempts(
                delivery_id, page_size=page_size, page_token=token
            )

        return self._pages(fetch, lambda page: page.attempts)

    async def retry_delivery(self, delivery_id: str) -> delivery_pb2.Delivery:
        request = delivery_pb2.RetryDeliveryRequest(delivery_id=delivery_id)
        rpc = self._open().deliveries.RetryDelivery
        return await self._unary(rpc, request, delivery_pb2.Delivery)

    async def batch_retry_deliveries(
        self,
        *,
        endpoint_id: str = "",
        owner_id: str = "",
        event_id: str = "",
        statuses: Sequence[delivery_pb2.DeliveryStatus] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        dry_run: bool = False,
    ) -> delivery_pb2.BatchRetryDeliveriesResponse:
        request = delivery_pb2.BatchRetryDeliveriesRequest(
            endpoint_id=endpoint_id,
            owner_id=owner_id,
            event_id=event_id,
            statuses=list(statuses),
            created_after=_ts(created_after),
            created_before=_ts(created_before),
            dry_run=dry_run,
        )
        rpc = self._open().deliveries.BatchRetryDeliveries
        return await self._unary(rpc, request, delivery_pb2.BatchRetryDeliveriesResponse)

    async def force_resend_delivery(self, delivery_id: str) -> delivery_pb2.Delivery:
        request = delivery_pb2.ForceResendDeliveryRequest(delivery_id=delivery_id)
        rpc = self._open().deliveries.ForceResendDelivery
        return await self._unary(rpc, request, delivery_pb2.Delivery)

    async def watch_deliveries(
        self,
        *,
        endpoint_id: str = "",
        owner_id: str = "",
        statuses: Sequence[delivery_pb2.DeliveryStatus] = (),
    ) -> AsyncIterator[delivery_pb2.WatchDeliveriesResponse]:
        """Delivery and endpoint status changes as they happen, until the caller stops."""
        request = delivery_pb2.WatchDeliveriesRequest(
            endpoint_id=endpoint_id, owner_id=owner_id, statuses=list(statuses)
        )
        call = self._open().deliveries.WatchDeliveries(request, metadata=self._metadata)
        try:
            async for change in call:
                yield change
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    # Portal

    async def create_portal_link(
        self,
        *,
        name: str = "",
        owner_id: str = "",
        endpoint_ids: Sequence[str] = (),
        all_owners: bool = False,
        can_manage_endpoints: bool = False,
        kind: portal_pb2.PortalLinkKind = portal_pb2.PORTAL_LINK_KIND_UNSPECIFIED,
        lifetime: float | None = None,
    ) -> portal_pb2.PortalLink:
        """Mints a link; its ``url`` (which holds the token) is shown only in this answer."""
        request = portal_pb2.CreatePortalLinkRequest(
            name=name,
            owner_id=owner_id,
            endpoint_ids=list(endpoint_ids),
            all_owners=all_owners,
            can_manage_endpoints=can_manage_endpoints,
            kind=kind,
            lifetime=None if lifetime is None else duration(lifetime),
        )
        rpc = self._open().portal.CreatePortalLink
        return await self._unary(rpc, request, portal_pb2.PortalLink)

    async def get_portal_link(self, portal_link_id: str) -> portal_pb2.PortalLink:
        request = portal_pb2.GetPortalLinkRequest(portal_link_id=portal_link_id)
        return await self._unary(self._open().portal.GetPortalLink, request, portal_pb2.PortalLink)

    async def list_portal_links(
        self,
        *,
        owner_id: str = "",
        show_inactive: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> portal_pb2.ListPortalLinksResponse:
        request = portal_pb2.ListPortalLinksRequest(
            owner_id=owner_id,
            show_inactive=show_inactive,
            page_size=page_size,
            page_token=page_token,
        )
        rpc = self._open().portal.ListPortalLinks
        return await self._unary(rpc, request, portal_pb2.ListPortalLinksResponse)

    def iter_portal_links(
        self, *, owner_id: str = "", show_inactive: bool = False, page_size: int = 0
    ) -> AsyncIterator[portal_pb2.PortalLink]:
        async def fetch(token: str) -> portal_pb2.ListPortalLinksResponse:
            return await self.list_portal_links(
                owner_id=owner_id,
                show_inactive=show_inactive,
                page_size=page_size,
                page_token=token,
            )

        return self._pages(fetch, lambda page: page.portal_links)

    async def revoke_portal_link(self, portal_link_id: str) -> portal_pb2.PortalLink:
        request = portal_pb2.RevokePortalLinkRequest(portal_link_id=portal_link_id)
        rpc = self._open().portal.RevokePortalLink
        return await self._unary(rpc, request, portal_pb2.PortalLink)
