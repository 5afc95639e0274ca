"""The endpoint form's values both ways: what an endpoint fills the form with, and the
EndpointSpec fields a posted form asks for (with what is not even a number or a header).

Custom headers are typed one per line, ``Name: value``. The form shows a credential-like value
as ``[redacted]`` (the API's one redaction rule), and ``[redacted]`` posted back keeps the stored
value (the service's rule for every read-modify-write).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from convoyd.core.model import EndpointSpec, Ordering, RetryPolicy, SignatureScheme
from convoyd.core.request import auth_header_name, redact_map
from convoyd.errors import FieldViolation
from convoyd.portal import credentials, retry_form

FORM_FIELDS = (
    *("owner_id", "name", "url", "description", "event_types", "rate_limit", "headers"),
    *("http_timeout", "scheme", "ordering", *credentials.FIELDS, *retry_form.FIELDS),
)
# Where a violation of a spec field is shown on the form (by its path without list indexes,
# or its first name).
FIELD_OF = {
    "signature": "scheme",
    "rate_limit_duration": "rate_limit",
    **credentials.FIELD_OF,
    **retry_form.FIELD_OF,
}


async def posted(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {
        k: credentials.posted(k, v) for k in FORM_FIELDS if isinstance(v := form.get(k, ""), str)
    }


def headers_text(spec: EndpointSpec) -> str:
    """The custom headers as the form shows them: credentials as [redacted]."""
    shown = redact_map(spec.headers, auth_header=auth_header_name(spec.auth))
    return "\n".join(f"{name}: {value}" for name, value in shown.items())


def parse_headers(text: str, bad: list[FieldViolation]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            bad.append(FieldViolation("headers", f"line {number} is not Name: value"))
            continue
        headers[name.strip()] = value.strip()
    return headers


def shown_values(spec: EndpointSpec) -> dict[str, str]:
    """The form as an endpoint fills it (secrets masked, credential headers redacted)."""
    return {
        "name": spec.name,
        "url": spec.url,
        "description": spec.description,
        "event_types": ", ".join(spec.event_types),
        "rate_limit": str(spec.rate_limit),
        "http_timeout": f"{spec.http_timeout:g}" if spec.http_timeout else "",
        "scheme": spec.signature.scheme.value,
        "ordering": spec.ordering.value,
        "headers": headers_text(spec),
        **credentials.shown_values(spec),
        **retry_form.shown_values(spec.retry_policy),
    }


def spec_values(
    values: Mapping[str, str], stored_retry: RetryPolicy | None = None
) -> tuple[dict[str, Any], list[FieldViolation]]:
    """The form's values as EndpointSpec fields (``scheme`` for the signature's), and the
    ones that are not even numbers; the service checks everything else."""
    bad: list[FieldViolation] = []
    out: dict[str, Any] = {
        "name": values.get("name", ""),
        "url": values.get("url", ""),
        "description": values.get("description", ""),
        "event_types": tuple(
            t for t in values.get("event_types", "").replace(",", " ").split() if t
        ),
        "headers": parse_headers(values.get("headers", ""), bad),
    }
    try:
        out["rate_limit"] = int(values.get("rate_limit") or 0)
    except ValueError:
        bad.append(FieldViolation("rate_limit", "must be a whole number"))
    timeout = values.get("http_timeout", "")
    try:
        out["http_timeout"] = float(timeout) if timeout else None
    except ValueError:
        bad.append(FieldViolation("http_timeout", "must be a number of seconds"))
    try:
        out["scheme"] = SignatureScheme(values.get("scheme") or SignatureScheme.STANDARD.value)
    except ValueError:
        bad.append(FieldViolation("signature.scheme", "is not a signature scheme"))
    try:
        out["ordering"] = Ordering(values.get("ordering") or Ordering.CONCURRENT.value)
    except ValueError:
        bad.append(FieldViolation("ordering", "is not an ordering (concurrent or fifo)"))
    out["retry_policy"], wrong_retry = retry_form.spec_value(values, stored_retry)
    proofs, wrong = credentials.spec_values(values)
    return out | proofs, bad + wrong_retry + wrong


def changed_fields(spec: EndpointSpec, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The posted fields that differ from what the edit form showed for ``spec``: a field
    posted back as shown (masks and [redacted] included) is no change."""
    as_shown, _ = spec_values(credentials.normalized(shown_values(spec)), spec.retry_policy)
    return {k: v for k, v in fields.items() if as_shown.get(k, getattr(spec, k, None)) != v}
