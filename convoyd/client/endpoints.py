"""EndpointService calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from google.protobuf import field_mask_pb2

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from convoyd.client.base import ClientBase
from convoyd.client.config import duration
from convoyd.v1 import (
    endpoint_pb2,
)

R = TypeVar("R")
T = TypeVar("T")


class EndpointCalls(ClientBase):
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
