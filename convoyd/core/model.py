"""Domain types shared by every part of convoyd: plain frozen dataclasses and enums, no I/O.

Times are float seconds since the Unix epoch (UTC); durations are float seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

from convoyd.core.tracecontext import EventTrace

T = TypeVar("T")


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    PAUSED = "paused"
    PENDING = "pending"


class SignatureScheme(StrEnum):
    STANDARD = "standard"
    CONVOY_SIMPLE = "convoy_simple"
    CONVOY_ADVANCED = "convoy_advanced"


class SignatureHash(StrEnum):
    SHA256 = "sha256"
    SHA512 = "sha512"


class SignatureEncoding(StrEnum):
    HEX = "hex"
    BASE64 = "base64"


class Ordering(StrEnum):
    """How an endpoint's deliveries are started relative to each other.

    CONCURRENT: as many at once as its concurrency limit allows, in no promised order.
    FIFO: one at a time in acceptance order; a failing head holds the queue behind it
    (head-of-line blocking) until it succeeds or ends for good.
    """

    CONCURRENT = "concurrent"
    FIFO = "fifo"


class RetryStrategy(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    SCHEDULE = "schedule"


# The Standard Webhooks schedule: the first attempt at once, then these delays (seconds).
STANDARD_WEBHOOKS_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When a failed delivery is tried again. Which fields matter depends on ``strategy``."""

    strategy: RetryStrategy = RetryStrategy.SCHEDULE
    #: SCHEDULE: the delay before each retry, in order; its length is the number of retries.
    delays: tuple[float, ...] = STANDARD_WEBHOOKS_DELAYS
    #: EXPONENTIAL: first delay, growth factor and cap.
    initial_interval: float = 5.0
    multiplier: float = 2.0
    max_interval: float = 36000.0
    #: LINEAR: the fixed delay.
    interval: float = 60.0
    #: EXPONENTIAL and LINEAR: how many retries after the first attempt.
    max_retries: int = 7
    #: Fraction of each delay that is randomised (0.2 → ±10 %).
    jitter: float = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureConfig:
    scheme: SignatureScheme = SignatureScheme.STANDARD
    hash: SignatureHash = SignatureHash.SHA256
    encoding: SignatureEncoding = SignatureEncoding.HEX


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """A signing secret. ``expires_at`` None means it has no expiry."""

    id: str
    value: str
    created_at: float
    expires_at: float | None = None

    def is_live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyAuth:
    """Endpoint authentication: an API key sent in a header, separate from the signature."""

    header_name: str
    #: Write-only: reads show the mask.
    header_value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicAuth:
    """Endpoint authentication: HTTP basic (RFC 7617) on every request."""

    username: str
    #: Write-only: reads show the mask.
    password: str


class OAuth2ClientAuth(StrEnum):
    """How convoyd authenticates itself to an OAuth2 token URL (RFC 6749 §2.3.1)."""

    BASIC = "basic"  # an Authorization: Basic header
    BODY = "body"  # client_id and client_secret in the form body


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth2Auth:
    """Endpoint authentication: a bearer token from the OAuth2 client-credentials grant."""

    token_url: str
    client_id: str
    #: Write-only: reads show the mask.
    client_secret: str
    #: Sent space-separated as ``scope``; empty: no scope parameter.
    scopes: tuple[str, ...] = ()
    #: Sent as ``audience`` when not empty.
    audience: str = ""
    client_auth: OAuth2ClientAuth = OAuth2ClientAuth.BASIC


