"""DeliveryService: the gRPC face of deliveries, their attempts, retries and the live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from convoyd.control import convert, convert_events
from convoyd.control.status import handles_errors, handles_stream_errors
from convoyd.core.model import Delivery
from convoyd.service.deliveries import DeliveryManager
from convoyd.store.base import DeliveryQuery
from convoyd.v1 import delivery_pb2 as pb
from convoyd.v1 import delivery_pb2_grpc

Context = Any  # grpc ships no types for the servicer context


def _query(request: Any) -> DeliveryQuery:
    return DeliveryQuery(
        event_id=request.event_id,
        endpoint_ids=(request.endpoint_id,) if request.endpoint_id else (),
        owner_id=request.owner_id,
        statuses=convert_events.delivery_statuses(request.statuses),
        created_after=convert.optional_time(request, "created_after"),
        created_before=convert.optional_time(request, "created_before"),
    )


class DeliveryService(delivery_pb2_grpc.DeliveryServiceServicer):
    def __init__(self, manager: DeliveryManager) -> None:
        self._manager = manager

    @handles_errors
    async def GetDelivery(self, request: pb.GetDeliveryRequest, context: Context) -> pb.Delivery:
        return convert_events.delivery_to_pb(await self._manager.get(request.delivery_id))

    @handles_errors
    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: Context
    ) -> pb.ListDeliveriesResponse:
        page = await self._manager.list(
            _query(request), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListDeliveriesResponse(
            deliveries=[convert_events.delivery_to_pb(d) for d in page.items],
            next_page_token=page.next_token,
        )

    @handles_errors
    async def ListDeliveryAttempts(
        self, request: pb.ListDeliveryAttemptsRequest, context: Context
    ) -> pb.ListDeliveryAttemptsResponse:
        page = await self._manager.attempts(
            request.delivery_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListDeliveryAttemptsResponse(
            attempts=[convert_events.attempt_to_pb(a) for a in page.items],
            next_page_token=page.next_token,
        )

    @handles_errors
    async def RetryDelivery(
        self, request: pb.RetryDeliveryRequest, context: Context
    ) -> pb.Delivery:
        return convert_events.delivery_to_pb(await self._manager.retry(request.delivery_id))

    @handles_errors
    async def BatchRetryDeliveries(
        self, request: pb.BatchRetryDeliveriesRequest, context: Context
    ) -> pb.BatchRetryDeliveriesResponse:
        count = await self._manager.batch_retry(_query(request), dry_run=request.dry_run)
        return pb.BatchRetryDeliveriesResponse(queued_count=count)

    @handles_errors
    async def ForceResendDelivery(
        self, request: pb.ForceResendDeliveryRequest, context: Context
    ) -> pb.Delivery:
        return convert_events.delivery_to_pb(await self._manager.force_resend(request.delivery_id))

    @handles_stream_errors
    async def WatchDeliveries(
        self, request: pb.WatchDeliveriesRequest, context: Context
    ) -> AsyncIterator[pb.WatchDeliveriesResponse]:
        changes = self._manager.watch(
            endpoint_id=request.endpoint_id,
            owner_id=request.owner_id,
            statuses=frozenset(convert_events.delivery_statuses(request.statuses)),
        )
        async for change in changes:
            if isinstance(change, Delivery):
                yield pb.WatchDeliveriesResponse(delivery=convert_events.delivery_to_pb(change))
            else:
                yield pb.WatchDeliveriesResponse(
                    endpoint_status_change=convert_events.status_change_to_pb(change)
                )
