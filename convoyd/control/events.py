"""EventService: the gRPC face of ingest."""

from __future__ import annotations

from typing import Any

from convoyd.control import convert, convert_events
from convoyd.control.status import handles_errors
from convoyd.core import tracecontext
from convoyd.service.events import EventManager
from convoyd.store.base import EventQuery
from convoyd.v1 import event_pb2 as pb
from convoyd.v1 import event_pb2_grpc

Context = Any  # grpc ships no types for the servicer context


class EventService(event_pb2_grpc.EventServiceServicer):
    def __init__(self, manager: EventManager) -> None:
        self._manager = manager

    def _trace_context(self, context: Context) -> tuple[tracecontext.TraceParent | None, str]:
        """The caller's W3C trace context (metadata traceparent, tracestate); read only while
        tracing is on."""
        if not self._manager.tracing:
            return None, ""
        return tracecontext.incoming(context.invocation_metadata() or ())

    @handles_errors
    async def CreateEvent(self, request: pb.CreateEventRequest, context: Context) -> pb.Event:
        parent, state = self._trace_context(context)
        (event,) = await self._manager.create(
            [convert_events.event_input_from_pb(request)],
            method="CreateEvent",
            parent=parent,
            tracestate=state,
        )
        return convert_events.event_to_pb(event)

    @handles_errors
    async def BatchCreateEvents(
        self, request: pb.BatchCreateEventsRequest, context: Context
    ) -> pb.BatchCreateEventsResponse:
        inputs = [convert_events.event_input_from_pb(r) for r in request.requests]
        parent, state = self._trace_context(context)
        events = await self._manager.create(
            inputs, batch=True, method="BatchCreateEvents", parent=parent, tracestate=state
        )
        return pb.BatchCreateEventsResponse(events=[convert_events.event_to_pb(e) for e in events])

    @handles_errors
    async def GetEvent(self, request: pb.GetEventRequest, context: Context) -> pb.Event:
        return convert_events.event_to_pb(await self._manager.get(request.event_id))

    @handles_errors
    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Context
    ) -> pb.ListEventsResponse:
        query = EventQuery(
            event_type=request.event_type,
            owner_id=request.owner_id,
            endpoint_id=request.endpoint_id,
            created_after=convert.optional_time(request, "created_after"),
            created_before=convert.optional_time(request, "created_before"),
        )
        page = await self._manager.list(
            query, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListEventsResponse(
            events=[convert_events.event_to_pb(e) for e in page.items],
            next_page_token=page.next_token,
        )
