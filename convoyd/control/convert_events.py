"""Events, deliveries and attempts: protobuf messages to domain types and back."""

from __future__ import annotations

from collections.abc import Iterable

from convoyd.control.convert import STATUS_TO_PB, duration, timestamp
from convoyd.core.model import (
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    EndpointStatusChange,
    Event,
    EventInput,
)
from convoyd.core.request import redact_map, redact_pairs
from convoyd.errors import ValidationError
from convoyd.v1 import common_pb2
from convoyd.v1 import delivery_pb2 as dpb
from convoyd.v1 import event_pb2 as epb

DELIVERY_STATUS_TO_PB = {
    DeliveryStatus.SCHEDULED: dpb.DELIVERY_STATUS_SCHEDULED,
    DeliveryStatus.PROCESSING: dpb.DELIVERY_STATUS_PROCESSING,
    DeliveryStatus.SUCCESS: dpb.DELIVERY_STATUS_SUCCESS,
    DeliveryStatus.RETRY: dpb.DELIVERY_STATUS_RETRY,
    DeliveryStatus.FAILURE: dpb.DELIVERY_STATUS_FAILURE,
    DeliveryStatus.DISCARDED: dpb.DELIVERY_STATUS_DISCARDED,
}
ATTEMPT_RESULT_TO_PB = {
    AttemptResult.SUCCESS: dpb.ATTEMPT_RESULT_SUCCESS,
    AttemptResult.HTTP_ERROR: dpb.ATTEMPT_RESULT_HTTP_ERROR,
    AttemptResult.NETWORK_ERROR: dpb.ATTEMPT_RESULT_NETWORK_ERROR,
    AttemptResult.TIMEOUT: dpb.ATTEMPT_RESULT_TIMEOUT,
    AttemptResult.BLOCKED: dpb.ATTEMPT_RESULT_BLOCKED,
}


def event_input_from_pb(msg: epb.CreateEventRequest) -> EventInput:
    return EventInput(
        endpoint_ids=tuple(msg.endpoint_ids),
        owner_id=msg.owner_id,
        event_type=msg.event_type,
        data=msg.data,
        idempotency_key=msg.idempotency_key,
        headers=dict(msg.headers),
    )


def event_to_pb(event: Event) -> epb.Event:
    return epb.Event(
        id=event.id,
        event_type=event.event_type,
        data=event.data,
        idempotency_key=event.idempotency_key,
        endpoint_ids=list(event.endpoint_ids),
        owner_id=event.owner_id,
        headers=redact_map(event.headers),
        created_at=timestamp(event.created_at),
        delivery_count=event.delivery_count,
    )


def delivery_statuses(values: Iterable[int], field: str = "statuses") -> tuple[DeliveryStatus, ...]:
    by_value = {int(v): k for k, v in DELIVERY_STATUS_TO_PB.items()}
    out = []
    for i, value in enumerate(values):
        if value not in by_value:
            raise ValidationError.single(f"{field}[{i}]", f"unknown value {value}")
        out.append(by_value[value])
    return tuple(out)


def delivery_to_pb(d: Delivery) -> dpb.Delivery:
    msg = dpb.Delivery(
        id=d.id,
        event_id=d.event_id,
        endpoint_id=d.endpoint_id,
        owner_id=d.owner_id,
        event_type=d.event_type,
        status=DELIVERY_STATUS_TO_PB[d.status],
        status_reason=d.status_reason,
        attempt_count=d.attempt_count,
        last_http_status=d.last_http_status,
        created_at=timestamp(d.created_at),
        updated_at=timestamp(d.updated_at),
    )
    if d.next_attempt_at is not None:
        msg.next_attempt_at.CopyFrom(timestamp(d.next_attempt_at))
    if d.last_attempt_at is not None:
        msg.last_attempt_at.CopyFrom(timestamp(d.last_attempt_at))
    return msg


def _headers_pb(pairs: Iterable[tuple[str, str]]) -> list[common_pb2.Header]:
    # Request headers were redacted when recorded; the receiver's (Set-Cookie...) are now.
    return [common_pb2.Header(name=n, value=v) for n, v in redact_pairs(pairs)]


def attempt_to_pb(a: Attempt) -> dpb.DeliveryAttempt:
    return dpb.DeliveryAttempt(
        id=a.id,
        delivery_id=a.delivery_id,
        number=a.number,
        result=ATTEMPT_RESULT_TO_PB[a.result],
        started_at=timestamp(a.started_at),
        duration=duration(a.duration),
        request_url=a.request_url,
        request_headers=_headers_pb(a.request_headers),
        response_status=a.response_status,
        response_headers=_headers_pb(a.response_headers),
        response_body=a.response_body,
        response_body_truncated=a.response_body_truncated,
        error=a.error,
        remote_address=a.remote_address,
    )


def status_change_to_pb(change: EndpointStatusChange) -> dpb.EndpointStatusChange:
    return dpb.EndpointStatusChange(
        endpoint_id=change.endpoint_id,
        owner_id=change.owner_id,
        previous_status=STATUS_TO_PB[change.previous],
        status=STATUS_TO_PB[change.status],
        reason=change.reason,
        changed_at=timestamp(change.changed_at),
    )
