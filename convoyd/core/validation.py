"""Checks caller-supplied values once, on the domain types, and names every bad field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from convoyd.core import signing
from convoyd.core.model import (
    ApiKeyAuth,
    EndpointSpec,
    EventInput,
    RetryPolicy,
    RetryStrategy,
    SignatureScheme,
)
from convoyd.errors import FieldViolation, ValidationError

# RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Event types and owner ids are matched and shown, never interpreted: keep them printable.
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:/*\-]{1,128}$")
_OWNER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_VALUE_BAD = re.compile(r"[\x00\r\n]")

# Headers convoyd owns on every request: hop-by-hop ones (meaningless end to end), framing,
# and the signature headers a receiver trusts. A custom header may not replace any of them.
RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "webhook-id",
        "webhook-signature",
        "webhook-timestamp",
        "x-convoy-signature",
    }
)

MASK = "********"  # what reads return in place of write-only values


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on caller-supplied values."""

    max_url_length: int = 2048
    max_name_length: int = 200
    max_description_length: int = 2000
    max_event_types: int = 100
    max_headers: int = 32
    max_header_value_length: int = 4096
    max_http_timeout: float = 60.0
    min_http_timeout: float = 0.1
    max_rate_limit: int = 1_000_000
    max_retries: int = 50
    max_retry_delay: float = 7 * 86400.0
    max_concurrency: int = 256


class _Collector:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise ValidationError(self.violations)


def check_url(url: str, limits: Limits, field: str = "url") -> str | None:
    """Why ``url`` cannot be a webhook destination, or None."""
    if not url:
        return "is required"
    if len(url) > limits.max_url_length:
        return f"is longer than {limits.max_url_length} characters"
    if _CONTROL.search(url) or " " in url:
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials; use authentication instead"
    if parts.fragment:
        return "must not have a #fragment"
    if port == 0:
        return "has port 0"
    return None


def check_header_name(name: str) -> str | None:
    if not _TOKEN.match(name):
        return "is not a valid header name"
    if name.lower() in RESERVED_HEADERS:
        return "is set by convoyd and cannot be overridden"
    return None


def check_header_value(value: str, limits: Limits) -> str | None:
    if _HEADER_VALUE_BAD.search(value):
        return "must not contain CR, LF or NUL"
    if len(value) > limits.max_header_value_length:
        return f"is longer than {limits.max_header_value_length} characters"
    return None


def check_headers(
    headers: Mapping[str, str], limits: Limits, out: _Collector, field: str = "headers"
) -> None:
    if len(headers) > limits.max_headers:
        out.add(field, f"has more than {limits.max_headers} entries")
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"{field}[{name!r}]" if _TOKEN.match(name) else field
        if (problem := check_header_name(name)) is not None:
            out.add(where, f"header name {problem}")
            continue
        if name.lower() in seen:
            out.add(where, "is given twice (header names are case-insensitive)")
        seen.add(name.lower())
        if (problem := check_header_value(value, limits)) is not None:
            out.add(where, problem)


def _check_duration(
    value: float, field: str, low: float, high: float, out: _Collector, *, unit: str = "s"
) -> None:
    if not math.isfinite(value) or value < low or value > high:
        out.add(field, f"must be between {low:g}{unit} and {high:g}{unit}")


def _check_retry(policy: RetryPolicy, limits: Limits, out: _Collector) -> None:
    top = "retry_policy"
    if not (0.0 <= policy.jitter <= 1.0) or not math.isfinite(policy.jitter):
        out.add(f"{top}.jitter", "must be between 0 and 1")
    cap = limits.max_retry_delay
    if policy.strategy is RetryStrategy.SCHEDULE:
        if len(policy.delays) > limits.max_retries:
            out.add(f"{top}.schedule.delays", f"has more than {limits.max_retries} delays")
        for i, delay in enumerate(policy.delays):
            _check_duration(delay, f"{top}.schedule.delays[{i}]", 0, cap, out)
    elif policy.strategy is RetryStrategy.EXPONENTIAL:
        where = f"{top}.exponential"
        _check_duration(policy.initial_interval, f"{where}.initial_interval", 0.1, cap, out)
        _check_duration(policy.max_interval, f"{where}.max_interval", 0.1, cap, out)
        if policy.max_interval < policy.initial_interval:
            out.add(f"{where}.max_interval", "must not be less than initial_interval")
        if not (1.0 <= policy.multiplier <= 10.0):
            out.add(f"{where}.multiplier", "must be between 1 and 10")
        if not (0 <= policy.max_retries <= limits.max_retries):
            out.add(f"{where}.max_retries", f"must be between 0 and {limits.max_retries}")
    else:
        where = f"{top}.linear"
        _check_duration(policy.interval, f"{where}.interval", 0.1, cap, out)
        if not (0 <= policy.max_retries <= limits.max_retries):
            out.add(f"{where}.max_retries", f"must be between 0 and {limits.max_retries}")


def _check_auth(
    auth: ApiKeyAuth, headers: Mapping[str, str], limits: Limits, out: _Collector
) -> None:
    where = "authentication.api_key"
    if (problem := check_header_name(auth.header_name)) is not None:
        out.add(f"{where}.header_name", problem)
    elif auth.header_name.lower() in {h.lower() for h in headers}:
        out.add(f"{where}.header_name", "is also a custom header")
    if not auth.header_value:
        out.add(f"{where}.header_value", "is required")
    elif set(auth.header_value) == {"*"}:
        out.add(f"{where}.header_value", "is the masked placeholder; send the real value")
    elif (problem := check_header_value(auth.header_value, limits)) is not None:
        out.add(f"{where}.header_value", problem)


