"""Store rows to domain objects and back: endpoints, secrets, events, deliveries, attempts.

Times are integer microseconds, lists and maps JSON text. Rows are read by column name (the
connections return ``sqlite3.Row``); rows written are tuples in the order of the column-name
lists beside them, which the statements are built from, or mappings for named placeholders.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any, Protocol

from convoyd.core import tracecontext
from convoyd.core.model import (
    ApiKeyAuth,
    Attempt,
    AttemptResult,
    BasicAuth,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointAuth,
    EndpointSpec,
    EndpointStatus,
    EndpointTls,
    Event,
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
from convoyd.store.base import Payload

# json.dumps builds a new C encoder on every call, which costs twice the encoding of the small
# header lists and id lists written with every event and attempt; this one is built once. It
# writes exactly what json.dumps writes (same separators, ASCII escapes, NaN as JSON does).
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # the _json C module


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODE = (
    _C_ENCODER(
        None,
        _refuse,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
    if _C_ENCODER is not None
    else None
)


class Row(Protocol):
    """A row read by column name: ``sqlite3.Row`` (the connections' row factory) or a mapping."""

    def __getitem__(self, name: str, /) -> Any: ...


def dumps(value: list[Any] | tuple[Any, ...] | dict[str, Any]) -> str:
    """``json.dumps(value)`` for the store's hot rows: lists, tuples and dicts of plain values."""
    if _ENCODE is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(value)
    return "".join(_ENCODE(value, 0))


def to_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def from_us(micros: int) -> float:
    return micros / 1_000_000


def opt_to_us(seconds: float | None) -> int | None:
    return None if seconds is None else to_us(seconds)


def opt_from_us(micros: int | None) -> float | None:
    return None if micros is None else from_us(micros)


def spec_to_json(spec: EndpointSpec) -> str:
    """Everything of the spec not kept in its own column."""
    policy = spec.retry_policy
    doc: dict[str, Any] = {
        "description": spec.description,
        "event_types": list(spec.event_types),
        "http_timeout": spec.http_timeout,
        "rate_limit": spec.rate_limit,
        "rate_limit_duration": spec.rate_limit_duration,
        "retry_policy": None
        if policy is None
        else {
            "strategy": policy.strategy.value,
            "delays": list(policy.delays),
            "initial_interval": policy.initial_interval,
            "multiplier": policy.multiplier,
            "max_interval": policy.max_interval,
            "interval": policy.interval,
            "max_retries": policy.max_retries,
            "jitter": policy.jitter,
        },
        "signature": {
            "scheme": spec.signature.scheme.value,
            "hash": spec.signature.hash.value,
            "encoding": spec.signature.encoding.value,
        },
        "auth": None if spec.auth is None else _auth_doc(spec.auth),
        "headers": dict(spec.headers),
        "content_type": spec.content_type,
        "max_concurrency": spec.max_concurrency,
        "tls": None
        if spec.tls is None
        else {
            "client_certificate_pem": spec.tls.client_certificate_pem,
            "client_key_pem": spec.tls.client_key_pem,
            "ca_pem": spec.tls.ca_pem,
            "client_certificate_not_after": spec.tls.client_certificate_not_after,
        },
        "ordering": spec.ordering.value,
        "send_trace_context": spec.send_trace_context,
    }
    return json.dumps(doc, separators=(",", ":"))


def _auth_doc(auth: EndpointAuth) -> dict[str, Any]:
    if isinstance(auth, ApiKeyAuth):
        return {
            "method": "api_key",
            "header_name": auth.header_name,
            "header_value": auth.header_value,
        }
    if isinstance(auth, BasicAuth):
        return {"method": "basic", "username": auth.username, "password": auth.password}
    return {
        "method": "oauth2",
        "token_url": auth.token_url,
        "client_id": auth.client_id,
        "client_secret": auth.client_secret,
        "scopes": list(auth.scopes),
        "audience": auth.audience,
        "client_auth": auth.client_auth.value,
    }


def _auth_from_doc(doc: dict[str, Any]) -> EndpointAuth:
    # Rows written before basic and OAuth2 existed have no "method": they hold an API key.
    method = doc.get("method", "api_key")
    if method == "api_key":
        return ApiKeyAuth(header_name=doc["header_name"], header_value=doc["header_value"])
    if method == "basic":
        return BasicAuth(username=doc["username"], password=doc["password"])
    if method == "oauth2":
        return OAuth2Auth(
            token_url=doc["token_url"],
            client_id=doc["client_id"],
            client_secret=doc["client_secret"],
            scopes=tuple(doc["scopes"]),
            audience=doc["audience"],
            client_auth=OAuth2ClientAuth(doc["client_auth"]),
        )
    raise ValueError(f"unknown authentication method {method!r} in a stored endpoint")


def spec_from_row(url: str, name: str, owner_id: str, spec_json: str) -> EndpointSpec:
    doc = json.loads(spec_json)
    policy = doc["retry_policy"]
    auth = doc["auth"]
    sig = doc["signature"]
    return EndpointSpec(
        url=url,
        name=name,
        owner_id=owner_id,
        description=doc["description"],
        event_types=tuple(doc["event_types"]),
        http_timeout=doc["http_timeout"],
        rate_limit=doc["rate_limit"],
        rate_limit_duration=doc["rate_limit_duration"],
        retry_policy=None
        if policy is None
        else RetryPolicy(
            strategy=RetryStrategy(policy["strategy"]),
            delays=tuple(policy["delays"]),
            initial_interval=policy["initial_interval"],
            multiplier=policy["multiplier"],
            max_interval=policy["max_interval"],
            interval=policy["interval"],
            max_retries=policy["max_retries"],
            jitter=policy["jitter"],
        ),
        signature=SignatureConfig(
            scheme=SignatureScheme(sig["scheme"]),
            hash=SignatureHash(sig["hash"]),
            encoding=SignatureEncoding(sig["encoding"]),
        ),
        auth=None if auth is None else _auth_from_doc(auth),
        headers=doc["headers"],
        content_type=doc["content_type"],
        max_concurrency=doc["max_concurrency"],
        # Rows written before TLS settings existed have no "tls".
        tls=None if (tls := doc.get("tls")) is None else EndpointTls(**tls),
        # Rows written before FIFO endpoints existed have no "ordering": they are concurrent.
        ordering=Ordering(doc.get("ordering", Ordering.CONCURRENT.value)),
        # Rows written before trace context existed have none: it is on.
        send_trace_context=doc.get("send_trace_context", True),
    )


ENDPOINT_NAMES = (
    "id",
    "owner_id",
    "name",
    "url",
    "status",
    "status_reason",
    "status_changed_at",
    "spec",
    "created_at",
    "updated_at",
)
ENDPOINT_COLUMNS = ", ".join(ENDPOINT_NAMES)
SECRET_NAMES = ("id", "endpoint_id", "value", "created_at", "expires_at")
SECRET_COLUMNS = ", ".join(SECRET_NAMES)


def endpoint_values(ep: Endpoint) -> dict[str, Any]:
    """The endpoint's columns by name (for ``:name`` placeholders)."""
    return {
        "id": ep.id,
        "owner_id": ep.spec.owner_id,
        "name": ep.spec.name,
        "url": ep.spec.url,
        "status": ep.status.value,
        "status_reason": ep.status_reason,
        "status_changed_at": to_us(ep.status_changed_at),
        "spec": spec_to_json(ep.spec),
        "created_at": to_us(ep.created_at),
        "updated_at": to_us(ep.updated_at),
    }


def secret_values(endpoint_id: str, secret: Secret) -> dict[str, Any]:
    return {
        "id": secret.id,
        "endpoint_id": endpoint_id,
        "value": secret.value,
        "created_at": to_us(secret.created_at),
        "expires_at": opt_to_us(secret.expires_at),
    }


def secret_from_row(row: Row) -> Secret:
    return Secret(
        id=row["id"],
        value=row["value"],
        created_at=from_us(row["created_at"]),
        expires_at=opt_from_us(row["expires_at"]),
    )


def endpoint_from_row(row: Row, secrets: tuple[Secret, ...]) -> Endpoint:
    return Endpoint(
        id=row["id"],
        spec=spec_from_row(row["url"], row["name"], row["owner_id"], row["spec"]),
        status=EndpointStatus(row["status"]),
        status_reason=row["status_reason"],
        status_changed_at=from_us(row["status_changed_at"]),
        secrets=secrets,
        created_at=from_us(row["created_at"]),
        updated_at=from_us(row["updated_at"]),
    )


# -- events, deliveries and attempts: the hot rows ------------------------------------------

EVENT_NAMES = (
    "id",
    "event_type",
    "owner_id",
    "endpoint_ids",
    "data",
    "headers",
    "idempotency_key",
    "delivery_count",
    "created_at",
    "trace_context",  # migration 5: JSON of core.tracecontext.EventTrace, or NULL
)
EVENT_COLUMNS = ", ".join(EVENT_NAMES)
EVENT_INSERT_NAMES = (*EVENT_NAMES, "payload_hash")
"""The columns of ``event_insert_row``, in its order."""

DELIVERY_NAMES = (
    "id",
    "event_id",
    "endpoint_id",
    "owner_id",
    "event_type",
    "status",
    "status_reason",
    "attempt_count",
    "attempt_limit",
    "next_attempt_at",
    "last_attempt_at",
    "last_http_status",
    "created_at",
    "updated_at",
)
DELIVERY_COLUMNS = ", ".join(DELIVERY_NAMES)
"""Also the order of ``delivery_to_row``."""

DELIVERY_UPDATE_NAMES = (
    "status",
    "status_reason",
    "attempt_count",
    "attempt_limit",
    "next_attempt_at",
    "last_attempt_at",
    "last_http_status",
    "updated_at",
    "id",
)
"""The order of ``delivery_update_row``: what an outcome may change, then the key."""

ATTEMPT_NAMES = (
    "id",
    "delivery_id",
    "number",
    "result",
    "started_at",
    "duration_us",
    "request_url",
    "request_headers",
    "response_status",
    "response_headers",
    "response_body",
    "response_body_truncated",
    "error",
    "remote_address",
)
ATTEMPT_COLUMNS = ", ".join(ATTEMPT_NAMES)
"""Also the order of ``attempt_to_row``."""


def event_from_row(row: Row) -> Event:
    return Event(
        id=row["id"],
        event_type=row["event_type"],
        owner_id=row["owner_id"],
        endpoint_ids=tuple(json.loads(row["endpoint_ids"])),
        data=row["data"],
        headers=json.loads(row["headers"]),
        idempotency_key=row["idempotency_key"] or "",
        delivery_count=row["delivery_count"],
        created_at=from_us(row["created_at"]),
        trace=tracecontext.decode(row["trace_context"]),
    )


def event_insert_row(event: Event, payload_hash: bytes) -> tuple[Any, ...]:
    """The row of EVENT_INSERT_NAMES."""
    return (
        event.id,
        event.event_type,
        event.owner_id,
        dumps(event.endpoint_ids),
        event.data,
        dumps(dict(event.headers)),
        event.idempotency_key or None,
        event.delivery_count,
        to_us(event.created_at),
        None if event.trace is None else tracecontext.encode(event.trace),
        payload_hash,
    )


def payload_from_row(row: Row) -> Payload:
    """An event's body, headers and trace as the engine sends them (``id, data, headers,
    trace_context``)."""
    return Payload(
        data=row["data"],
        headers=json.loads(row["headers"]),
        trace=tracecontext.decode(row["trace_context"]),
    )


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        owner_id=row["owner_id"],
        event_type=row["event_type"],
        status=DeliveryStatus(row["status"]),
        status_reason=row["status_reason"],
        attempt_count=row["attempt_count"],
        attempt_limit=row["attempt_limit"],
        next_attempt_at=opt_from_us(row["next_attempt_at"]),
        last_attempt_at=opt_from_us(row["last_attempt_at"]),
        last_http_status=row["last_http_status"],
        created_at=from_us(row["created_at"]),
        updated_at=from_us(row["updated_at"]),
    )


