"""DeliveryService calls, including the live WatchDeliveries stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TypeVar

import grpc
import grpc.aio

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from convoyd.client.base import ClientBase
from convoyd.client.config import timestamp_or_none
from convoyd.client.errors import error_from_rpc
from convoyd.v1 import (
    delivery_pb2,
)

R = TypeVar("R")
T = TypeVar("T")


class DeliveryCalls(ClientBase):
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
            created_after=timestamp_or_none(created_after),
            created_before=timestamp_or_none(created_before),
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
            created_after=timestamp_or_none(created_after),
            created_before=timestamp_or_none(created_before),
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