def _check_text(
    value: str, field: str, max_length: int, out: _Collector, *, single_line: bool
) -> None:
    if len(value) > max_length:
        out.add(field, f"is longer than {max_length} characters")
    if single_line and _CONTROL.search(value):
        out.add(field, "must not contain control characters")
    elif "\x00" in value:
        out.add(field, "must not contain NUL")


def check_event_types(types: Iterable[str], field: str, limit: int, out: _Collector) -> None:
    seen: set[str] = set()
    for i, event_type in enumerate(types):
        if i >= limit:
            out.add(field, f"has more than {limit} entries")
            break
        if not _EVENT_TYPE.match(event_type):
            out.add(f"{field}[{i}]", "must be 1-128 characters of letters, digits and _ . : / * -")
        elif event_type in seen:
            out.add(f"{field}[{i}]", "is given twice")
        seen.add(event_type)


def check_owner_id(owner_id: str, field: str, out: _Collector) -> None:
    if owner_id and not _OWNER_ID.match(owner_id):
        out.add(field, "must be 1-128 printable characters without spaces")


def validate_endpoint_spec(spec: EndpointSpec, limits: Limits) -> None:
    """Raises ValidationError naming every bad field of ``spec``."""
    out = _Collector()
    if (problem := check_url(spec.url, limits)) is not None:
        out.add("url", problem)
    _check_text(spec.name, "name", limits.max_name_length, out, single_line=True)
    _check_text(
        spec.description, "description", limits.max_description_length, out, single_line=False
    )
    check_owner_id(spec.owner_id, "owner_id", out)
    check_event_types(spec.event_types, "event_types", limits.max_event_types, out)
    if spec.http_timeout is not None:
        _check_duration(
            spec.http_timeout, "http_timeout", limits.min_http_timeout, limits.max_http_timeout, out
        )
    if not (0 <= spec.rate_limit <= limits.max_rate_limit):
        out.add("rate_limit", f"must be between 0 and {limits.max_rate_limit}")
    _check_duration(spec.rate_limit_duration, "rate_limit_duration", 0.001, 86400.0, out)
    if spec.retry_policy is not None:
        _check_retry(spec.retry_policy, limits, out)
    check_headers(spec.headers, limits, out)
    if spec.auth is not None:
        _check_auth(spec.auth, spec.headers, limits, out)
    if not spec.content_type or len(spec.content_type) > 256 or _CONTROL.search(spec.content_type):
        out.add("content_type", "must be a media type of at most 256 characters")
    if not (0 <= spec.max_concurrency <= limits.max_concurrency):
        out.add("max_concurrency", f"must be between 0 and {limits.max_concurrency}")
    out.raise_if_any()


def validate_secret(scheme: SignatureScheme, value: str, field: str = "secret") -> None:
    if (problem := signing.check_secret(scheme, value)) is not None:
        raise ValidationError.single(field, problem)


_EVENT_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.:/\-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,256}$")
MAX_TARGETS = 100


_JSON = json.JSONDecoder()


def is_json(data: bytes) -> bool:
    """Whether ``data`` is one JSON document, exactly as ``json.loads`` judges bytes."""
    # Fast path for the usual UTF-8 text: json.loads would first sniff the encoding and
    # decode, which costs more than the parse for small events. Anything the fast path refuses
    # (UTF-16/32, a BOM, bad JSON) gets the full json.loads verdict, so the rule is unchanged.
    try:
        _JSON.decode(data.decode())
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        pass
    else:
        return True
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def event_violations(
    event: EventInput, *, max_payload_bytes: int, limits: Limits, prefix: str = ""
) -> list[FieldViolation]:
    """Every problem of one event to ingest; ``prefix`` places it in a batch (``requests[3].``)."""
    out = _Collector()
    if bool(event.endpoint_ids) == bool(event.owner_id):
        out.add(f"{prefix}endpoint_ids", "give either endpoint_ids or owner_id (exactly one)")
    if len(event.endpoint_ids) > MAX_TARGETS:
        out.add(f"{prefix}endpoint_ids", f"has more than {MAX_TARGETS} entries")
    elif len(set(event.endpoint_ids)) != len(event.endpoint_ids):
        out.add(f"{prefix}endpoint_ids", "names an endpoint twice")
    for i, endpoint_id in enumerate(event.endpoint_ids):
        if not endpoint_id or len(endpoint_id) > 64 or _CONTROL.search(endpoint_id):
            out.add(f"{prefix}endpoint_ids[{i}]", "is not an endpoint id")
    check_owner_id(event.owner_id, f"{prefix}owner_id", out)
    if not _EVENT_TYPE_NAME.match(event.event_type):
        out.add(f"{prefix}event_type", "must be 1-128 characters of letters, digits and _ . : / -")
    if len(event.data) > max_payload_bytes:
        out.add(f"{prefix}data", f"is larger than the limit of {max_payload_bytes} bytes")
    else:
        if not is_json(event.data):
            out.add(f"{prefix}data", "is not valid JSON")
    if event.idempotency_key and not _IDEMPOTENCY_KEY.match(event.idempotency_key):
        out.add(f"{prefix}idempotency_key", "must be 1-256 printable characters without spaces")
    check_headers(event.headers, limits, out, field=f"{prefix}headers")
    return out.violations
