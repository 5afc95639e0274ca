"""Domain objects to and from the JSON and integer-time columns of the store."""

from __future__ import annotations

import json
import json.encoder
from typing import Any

from convoyd.core.model import (
    ApiKeyAuth,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    RetryPolicy,
    RetryStrategy,
    Secret,
    SignatureConfig,
    SignatureEncoding,
    SignatureHash,
    SignatureScheme,
)

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
        "auth": None
        if spec.auth is None
        else {"header_name": spec.auth.header_name, "header_value": spec.auth.header_value},
        "headers": dict(spec.headers),
        "content_type": spec.content_type,
        "max_concurrency": spec.max_concurrency,
    }
    return json.dumps(doc, separators=(",", ":"))


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
        auth=None if auth is None else ApiKeyAuth(**auth),
        headers=doc["headers"],
        content_type=doc["content_type"],
        max_concurrency=doc["max_concurrency"],
    )


ENDPOINT_COLUMNS = (
    "id, owner_id, name, url, status, status_reason, status_changed_at, spec,"
    " created_at, updated_at"
)
SECRET_COLUMNS = "id, endpoint_id, value, created_at, expires_at"  # noqa: S105 - column names


def endpoint_to_row(ep: Endpoint) -> tuple[Any, ...]:
    return (
        ep.id,
        ep.spec.owner_id,
        ep.spec.name,
        ep.spec.url,
        ep.status.value,
        ep.status_reason,
        to_us(ep.status_changed_at),
        spec_to_json(ep.spec),
        to_us(ep.created_at),
        to_us(ep.updated_at),
    )


def secret_to_row(endpoint_id: str, secret: Secret) -> tuple[Any, ...]:
    return (
        secret.id,
        endpoint_id,
        secret.value,
        to_us(secret.created_at),
        opt_to_us(secret.expires_at),
    )


def secret_from_row(row: tuple[Any, ...]) -> Secret:
    return Secret(
        id=row[0], value=row[2], created_at=from_us(row[3]), expires_at=opt_from_us(row[4])
    )


def endpoint_from_row(row: tuple[Any, ...], secrets: tuple[Secret, ...]) -> Endpoint:
    (id_, owner_id, name, url, status, reason, changed, spec, created, updated) = row
    return Endpoint(
        id=id_,
        spec=spec_from_row(url, name, owner_id, spec),
        status=EndpointStatus(status),
        status_reason=reason,
        status_changed_at=from_us(changed),
        secrets=secrets,
        created_at=from_us(created),
        updated_at=from_us(updated),
    )
