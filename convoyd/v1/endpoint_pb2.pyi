import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_STATUS_UNSPECIFIED: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_ACTIVE: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_INACTIVE: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_PAUSED: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_PENDING: _ClassVar[EndpointStatus]

class SignatureScheme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_SCHEME_UNSPECIFIED: _ClassVar[SignatureScheme]
    SIGNATURE_SCHEME_STANDARD: _ClassVar[SignatureScheme]
    SIGNATURE_SCHEME_CONVOY_SIMPLE: _ClassVar[SignatureScheme]
    SIGNATURE_SCHEME_CONVOY_ADVANCED: _ClassVar[SignatureScheme]

class SignatureHash(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_HASH_UNSPECIFIED: _ClassVar[SignatureHash]
    SIGNATURE_HASH_SHA256: _ClassVar[SignatureHash]
    SIGNATURE_HASH_SHA512: _ClassVar[SignatureHash]

class SignatureEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_ENCODING_UNSPECIFIED: _ClassVar[SignatureEncoding]
    SIGNATURE_ENCODING_HEX: _ClassVar[SignatureEncoding]
    SIGNATURE_ENCODING_BASE64: _ClassVar[SignatureEncoding]

class Ordering(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDERING_UNSPECIFIED: _ClassVar[Ordering]
    ORDERING_FIFO: _ClassVar[Ordering]

class CircuitBreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CIRCUIT_BREAKER_STATE_UNSPECIFIED: _ClassVar[CircuitBreakerState]
    CIRCUIT_BREAKER_STATE_CLOSED: _ClassVar[CircuitBreakerState]
    CIRCUIT_BREAKER_STATE_OPEN: _ClassVar[CircuitBreakerState]
    CIRCUIT_BREAKER_STATE_HALF_OPEN: _ClassVar[CircuitBreakerState]
ENDPOINT_STATUS_UNSPECIFIED: EndpointStatus
ENDPOINT_STATUS_ACTIVE: EndpointStatus
ENDPOINT_STATUS_INACTIVE: EndpointStatus
ENDPOINT_STATUS_PAUSED: EndpointStatus
ENDPOINT_STATUS_PENDING: EndpointStatus
SIGNATURE_SCHEME_UNSPECIFIED: SignatureScheme
SIGNATURE_SCHEME_STANDARD: SignatureScheme
SIGNATURE_SCHEME_CONVOY_SIMPLE: SignatureScheme
SIGNATURE_SCHEME_CONVOY_ADVANCED: SignatureScheme
SIGNATURE_HASH_UNSPECIFIED: SignatureHash
SIGNATURE_HASH_SHA256: SignatureHash
SIGNATURE_HASH_SHA512: SignatureHash
SIGNATURE_ENCODING_UNSPECIFIED: SignatureEncoding
SIGNATURE_ENCODING_HEX: SignatureEncoding
SIGNATURE_ENCODING_BASE64: SignatureEncoding
ORDERING_UNSPECIFIED: Ordering
ORDERING_FIFO: Ordering
CIRCUIT_BREAKER_STATE_UNSPECIFIED: CircuitBreakerState
CIRCUIT_BREAKER_STATE_CLOSED: CircuitBreakerState
CIRCUIT_BREAKER_STATE_OPEN: CircuitBreakerState
CIRCUIT_BREAKER_STATE_HALF_OPEN: CircuitBreakerState

class SignatureConfig(_message.Message):
    __slots__ = ("scheme", "hash", "encoding")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    scheme: SignatureScheme
    hash: SignatureHash
    encoding: SignatureEncoding
    def __init__(self, scheme: _Optional[_Union[SignatureScheme, str]] = ..., hash: _Optional[_Union[SignatureHash, str]] = ..., encoding: _Optional[_Union[SignatureEncoding, str]] = ...) -> None: ...

class EndpointSecret(_message.Message):
    __slots__ = ("id", "created_at", "expires_at", "value")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    value: str
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[str] = ...) -> None: ...

class ApiKeyAuthentication(_message.Message):
    __slots__ = ("header_name", "header_value")
    HEADER_NAME_FIELD_NUMBER: _ClassVar[int]
    HEADER_VALUE_FIELD_NUMBER: _ClassVar[int]
    header_name: str
    header_value: str
    def __init__(self, header_name: _Optional[str] = ..., header_value: _Optional[str] = ...) -> None: ...

class OAuth2ClientCredentials(_message.Message):
    __slots__ = ("token_url", "client_id", "client_secret", "scopes", "audience", "client_authentication")
    class ClientAuthentication(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CLIENT_AUTHENTICATION_UNSPECIFIED: _ClassVar[OAuth2ClientCredentials.ClientAuthentication]
        CLIENT_AUTHENTICATION_BASIC: _ClassVar[OAuth2ClientCredentials.ClientAuthentication]
        CLIENT_AUTHENTICATION_BODY: _ClassVar[OAuth2ClientCredentials.ClientAuthentication]
    CLIENT_AUTHENTICATION_UNSPECIFIED: OAuth2ClientCredentials.ClientAuthentication
    CLIENT_AUTHENTICATION_BASIC: OAuth2ClientCredentials.ClientAuthentication
    CLIENT_AUTHENTICATION_BODY: OAuth2ClientCredentials.ClientAuthentication
    TOKEN_URL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_AUTHENTICATION_FIELD_NUMBER: _ClassVar[int]
    token_url: str
    client_id: str
    client_secret: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    client_authentication: OAuth2ClientCredentials.ClientAuthentication
    def __init__(self, token_url: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ..., client_authentication: _Optional[_Union[OAuth2ClientCredentials.ClientAuthentication, str]] = ...) -> None: ...

class BasicAuthentication(_message.Message):
    __slots__ = ("username", "password")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class EndpointAuthentication(_message.Message):
    __slots__ = ("api_key", "oauth2", "basic")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    OAUTH2_FIELD_NUMBER: _ClassVar[int]
    BASIC_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKeyAuthentication
    oauth2: OAuth2ClientCredentials
    basic: BasicAuthentication
    def __init__(self, api_key: _Optional[_Union[ApiKeyAuthentication, _Mapping]] = ..., oauth2: _Optional[_Union[OAuth2ClientCredentials, _Mapping]] = ..., basic: _Optional[_Union[BasicAuthentication, _Mapping]] = ...) -> None: ...

class EndpointTls(_message.Message):
    __slots__ = ("client_certificate_pem", "client_key_pem", "ca_pem", "client_certificate_not_after")
    CLIENT_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    client_certificate_pem: str
    client_key_pem: str
    ca_pem: str
    client_certificate_not_after: _timestamp_pb2.Timestamp
    def __init__(self, client_certificate_pem: _Optional[str] = ..., client_key_pem: _Optional[str] = ..., ca_pem: _Optional[str] = ..., client_certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExponentialRetry(_message.Message):
    __slots__ = ("initial_interval", "max_interval", "multiplier", "max_retries")
    INITIAL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    initial_interval: _duration_pb2.Duration
    max_interval: _duration_pb2.Duration
    multiplier: float
    max_retries: int
    def __init__(self, initial_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., multiplier: _Optional[float] = ..., max_retries: _Optional[int] = ...) -> None: ...

class LinearRetry(_message.Message):
    __slots__ = ("interval", "max_retries")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    interval: _duration_pb2.Duration
    max_retries: int
    def __init__(self, interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_retries: _Optional[int] = ...) -> None: ...

class ScheduleRetry(_message.Message):
    __slots__ = ("delays",)
    DELAYS_FIELD_NUMBER: _ClassVar[int]
    delays: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    def __init__(self, delays: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("exponential", "linear", "schedule", "jitter")
    EXPONENTIAL_FIELD_NUMBER: _ClassVar[int]
    LINEAR_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    exponential: ExponentialRetry
    linear: LinearRetry
    schedule: ScheduleRetry
    jitter: float
    def __init__(self, exponential: _Optional[_Union[ExponentialRetry, _Mapping]] = ..., linear: _Optional[_Union[LinearRetry, _Mapping]] = ..., schedule: _Optional[_Union[ScheduleRetry, _Mapping]] = ..., jitter: _Optional[float] = ...) -> None: ...

class FifoQueue(_message.Message):
    __slots__ = ("head_delivery_id", "waiting")
    HEAD_DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    head_delivery_id: str
    waiting: int
    def __init__(self, head_delivery_id: _Optional[str] = ..., waiting: _Optional[int] = ...) -> None: ...

class CircuitBreakerStatus(_message.Message):
    __slots__ = ("state", "failure_rate", "window_attempts", "consecutive_trips", "next_probe_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_TRIPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PROBE_AT_FIELD_NUMBER: _ClassVar[int]
    state: CircuitBreakerState
    failure_rate: float
    window_attempts: int
    consecutive_trips: int
    next_probe_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[CircuitBreakerState, str]] = ..., failure_rate: _Optional[float] = ..., window_attempts: _Optional[int] = ..., consecutive_trips: _Optional[int] = ..., next_probe_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("id", "name", "description", "url", "owner_id", "event_types", "status", "status_reason", "status_changed_at", "http_timeout", "rate_limit", "rate_limit_duration", "retry_policy", "signature", "secrets", "authentication", "headers", "content_type", "max_concurrency", "created_at", "updated_at", "circuit_breaker", "tls", "ordering", "fifo", "send_trace_context", "warnings")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    HTTP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_DURATION_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATION_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    ORDERING_FIELD_NUMBER: _ClassVar[int]
    FIFO_FIELD_NUMBER: _ClassVar[int]
    SEND_TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    url: str
    owner_id: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    status: EndpointStatus
    status_reason: str
    status_changed_at: _timestamp_pb2.Timestamp
    http_timeout: _duration_pb2.Duration
    rate_limit: int
    rate_limit_duration: _duration_pb2.Duration
    retry_policy: RetryPolicy
    signature: SignatureConfig
    secrets: _containers.RepeatedCompositeFieldContainer[EndpointSecret]
    authentication: EndpointAuthentication
    headers: _containers.ScalarMap[str, str]
    content_type: str
    max_concurrency: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    circuit_breaker: CircuitBreakerStatus
    tls: EndpointTls
    ordering: Ordering
    fifo: FifoQueue
    send_trace_context: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., url: _Optional[str] = ..., owner_id: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[EndpointStatus, str]] = ..., status_reason: _Optional[str] = ..., status_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., http_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., rate_limit: _Optional[int] = ..., rate_limit_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., signature: _Optional[_Union[SignatureConfig, _Mapping]] = ..., secrets: _Optional[_Iterable[_Union[EndpointSecret, _Mapping]]] = ..., authentication: _Optional[_Union[EndpointAuthentication, _Mapping]] = ..., headers: _Optional[_Mapping[str, str]] = ..., content_type: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., circuit_breaker: _Optional[_Union[CircuitBreakerStatus, _Mapping]] = ..., tls: _Optional[_Union[EndpointTls, _Mapping]] = ..., ordering: _Optional[_Union[Ordering, str]] = ..., fifo: _Optional[_Union[FifoQueue, _Mapping]] = ..., send_trace_context: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateEndpointRequest(_message.Message):
    __slots__ = ("endpoint", "secret")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    secret: str
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class GetEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class ListEndpointsRequest(_message.Message):
    __slots__ = ("owner_id", "status", "page_size", "page_token")
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner_id: str
    status: EndpointStatus
    page_size: int
    page_token: str
    def __init__(self, owner_id: _Optional[str] = ..., status: _Optional[_Union[EndpointStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateEndpointRequest(_message.Message):
    __slots__ = ("endpoint", "update_mask")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class DeleteEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id", "reason")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    reason: str
    def __init__(self, endpoint_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class ActivateEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id", "reason")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    reason: str
    def __init__(self, endpoint_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RotateEndpointSecretRequest(_message.Message):
    __slots__ = ("endpoint_id", "secret", "old_secret_lifetime")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    OLD_SECRET_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    secret: str
    old_secret_lifetime: _duration_pb2.Duration
    def __init__(self, endpoint_id: _Optional[str] = ..., secret: _Optional[str] = ..., old_secret_lifetime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RotateEndpointSecretResponse(_message.Message):
    __slots__ = ("endpoint", "secret")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    secret: EndpointSecret
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., secret: _Optional[_Union[EndpointSecret, _Mapping]] = ...) -> None: ...

class GetEndpointSecretRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class GetEndpointSecretResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[EndpointSecret]
    def __init__(self, secrets: _Optional[_Iterable[_Union[EndpointSecret, _Mapping]]] = ...) -> None: ...
