"""Protobuf messages to domain types and back: endpoints, times and durations.

With ``convert_events`` (events, deliveries, attempts) the only place the two meet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from convoyd.core.model import (
    ApiKeyAuth,
    BasicAuth,
    BreakerStatus,
    Endpoint,
    EndpointAuth,
    EndpointSpec,
    EndpointStatus,
    EndpointTls,
    FifoQueue,
    OAuth2Auth,
    OAuth2ClientAuth,
    Ordering,
    RetryPolicy,
    RetryStrategy,
    Secret,
    SignatureConfig,
    SignatureEncoding,
    SignatureHash,
    SignatureScheme,
)
from convoyd.core.request import redact_map
from convoyd.core.validation import MASK, excerpt
from convoyd.errors import FieldViolation, ValidationError
from convoyd.service.endpoints import UPDATABLE_FIELDS
from convoyd.v1 import endpoint_pb2 as pb

STATUS_TO_PB = {
    EndpointStatus.ACTIVE: pb.ENDPOINT_STATUS_ACTIVE,
    EndpointStatus.INACTIVE: pb.ENDPOINT_STATUS_INACTIVE,
    EndpointStatus.PAUSED: pb.ENDPOINT_STATUS_PAUSED,
    EndpointStatus.PENDING: pb.ENDPOINT_STATUS_PENDING,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
SCHEME_TO_PB = {
    SignatureScheme.STANDARD: pb.SIGNATURE_SCHEME_STANDARD,
    SignatureScheme.CONVOY_SIMPLE: pb.SIGNATURE_SCHEME_CONVOY_SIMPLE,
    SignatureScheme.CONVOY_ADVANCED: pb.SIGNATURE_SCHEME_CONVOY_ADVANCED,
}
SCHEME_FROM_PB = {v: k for k, v in SCHEME_TO_PB.items()}
HASH_TO_PB = {
    SignatureHash.SHA256: pb.SIGNATURE_HASH_SHA256,
    SignatureHash.SHA512: pb.SIGNATURE_HASH_SHA512,
}
HASH_FROM_PB = {v: k for k, v in HASH_TO_PB.items()}
ENCODING_TO_PB = {
    SignatureEncoding.HEX: pb.SIGNATURE_ENCODING_HEX,
    SignatureEncoding.BASE64: pb.SIGNATURE_ENCODING_BASE64,
}
ENCODING_FROM_PB = {v: k for k, v in ENCODING_TO_PB.items()}
CLIENT_AUTH_TO_PB = {
    OAuth2ClientAuth.BASIC: pb.OAuth2ClientCredentials.CLIENT_AUTHENTICATION_BASIC,
    OAuth2ClientAuth.BODY: pb.OAuth2ClientCredentials.CLIENT_AUTHENTICATION_BODY,
}
CLIENT_AUTH_FROM_PB = {v: k for k, v in CLIENT_AUTH_TO_PB.items()}
# ORDERING_UNSPECIFIED (0) is concurrent, today's behaviour, so it is what reads show for it.
ORDERING_TO_PB = {
    Ordering.CONCURRENT: pb.ORDERING_UNSPECIFIED,
    Ordering.FIFO: pb.ORDERING_FIFO,
}
ORDERING_FROM_PB = {pb.ORDERING_FIFO: Ordering.FIFO}

# Mask paths of the API (Endpoint field names) → EndpointSpec field names: the fields the
# service lets an update replace, under their API names.
_API_NAME = {"auth": "authentication"}
MASK_TO_SPEC = {_API_NAME.get(field, field): field for field in UPDATABLE_FIELDS}


class _Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))


# google.protobuf.Timestamp and Duration as their definitions bound them; the wire carries any
# int64, and a time past year 9999 overflows the store's integer microseconds.
MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DURATION_SECONDS = 315_576_000_000  # about 10,000 years
_MAX_NANOS = 999_999_999


def seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def duration_problem(d: duration_pb2.Duration) -> str | None:
    """Why ``d`` is not a valid google.protobuf.Duration, or None."""
    if not -MAX_DURATION_SECONDS <= d.seconds <= MAX_DURATION_SECONDS:
        return f"seconds must be within ±{MAX_DURATION_SECONDS}"
    if not -_MAX_NANOS <= d.nanos <= _MAX_NANOS:
        return f"nanos must be within ±{_MAX_NANOS}"
    if (d.seconds < 0 < d.nanos) or (d.nanos < 0 < d.seconds):
        return "seconds and nanos must have the same sign"
    return None


def duration_seconds(d: duration_pb2.Duration, field: str) -> float:
    """A request's Duration in seconds; ValidationError naming ``field`` if it is invalid."""
    if (problem := duration_problem(d)) is not None:
        raise ValidationError.single(field, f"is not a valid duration: {problem}")
    return seconds(d)