def delivery_to_row(d: Delivery) -> tuple[Any, ...]:
    """The row of DELIVERY_NAMES."""
    return (
        d.id,
        d.event_id,
        d.endpoint_id,
        d.owner_id,
        d.event_type,
        d.status.value,
        d.status_reason,
        d.attempt_count,
        d.attempt_limit,
        opt_to_us(d.next_attempt_at),
        opt_to_us(d.last_attempt_at),
        d.last_http_status,
        to_us(d.created_at),
        to_us(d.updated_at),
    )


def delivery_update_row(d: Delivery) -> tuple[Any, ...]:
    """The row of DELIVERY_UPDATE_NAMES."""
    return (
        d.status.value,
        d.status_reason,
        d.attempt_count,
        d.attempt_limit,
        opt_to_us(d.next_attempt_at),
        opt_to_us(d.last_attempt_at),
        d.last_http_status,
        to_us(d.updated_at),
        d.id,
    )


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        id=row["id"],
        delivery_id=row["delivery_id"],
        number=row["number"],
        result=AttemptResult(row["result"]),
        started_at=from_us(row["started_at"]),
        duration=row["duration_us"] / 1_000_000,
        request_url=row["request_url"],
        request_headers=tuple((n, v) for n, v in json.loads(row["request_headers"])),
        response_status=row["response_status"],
        response_headers=tuple((n, v) for n, v in json.loads(row["response_headers"])),
        response_body=row["response_body"],
        response_body_truncated=bool(row["response_body_truncated"]),
        error=row["error"],
        remote_address=row["remote_address"],
    )


def attempt_to_row(a: Attempt) -> tuple[Any, ...]:
    """The row of ATTEMPT_NAMES."""
    return (
        a.id,
        a.delivery_id,
        a.number,
        a.result.value,
        to_us(a.started_at),
        round(a.duration * 1_000_000),
        a.request_url,
        dumps(a.request_headers),
        a.response_status,
        dumps(a.response_headers),
        a.response_body,
        int(a.response_body_truncated),
        a.error,
        a.remote_address,
    )
