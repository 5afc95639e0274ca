import datetime

from convoyd.v1 import common_pb2 as _common_pb2
from convoyd.v1 import endpoint_pb2 as _endpoint_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SCHEDULED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_PROCESSING: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SUCCESS: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_RETRY: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILURE: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DISCARDED: _ClassVar[DeliveryStatus]

class AttemptResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_RESULT_UNSPECIFIED: _ClassVar[AttemptResult]
    ATTEMPT_RESULT_SUCCESS: _ClassVar[AttemptResult]
    ATTEMPT_RESULT_HTTP_ERROR: _ClassVar[AttemptResult]
    ATTEMPT_RESULT_NETWORK_ERROR: _ClassVar[AttemptResult]
    ATTEMPT_RESULT_TIMEOUT: _ClassVar[AttemptResult]
    ATTEMPT_RESULT_BLOCKED: _ClassVar[AttemptResult]
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_SCHEDULED: DeliveryStatus
DELIVERY_STATUS_PROCESSING: DeliveryStatus
DELIVERY_STATUS_SUCCESS: DeliveryStatus
DELIVERY_STATUS_RETRY: DeliveryStatus
DELIVERY_STATUS_FAILURE: DeliveryStatus
DELIVERY_STATUS_DISCARDED: DeliveryStatus
ATTEMPT_RESULT_UNSPECIFIED: AttemptResult
ATTEMPT_RESULT_SUCCESS: AttemptResult
ATTEMPT_RESULT_HTTP_ERROR: AttemptResult
ATTEMPT_RESULT_NETWORK_ERROR: AttemptResult
ATTEMPT_RESULT_TIMEOUT: AttemptResult
ATTEMPT_RESULT_BLOCKED: AttemptResult

class Delivery(_message.Message):
    __slots__ = ("id", "event_id", "endpoint_id", "owner_id", "event_type", "status", "status_reason", "attempt_count", "next_attempt_at", "last_attempt_at", "last_http_status", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    event_id: str
    endpoint_id: str
    owner_id: str
    event_type: str
    status: DeliveryStatus
    status_reason: str
    attempt_count: int
    next_attempt_at: _timestamp_pb2.Timestamp
    last_attempt_at: _timestamp_pb2.Timestamp
    last_http_status: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., event_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., event_type: _Optional[str] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., status_reason: _Optional[str] = ..., attempt_count: _Optional[int] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_http_status: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("id", "delivery_id", "number", "result", "started_at", "duration", "request_url", "request_headers", "response_status", "response_headers", "response_body", "response_body_truncated", "error", "remote_address")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    delivery_id: str
    number: int
    result: AttemptResult
    started_at: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    request_url: str
    request_headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    response_status: int
    response_headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    response_body: bytes
    response_body_truncated: bool
    error: str
    remote_address: str
    def __init__(self, id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., number: _Optional[int] = ..., result: _Optional[_Union[AttemptResult, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_url: _Optional[str] = ..., request_headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., response_status: _Optional[int] = ..., response_headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., response_body: _Optional[bytes] = ..., response_body_truncated: _Optional[bool] = ..., error: _Optional[str] = ..., remote_address: _Optional[str] = ...) -> None: ...

class GetDeliveryRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ("event_id", "endpoint_id", "owner_id", "statuses", "created_after", "created_before", "page_size", "page_token")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    endpoint_id: str
    owner_id: str
    statuses: _containers.RepeatedScalarFieldContainer[DeliveryStatus]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, event_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[DeliveryStatus, str]]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListDeliveryAttemptsRequest(_message.Message):
    __slots__ = ("delivery_id", "page_size", "page_token")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    page_size: int
    page_token: str
    def __init__(self, delivery_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeliveryAttemptsResponse(_message.Message):
    __slots__ = ("attempts", "next_page_token")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[DeliveryAttempt]
    next_page_token: str
    def __init__(self, attempts: _Optional[_Iterable[_Union[DeliveryAttempt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RetryDeliveryRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class BatchRetryDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id", "owner_id", "event_id", "statuses", "created_after", "created_before", "dry_run")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    owner_id: str
    event_id: str
    statuses: _containers.RepeatedScalarFieldContainer[DeliveryStatus]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    dry_run: bool
    def __init__(self, endpoint_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., event_id: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[DeliveryStatus, str]]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class BatchRetryDeliveriesResponse(_message.Message):
    __slots__ = ("queued_count",)
    QUEUED_COUNT_FIELD_NUMBER: _ClassVar[int]
    queued_count: int
    def __init__(self, queued_count: _Optional[int] = ...) -> None: ...

class ForceResendDeliveryRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class WatchDeliveriesRequest(_message.Message):
    __slots__ = ("endpoint_id", "owner_id", "statuses")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    owner_id: str
    statuses: _containers.RepeatedScalarFieldContainer[DeliveryStatus]
    def __init__(self, endpoint_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[DeliveryStatus, str]]] = ...) -> None: ...

class EndpointStatusChange(_message.Message):
    __slots__ = ("endpoint_id", "owner_id", "previous_status", "status", "reason", "changed_at")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    owner_id: str
    previous_status: _endpoint_pb2.EndpointStatus
    status: _endpoint_pb2.EndpointStatus
    reason: str
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, endpoint_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., previous_status: _Optional[_Union[_endpoint_pb2.EndpointStatus, str]] = ..., status: _Optional[_Union[_endpoint_pb2.EndpointStatus, str]] = ..., reason: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchDeliveriesResponse(_message.Message):
    __slots__ = ("delivery", "endpoint_status_change")
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_STATUS_CHANGE_FIELD_NUMBER: _ClassVar[int]
    delivery: Delivery
    endpoint_status_change: EndpointStatusChange
    def __init__(self, delivery: _Optional[_Union[Delivery, _Mapping]] = ..., endpoint_status_change: _Optional[_Union[EndpointStatusChange, _Mapping]] = ...) -> None: ...