def duration(value: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(value * 1e9))
    return out


def timestamp(value: float) -> timestamp_pb2.Timestamp:
    # Microseconds: the store's precision, and free of float noise in the last digits. Built
    # in one constructor call (FromMicroseconds costs a third more; every listed or created
    # event and delivery carries one or more).
    micros = round(value * 1e6)
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000)


def timestamp_seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def optional_time(msg: Any, name: str) -> float | None:
    """A request's optional Timestamp field in seconds; ValidationError naming it when it is
    outside the years 0001-9999 or its nanos are not 0-999,999,999."""
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    if not MIN_TIMESTAMP_SECONDS <= ts.seconds <= MAX_TIMESTAMP_SECONDS:
        raise ValidationError.single(name, "must be a time from year 0001 to 9999")
    if not 0 <= ts.nanos <= _MAX_NANOS:
        raise ValidationError.single(name, f"nanos must be from 0 to {_MAX_NANOS}")
    return timestamp_seconds(ts)


def _enum(value: int, table: Mapping[Any, Any], default: Any, field: str, out: _Violations) -> Any:
    if value == 0:
        return default
    if value not in table:
        out.add(field, f"unknown value {value}")
        return default
    return table[value]


def _duration_field(
    msg: Any, name: str, *, default: float | None, field: str, out: _Violations
) -> float | None:
    # Negative values pass through: the validator names them with every other bad field.
    if not msg.HasField(name):
        return default
    value = getattr(msg, name)
    if (problem := duration_problem(value)) is not None:
        out.add(field, f"is not a valid duration: {problem}")
        return default
    return seconds(value)


def _retry_from_pb(msg: pb.RetryPolicy, out: _Violations) -> RetryPolicy | None:
    kind = msg.WhichOneof("strategy")
    jitter = msg.jitter if msg.HasField("jitter") else 0.2
    if kind is None:
        if msg.HasField("jitter"):
            return RetryPolicy(jitter=jitter)
        return None
    if kind == "schedule":
        for i, delay in enumerate(msg.schedule.delays):
            if (problem := duration_problem(delay)) is not None:
                out.add(f"retry_policy.schedule.delays[{i}]", f"is not a valid duration: {problem}")
        delays = tuple(seconds(d) for d in msg.schedule.delays)
        return RetryPolicy(strategy=RetryStrategy.SCHEDULE, delays=delays, jitter=jitter)
    if kind == "exponential":
        e = msg.exponential
        where = "retry_policy.exponential"
        initial = _duration_field(
            e, "initial_interval", default=5.0, field=f"{where}.initial_interval", out=out
        )
        cap = _duration_field(
            e, "max_interval", default=36000.0, field=f"{where}.max_interval", out=out
        )
        return RetryPolicy(
            strategy=RetryStrategy.EXPONENTIAL,
            initial_interval=5.0 if initial is None else initial,
            max_interval=36000.0 if cap is None else cap,
            multiplier=e.multiplier or 2.0,
            max_retries=e.max_retries,
            jitter=jitter,
        )
    lin = msg.linear
    interval = _duration_field(
        lin, "interval", default=60.0, field="retry_policy.linear.interval", out=out
    )
    return RetryPolicy(
        strategy=RetryStrategy.LINEAR,
        interval=interval if interval is not None else 60.0,
        max_retries=lin.max_retries,
        jitter=jitter,
    )


def retry_to_pb(policy: RetryPolicy) -> pb.RetryPolicy:
    out = pb.RetryPolicy(jitter=policy.jitter)
    if policy.strategy is RetryStrategy.SCHEDULE:
        out.schedule.delays.extend(duration(d) for d in policy.delays)
    elif policy.strategy is RetryStrategy.EXPONENTIAL:
        out.exponential.initial_interval.CopyFrom(duration(policy.initial_interval))
        out.exponential.max_interval.CopyFrom(duration(policy.max_interval))
        out.exponential.multiplier = policy.multiplier
        out.exponential.max_retries = policy.max_retries
    else:
        out.linear.interval.CopyFrom(duration(policy.interval))
        out.linear.max_retries = policy.max_retries
    return out


