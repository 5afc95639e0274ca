"""Checks caller-supplied values once, on the domain types, and names every bad field.

The rules for URLs and headers themselves are in convoyd/core/http_rules.py, those for an
endpoint's authentication and TLS settings in convoyd/core/auth_rules.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate

from convoyd.core import ids, signing
from convoyd.core.auth_rules import auth_problems, tls_problems
from convoyd.core.http_rules import (
    CONTROL,
    DEFAULT_MAX_HEADER_NAME_LENGTH,
    HEADER_VALUE_BAD,
    SURROGATE,
    TOKEN,
)

# Re-exported: callers and tests import the HTTP checks from here too.
from convoyd.core.http_rules import check_header_name as check_header_name
from convoyd.core.http_rules import check_header_value as check_header_value
from convoyd.core.http_rules import check_url as check_url
from convoyd.core.model import (
    EndpointSpec,
    EventInput,
    RetryPolicy,
    RetryStrategy,
    SignatureScheme,
)
from convoyd.errors import FieldViolation, ValidationError

# Every pattern below is used with fullmatch: "$" would also match before a final newline.
# Event types and owner ids are matched and shown, never interpreted: keep them printable.
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.:/*\-]{1,128}")
_OWNER_ID = re.compile(r"[\x21-\x7e]{1,128}")
# At most this much of a bad value is quoted back in an error message.
EXCERPT_LENGTH = 64

MASK = "********"  # what reads return in place of write-only values


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on caller-supplied values."""

    max_url_length: int = 2048
    max_name_length: int = 200
    max_description_length: int = 2000
    max_event_types: int = 100
    max_headers: int = 32
    max_header_name_length: int = DEFAULT_MAX_HEADER_NAME_LENGTH
    max_header_value_length: int = 4096
    max_http_timeout: float = 60.0
    min_http_timeout: float = 0.1
    max_rate_limit: int = 1_000_000
    max_retries: int = 50
    max_retry_delay: float = 7 * 86400.0
    max_concurrency: int = 256
    #: Each username, password, OAuth2 client id, client secret and audience.
    max_credential_length: int = 1024
    max_scopes: int = 50
    #: Each PEM text of an endpoint's TLS settings (a certificate chain, a key, a CA bundle).
    max_pem_length: int = 65536


class _Collector:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def extend(self, problems: Iterable[tuple[str, str]]) -> None:
        for field, description in problems:
            self.add(field, description)

    def raise_if_any(self) -> None:
        if self.violations:
            raise ValidationError(self.violations)


def excerpt(value: str, limit: int = EXCERPT_LENGTH) -> str:
    """``value`` quoted for an error message: its first ``limit`` characters at most."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + "..."


def check_headers(
    headers: Mapping[str, str], limits: Limits, out: _Collector, field: str = "headers"
) -> None:
    if len(headers) > limits.max_headers:
        out.add(field, f"has more than {limits.max_headers} entries")
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"{field}[{excerpt(name)}]" if TOKEN.fullmatch(name) else field
        if (problem := check_header_name(name, limits)) is not None:
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


def _check_text(
    value: str, field: str, max_length: int, out: _Collector, *, single_line: bool
) -> None:
    if len(value) > max_length:
        out.add(field, f"is longer than {max_length} characters")
    if single_line and CONTROL.search(value):
        out.add(field, "must not contain control characters")
    elif "\x00" in value:
        out.add(field, "must not contain NUL")
    elif SURROGATE.search(value):
        out.add(field, "contains a lone surrogate, which is not a character")


def check_event_types(types: Iterable[str], field: str, limit: int, out: _Collector) -> None:
    seen: set[str] = set()
    for i, event_type in enumerate(types):
        if i >= limit:
            out.add(field, f"has more than {limit} entries")
            break
        if not _EVENT_TYPE.fullmatch(event_type):
            out.add(f"{field}[{i}]", "must be 1-128 characters of letters, digits and _ . : / * -")
        elif event_type in seen:
            out.add(f"{field}[{i}]", "is given twice")
        seen.add(event_type)


def check_owner_id(owner_id: str, field: str, out: _Collector) -> None:
    if owner_id and not _OWNER_ID.fullmatch(owner_id):
        out.add(field, "must be 1-128 printable characters without spaces")


# What each resource id looks like (convoyd.core.ids): the prefix, "_", 26 Crockford digits.
ID_KINDS = {
    "ep": "an endpoint id",
    "ev": "an event id",
    "dl": "a delivery id",
    "pl": "a portal link id",
}


def id_problem(prefix: str, value: str) -> str | None:
    """Why ``value`` cannot be an id with ``prefix``, or None. An id convoyd never issues is
    refused before any lookup (INVALID_ARGUMENT, never echoed whole), so it costs no query
    and its text never reaches an error message."""
    if not value:
        return "is required"
    if not ids.is_valid_id(prefix, value):
        return f"is not {ID_KINDS[prefix]} ({prefix}_ and 26 characters of 0-9 A-Z)"
    return None


def require_id(prefix: str, value: str, field: str) -> None:
    """Raises ValidationError naming ``field`` unless ``value`` is an id with ``prefix``."""
    if (problem := id_problem(prefix, value)) is not None:
        raise ValidationError.single(field, problem)


def optional_id(prefix: str, value: str, field: str, out: _Collector) -> None:
    """A filter's id: empty means no filter; anything else must have the id's shape."""
    if value and (problem := id_problem(prefix, value)) is not None:
        out.add(field, problem)


def check_event_type_filter(event_type: str, field: str, out: _Collector) -> None:
    """A listing's event type filter: empty, or an event type as events carry them."""
    if event_type and not _EVENT_TYPE_NAME.fullmatch(event_type):
        out.add(field, "must be 1-128 characters of letters, digits and _ . : / -")


