"""EventService calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from convoyd.client.base import ClientBase
from convoyd.client.config import event_request, timestamp_or_none
from convoyd.v1 import (
    event_pb2,
)

R = TypeVar("R")
T = TypeVar("T")


class EventCalls(ClientBase):
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
            created_after=timestamp_or_none(created_after),
            created_before=timestamp_or_none(created_before),
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