def _auth_from_pb(msg: pb.EndpointAuthentication, out: _Violations) -> EndpointAuth | None:
    kind = msg.WhichOneof("method")
    if kind == "api_key":
        return ApiKeyAuth(
            header_name=msg.api_key.header_name, header_value=msg.api_key.header_value
        )
    if kind == "basic":
        return BasicAuth(username=msg.basic.username, password=msg.basic.password)
    if kind == "oauth2":
        o = msg.oauth2
        client_auth = _enum(
            o.client_authentication,
            CLIENT_AUTH_FROM_PB,
            OAuth2ClientAuth.BASIC,
            "authentication.oauth2.client_authentication",
            out,
        )
        return OAuth2Auth(
            token_url=o.token_url.strip(),
            client_id=o.client_id,
            client_secret=o.client_secret,
            scopes=tuple(o.scopes),
            audience=o.audience,
            client_auth=client_auth,
        )
    return None


def _tls_from_pb(msg: pb.EndpointTls) -> EndpointTls | None:
    """The caller's TLS settings; nothing set reads as none. client_certificate_not_after is
    output only: the service reads it from the certificate."""
    if not (msg.client_certificate_pem or msg.client_key_pem or msg.ca_pem):
        return None
    return EndpointTls(
        client_certificate_pem=msg.client_certificate_pem,
        client_key_pem=msg.client_key_pem,
        ca_pem=msg.ca_pem,
    )


def _spec_values(msg: pb.Endpoint, out: _Violations) -> dict[str, Any]:
    """Every settable field of ``msg`` as EndpointSpec keyword arguments."""
    sig = msg.signature
    scheme = _enum(sig.scheme, SCHEME_FROM_PB, SignatureScheme.STANDARD, "signature.scheme", out)
    rate_duration = _duration_field(
        msg, "rate_limit_duration", default=1.0, field="rate_limit_duration", out=out
    )
    retry = _retry_from_pb(msg.retry_policy, out) if msg.HasField("retry_policy") else None
    return {
        "url": msg.url.strip(),
        "name": msg.name,
        "description": msg.description,
        "owner_id": msg.owner_id,
        "event_types": tuple(msg.event_types),
        "http_timeout": _duration_field(
            msg, "http_timeout", default=None, field="http_timeout", out=out
        ),
        "rate_limit": msg.rate_limit,
        "rate_limit_duration": rate_duration if rate_duration is not None else 1.0,
        "retry_policy": retry,
        "signature": SignatureConfig(
            scheme=scheme,
            hash=_enum(sig.hash, HASH_FROM_PB, SignatureHash.SHA256, "signature.hash", out),
            encoding=_enum(
                sig.encoding, ENCODING_FROM_PB, SignatureEncoding.HEX, "signature.encoding", out
            ),
        ),
        "auth": _auth_from_pb(msg.authentication, out),
        "headers": dict(msg.headers),
        "content_type": msg.content_type or "application/json",
        "max_concurrency": msg.max_concurrency,
        "tls": _tls_from_pb(msg.tls) if msg.HasField("tls") else None,
        "ordering": _enum(msg.ordering, ORDERING_FROM_PB, Ordering.CONCURRENT, "ordering", out),
        # Unset is on (the field is optional: unset and false differ).
        "send_trace_context": not msg.HasField("send_trace_context") or msg.send_trace_context,
    }


def spec_from_pb(msg: pb.Endpoint) -> EndpointSpec:
    out = _Violations()
    values = _spec_values(msg, out)
    if out.items:
        raise ValidationError(out.items)
    return EndpointSpec(**values)


def changes_from_pb(msg: pb.Endpoint, paths: list[str]) -> dict[str, Any]:
    """The spec fields named by an update mask, with their new values."""
    out = _Violations()
    values = _spec_values(msg, out)
    changes: dict[str, Any] = {}
    for path in paths:
        if path not in MASK_TO_SPEC:
            out.add(
                "update_mask",
                f"{excerpt(path)} cannot be updated (updatable: {', '.join(sorted(MASK_TO_SPEC))})",
            )
            continue
        changes[MASK_TO_SPEC[path]] = values[MASK_TO_SPEC[path]]
    if out.items:
        raise ValidationError(out.items)
    return changes


def secret_to_pb(secret: Secret, *, with_value: bool) -> pb.EndpointSecret:
    out = pb.EndpointSecret(id=secret.id, created_at=timestamp(secret.created_at))
    if secret.expires_at is not None:
        out.expires_at.CopyFrom(timestamp(secret.expires_at))
    if with_value:
        out.value = secret.value
    return out


BREAKER_STATE_TO_PB = {
    "closed": pb.CIRCUIT_BREAKER_STATE_CLOSED,
    "open": pb.CIRCUIT_BREAKER_STATE_OPEN,
    "half_open": pb.CIRCUIT_BREAKER_STATE_HALF_OPEN,
}