def filter_violations(
    *,
    endpoint_ids: Iterable[tuple[str, str]] = (),
    event_ids: Iterable[tuple[str, str]] = (),
    owner_ids: Iterable[tuple[str, str]] = (),
    event_types: Iterable[tuple[str, str]] = (),
) -> None:
    """Checks a listing's filters, given as (field, value) pairs; raises ValidationError
    naming every bad one. Empty values mean "no filter" and pass."""
    out = _Collector()
    for field, value in endpoint_ids:
        optional_id("ep", value, field, out)
    for field, value in event_ids:
        optional_id("ev", value, field, out)
    for field, value in owner_ids:
        check_owner_id(value, field, out)
    for field, value in event_types:
        check_event_type_filter(value, field, out)
    out.raise_if_any()


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
        out.extend(auth_problems(spec.auth, spec.headers, limits))
    if spec.tls is not None:
        out.extend(tls_problems(spec.tls, spec.url, limits))
    if (
        not spec.content_type
        or len(spec.content_type) > 256
        or CONTROL.search(spec.content_type)
        or HEADER_VALUE_BAD.search(spec.content_type)
    ):
        out.add("content_type", "must be a media type of at most 256 characters")
    if not (0 <= spec.max_concurrency <= limits.max_concurrency):
        out.add("max_concurrency", f"must be between 0 and {limits.max_concurrency}")
    out.raise_if_any()


def validate_secret(scheme: SignatureScheme, value: str, field: str = "secret") -> None:
    if (problem := signing.check_secret(scheme, value)) is not None:
        raise ValidationError.single(field, problem)


_EVENT_TYPE_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,128}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,256}")
MAX_TARGETS = 100

# How deeply event data may nest arrays and objects. Python's parser recurses once per level
# (RecursionError near 1,000, less on a deep stack), and receivers' parsers have limits too
# (Ruby's JSON refuses more than 100 by default, serde_json 128): 100 suits them all.
MAX_JSON_DEPTH = 100

_JSON = json.JSONDecoder()
# A JSON string, escapes included (the unrolled form: no backtracking per character).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 and -1 as signed bytes


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays and objects more than ``limit`` deep (for text that is
    not JSON: whether a parser would go that deep before failing). No recursion, and no Python
    loop per character: a 1 MB document of brackets takes some 30 ms."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to nest that deep
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    steps = array("b", brackets.translate(_STEPS))
    return max(accumulate(steps), default=0) > limit


def _json_texts(data: bytes) -> Iterator[str]:
    # The usual UTF-8 first: json.loads would sniff the encoding and decode, which costs more
    # than the parse for small events. Then json.loads' own decoding (UTF-16/32, a BOM).
    with contextlib.suppress(UnicodeDecodeError):
        yield data.decode()
    with contextlib.suppress(UnicodeDecodeError, LookupError):
        yield data.decode(json.detect_encoding(data), "surrogatepass")


def json_problem(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``data`` is not one JSON document as ``json.loads`` judges bytes (or nests deeper
    than ``max_depth``), or None."""
    for text in _json_texts(data):
        if nested_deeper_than(text, max_depth):
            return f"nests arrays and objects more than {max_depth} levels deep"
        try:
            _JSON.decode(text)
        except ValueError:  # JSONDecodeError; RecursionError cannot happen at this depth
            continue
        return None
    return "is not valid JSON"


def is_json(data: bytes) -> bool:
    """Whether ``data`` is one JSON document of at most MAX_JSON_DEPTH levels."""
    return json_problem(data) is None


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
    for i, endpoint_id in enumerate(event.endpoint_ids[:MAX_TARGETS]):
        if (problem := id_problem("ep", endpoint_id)) is not None:
            out.add(f"{prefix}endpoint_ids[{i}]", problem)
    check_owner_id(event.owner_id, f"{prefix}owner_id", out)
    if not _EVENT_TYPE_NAME.fullmatch(event.event_type):
        out.add(f"{prefix}event_type", "must be 1-128 characters of letters, digits and _ . : / -")
    if len(event.data) > max_payload_bytes:
        out.add(f"{prefix}data", f"is larger than the limit of {max_payload_bytes} bytes")
    elif (problem := json_problem(event.data)) is not None:
        out.add(f"{prefix}data", problem)
    if event.idempotency_key and not _IDEMPOTENCY_KEY.fullmatch(event.idempotency_key):
        out.add(f"{prefix}idempotency_key", "must be 1-256 printable characters without spaces")
    check_headers(event.headers, limits, out, field=f"{prefix}headers")
    return out.violations