# How convoyd proves who it is in the request itself; mutual TLS (EndpointTls) goes with any.
EndpointAuth: TypeAlias = ApiKeyAuth | BasicAuth | OAuth2Auth


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointTls:
    """TLS settings of an https endpoint: a client certificate and the CA trusted for the
    receiver. Empty strings mean "not set"."""

    #: PEM: the client certificate, then any intermediates; goes with client_key_pem.
    client_certificate_pem: str = ""
    #: PEM: the certificate's unencrypted private key. Write-only: reads show the mask.
    client_key_pem: str = ""
    #: PEM: the only CA certificates trusted for the receiver; empty: the system store.
    ca_pem: str = ""
    #: When the client certificate expires, read from it by the service (never from callers).
    client_certificate_not_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSpec:
    """The caller-settable part of an endpoint: what Create takes and Update changes."""

    url: str
    name: str = ""
    description: str = ""
    owner_id: str = ""
    event_types: tuple[str, ...] = ()
    http_timeout: float | None = None
    rate_limit: int = 0
    rate_limit_duration: float = 1.0
    #: None: the server's default policy at the time of each attempt.
    retry_policy: RetryPolicy | None = None
    signature: SignatureConfig = field(default_factory=SignatureConfig)
    auth: EndpointAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    #: 0: the server default.
    max_concurrency: int = 0
    tls: EndpointTls | None = None
    #: FIFO: one delivery at a time in acceptance order (``max_concurrency`` does not apply).
    ordering: Ordering = Ordering.CONCURRENT
    #: Whether requests carry the W3C ``traceparent``/``tracestate`` of the attempt (when
    #: tracing is on); off for receivers that refuse headers they do not know.
    send_trace_context: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class FifoQueue:
    """What holds a FIFO endpoint up, as reads show it: the oldest pending delivery (being
    tried, or waiting for its next retry) and how many pending deliveries wait behind it."""

    head_delivery_id: str
    waiting: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    id: str
    spec: EndpointSpec
    status: EndpointStatus
    status_reason: str
    status_changed_at: float
    #: Newest first; may include expired secrets that clean-up has not removed yet.
    secrets: tuple[Secret, ...]
    created_at: float
    updated_at: float

    def live_secrets(self, now: float) -> tuple[Secret, ...]:
        return tuple(s for s in self.secrets if s.is_live(now))


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is empty on the last page."""

    items: tuple[T, ...]
    next_token: str = ""


class DeliveryStatus(StrEnum):
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    SUCCESS = "success"
    RETRY = "retry"
    FAILURE = "failure"
    DISCARDED = "discarded"


# Deliveries the engine still has to attempt.
PENDING_STATUSES = frozenset(
    {DeliveryStatus.SCHEDULED, DeliveryStatus.PROCESSING, DeliveryStatus.RETRY}
)
# Deliveries a person may send again with RetryDelivery / BatchRetryDeliveries.
RETRYABLE_STATUSES = frozenset({DeliveryStatus.FAILURE, DeliveryStatus.DISCARDED})


class AttemptResult(StrEnum):
    SUCCESS = "success"
    HTTP_ERROR = "http_error"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventInput:
    """What a caller hands in: the targets (endpoint ids or one owner), type, payload."""

    endpoint_ids: tuple[str, ...] = ()
    owner_id: str = ""
    event_type: str = ""
    data: bytes = b""
    idempotency_key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    id: str
    event_type: str
    data: bytes
    idempotency_key: str
    endpoint_ids: tuple[str, ...]
    owner_id: str
    headers: Mapping[str, str]
    created_at: float
    delivery_count: int
    #: Where its attempts join a trace (tracing on); None: the event has none.
    trace: EventTrace | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    id: str
    event_id: str
    endpoint_id: str
    owner_id: str
    event_type: str
    status: DeliveryStatus
    status_reason: str
    attempt_count: int
    next_attempt_at: float | None
    last_attempt_at: float | None
    last_http_status: int
    created_at: float
    updated_at: float
    #: Set by a manual retry or resend: the attempt count at which the delivery gives up
    #: (one more attempt); None: the endpoint's retry policy decides.
    attempt_limit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    id: str
    delivery_id: str
    number: int
    result: AttemptResult
    started_at: float
    duration: float
    request_url: str
    request_headers: tuple[tuple[str, str], ...]
    response_status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes
    response_body_truncated: bool
    error: str
    remote_address: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointStatusChange:
    endpoint_id: str
    owner_id: str
    previous: EndpointStatus
    status: EndpointStatus
    reason: str
    changed_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerStatus:
    """An endpoint's circuit breaker as the engine sees it now (GetEndpoint, the portal)."""

    state: str  # closed, open, half_open
    failure_rate: float
    window_attempts: int
    consecutive_trips: int
    next_probe_at: float | None


class PortalLinkKind(StrEnum):
    #: Exchanged for a session on first open, dead after that.
    ONE_TIME = "one_time"
    #: Opens a new session every time until it expires or is revoked (embedding).
    LONG_LIVED = "long_lived"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalLink:
    """A link to the web portal. Its token is known to the store only by its SHA-256 hash.

    The scope is exactly one of: every endpoint of ``owner_id``, the ``endpoint_ids``, or every
    owner (``all_owners``: the operator dashboard).
    """

    id: str
    name: str
    owner_id: str = ""
    endpoint_ids: tuple[str, ...] = ()
    all_owners: bool = False
    can_manage_endpoints: bool = False
    kind: PortalLinkKind
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    #: When a ONE_TIME link was exchanged for its session.
    used_at: float | None = None

    def is_live(self, now: float) -> bool:
        """Neither revoked nor expired (a used ONE_TIME link stays live: its session does)."""
        return self.revoked_at is None and self.expires_at > now

    def covers(self, endpoint: Endpoint) -> bool:
        """Whether ``endpoint`` is inside this link's scope."""
        if self.all_owners:
            return True
        if self.endpoint_ids:
            return endpoint.id in self.endpoint_ids
        return bool(self.owner_id) and endpoint.spec.owner_id == self.owner_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalSession:
    """A browser session opened with a portal link; its cookie value is stored hashed."""

    id: str
    link_id: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None

    def is_live(self, now: float) -> bool:
        return self.revoked_at is None and self.expires_at > now