def breaker_to_pb(status: BreakerStatus) -> pb.CircuitBreakerStatus:
    msg = pb.CircuitBreakerStatus(
        state=BREAKER_STATE_TO_PB[status.state],
        failure_rate=status.failure_rate,
        window_attempts=status.window_attempts,
        consecutive_trips=status.consecutive_trips,
    )
    if status.next_probe_at is not None:
        msg.next_probe_at.CopyFrom(timestamp(status.next_probe_at))
    return msg


def auth_to_pb(auth: EndpointAuth) -> pb.EndpointAuthentication:
    """The endpoint's authentication as reads show it: write-only values masked."""
    if isinstance(auth, ApiKeyAuth):
        key = pb.ApiKeyAuthentication(header_name=auth.header_name, header_value=MASK)
        return pb.EndpointAuthentication(api_key=key)
    if isinstance(auth, BasicAuth):
        basic = pb.BasicAuthentication(username=auth.username, password=MASK)
        return pb.EndpointAuthentication(basic=basic)
    oauth2 = pb.OAuth2ClientCredentials(
        token_url=auth.token_url,
        client_id=auth.client_id,
        client_secret=MASK,
        scopes=list(auth.scopes),
        audience=auth.audience,
        client_authentication=CLIENT_AUTH_TO_PB[auth.client_auth],
    )
    return pb.EndpointAuthentication(oauth2=oauth2)


def tls_to_pb(tls: EndpointTls) -> pb.EndpointTls:
    """The endpoint's TLS settings as reads show them: the client key masked."""
    msg = pb.EndpointTls(
        client_certificate_pem=tls.client_certificate_pem,
        client_key_pem=MASK if tls.client_key_pem else "",
        ca_pem=tls.ca_pem,
    )
    if tls.client_certificate_not_after is not None:
        msg.client_certificate_not_after.CopyFrom(timestamp(tls.client_certificate_not_after))
    return msg


def endpoint_to_pb(
    ep: Endpoint,
    *,
    now: float,
    with_secret_values: bool = False,
    breaker: BreakerStatus | None = None,
    fifo: FifoQueue | None = None,
    warnings: Sequence[str] = (),
) -> pb.Endpoint:
    spec = ep.spec
    msg = pb.Endpoint(
        id=ep.id,
        name=spec.name,
        description=spec.description,
        url=spec.url,
        owner_id=spec.owner_id,
        event_types=list(spec.event_types),
        status=STATUS_TO_PB[ep.status],
        status_reason=ep.status_reason,
        status_changed_at=timestamp(ep.status_changed_at),
        rate_limit=spec.rate_limit,
        rate_limit_duration=duration(spec.rate_limit_duration),
        signature=pb.SignatureConfig(
            scheme=SCHEME_TO_PB[spec.signature.scheme],
            hash=HASH_TO_PB[spec.signature.hash],
            encoding=ENCODING_TO_PB[spec.signature.encoding],
        ),
        secrets=[secret_to_pb(s, with_value=with_secret_values) for s in ep.live_secrets(now)],
        headers=redact_map(spec.headers),  # credentials are write-only, like the API key
        content_type=spec.content_type,
        max_concurrency=spec.max_concurrency,
        ordering=ORDERING_TO_PB[spec.ordering],
        send_trace_context=spec.send_trace_context,
        created_at=timestamp(ep.created_at),
        updated_at=timestamp(ep.updated_at),
    )
    if spec.http_timeout is not None:
        msg.http_timeout.CopyFrom(duration(spec.http_timeout))
    if spec.retry_policy is not None:
        msg.retry_policy.CopyFrom(retry_to_pb(spec.retry_policy))
    if spec.auth is not None:
        msg.authentication.CopyFrom(auth_to_pb(spec.auth))
    if spec.tls is not None:
        msg.tls.CopyFrom(tls_to_pb(spec.tls))
    if breaker is not None:
        msg.circuit_breaker.CopyFrom(breaker_to_pb(breaker))
    if fifo is not None:
        msg.fifo.CopyFrom(
            pb.FifoQueue(head_delivery_id=fifo.head_delivery_id, waiting=fifo.waiting)
        )
    msg.warnings.extend(warnings)
    return msg


def optional_status(value: int, field: str = "status") -> EndpointStatus | None:
    if value == 0:
        return None
    for pb_value, status in STATUS_FROM_PB.items():
        if pb_value == value:
            return status
    raise ValidationError.single(field, f"unknown value {value}")
