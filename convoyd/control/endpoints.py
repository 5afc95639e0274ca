"""EndpointService: the gRPC face of endpoint management."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convoyd.control import convert
from convoyd.control.status import handles_errors
from convoyd.core.model import BreakerStatus, Endpoint
from convoyd.core.states import Trigger
from convoyd.core.validation import require_id
from convoyd.errors import ValidationError
from convoyd.service.endpoints import EndpointManager
from convoyd.v1 import endpoint_pb2 as pb
from convoyd.v1 import endpoint_pb2_grpc

# grpc ships no types: the servicer context is untyped.
Context = Any


class EndpointService(endpoint_pb2_grpc.EndpointServiceServicer):
    def __init__(
        self,
        manager: EndpointManager,
        clock: Callable[[], float],
        breaker_status: Callable[[str], BreakerStatus | None] = lambda _: None,
    ) -> None:
        self._manager = manager
        self._clock = clock
        self._breaker_status = breaker_status

    async def _out(self, endpoint: Endpoint, *, with_secret_values: bool = False) -> pb.Endpoint:
        return convert.endpoint_to_pb(
            endpoint,
            now=self._clock(),
            with_secret_values=with_secret_values,
            breaker=self._breaker_status(endpoint.id),
            fifo=await self._manager.fifo_queue(endpoint),
            warnings=self._manager.warnings(endpoint),
        )

    @handles_errors
    async def CreateEndpoint(
        self, request: pb.CreateEndpointRequest, context: Context
    ) -> pb.Endpoint:
        if not request.HasField("endpoint"):
            raise ValidationError.single("endpoint", "is required")
        spec = convert.spec_from_pb(request.endpoint)
        endpoint = await self._manager.create(spec, request.secret)
        return await self._out(endpoint, with_secret_values=True)

    @handles_errors
    async def GetEndpoint(self, request: pb.GetEndpointRequest, context: Context) -> pb.Endpoint:
        return await self._out(await self._manager.get(request.endpoint_id))

    @handles_errors
    async def ListEndpoints(
        self, request: pb.ListEndpointsRequest, context: Context
    ) -> pb.ListEndpointsResponse:
        page = await self._manager.list(
            owner_id=request.owner_id,
            status=convert.optional_status(request.status),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        # One store read per FIFO endpoint on the page, for its queue (a page is at most 1,000;
        # concurrent endpoints cost nothing).
        return pb.ListEndpointsResponse(
            endpoints=[await self._out(e) for e in page.items], next_page_token=page.next_token
        )

    @handles_errors
    async def UpdateEndpoint(
        self, request: pb.UpdateEndpointRequest, context: Context
    ) -> pb.Endpoint:
        require_id("ep", request.endpoint.id, "endpoint.id")
        changes = convert.changes_from_pb(request.endpoint, list(request.update_mask.paths))
        endpoint = await self._manager.update(request.endpoint.id, changes, id_field="endpoint.id")
        return await self._out(endpoint)

    @handles_errors
    async def DeleteEndpoint(
        self, request: pb.DeleteEndpointRequest, context: Context
    ) -> pb.DeleteEndpointResponse:
        await self._manager.delete(request.endpoint_id)
        return pb.DeleteEndpointResponse()

    @handles_errors
    async def PauseEndpoint(
        self, request: pb.PauseEndpointRequest, context: Context
    ) -> pb.Endpoint:
        endpoint = await self._manager.change_status(
            request.endpoint_id, Trigger.PAUSE, request.reason or "paused by the API"
        )
        return await self._out(endpoint)

    @handles_errors
    async def ResumeEndpoint(
        self, request: pb.ResumeEndpointRequest, context: Context
    ) -> pb.Endpoint:
        endpoint = await self._manager.change_status(
            request.endpoint_id, Trigger.RESUME, "resumed by the API"
        )
        return await self._out(endpoint)

    @handles_errors
    async def ActivateEndpoint(
        self, request: pb.ActivateEndpointRequest, context: Context
    ) -> pb.Endpoint:
        endpoint = await self._manager.change_status(
            request.endpoint_id, Trigger.ACTIVATE, request.reason or "activated by the API"
        )
        return await self._out(endpoint)

    @handles_errors
    async def RotateEndpointSecret(
        self, request: pb.RotateEndpointSecretRequest, context: Context
    ) -> pb.RotateEndpointSecretResponse:
        lifetime = None
        if request.HasField("old_secret_lifetime"):
            lifetime = convert.duration_seconds(request.old_secret_lifetime, "old_secret_lifetime")
        endpoint, secret = await self._manager.rotate_secret(
            request.endpoint_id, secret=request.secret, old_secret_lifetime=lifetime
        )
        return pb.RotateEndpointSecretResponse(
            endpoint=await self._out(endpoint), secret=convert.secret_to_pb(secret, with_value=True)
        )

    @handles_errors
    async def GetEndpointSecret(
        self, request: pb.GetEndpointSecretRequest, context: Context
    ) -> pb.GetEndpointSecretResponse:
        secrets = await self._manager.live_secrets(request.endpoint_id)
        return pb.GetEndpointSecretResponse(
            secrets=[convert.secret_to_pb(s, with_value=True) for s in secrets]
        )
