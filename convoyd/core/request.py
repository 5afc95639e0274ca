"""The headers of one outbound webhook request, and their redacted copy for the attempt log."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from convoyd.core import signing
from convoyd.core.model import Endpoint

REDACTED = "[redacted]"
# Custom header names that usually carry credentials: their values never reach the log.
_SENSITIVE = re.compile(r"auth|token|secret|key|cookie|password|session", re.IGNORECASE)


def build_headers(
    *,
    endpoint: Endpoint,
    keys: Sequence[bytes],
    delivery_id: str,
    timestamp: int,
    body: bytes,
    event_headers: Mapping[str, str],
    user_agent: str,
) -> list[tuple[str, str]]:
    """Content type, identity, signature, authentication, then custom headers.

    The event's headers override the endpoint's custom headers of the same name; neither can
    replace what convoyd sets (validation refuses those names) nor the authentication header.
    """
    spec = endpoint.spec
    headers = [
        ("Content-Type", spec.content_type),
        ("User-Agent", user_agent),
        ("webhook-id", delivery_id),
        ("webhook-timestamp", str(timestamp)),
        *signing.signature_headers(spec.signature, keys, delivery_id, timestamp, body),
    ]
    auth_name = ""
    if spec.auth is not None:
        auth_name = spec.auth.header_name.lower()
        headers.append((spec.auth.header_name, spec.auth.header_value))
    if spec.headers or event_headers:
        custom = {k.lower(): (k, v) for k, v in spec.headers.items()}
        custom.update({k.lower(): (k, v) for k, v in event_headers.items()})
        headers.extend(pair for name, pair in custom.items() if name != auth_name)
    return headers


def redact(headers: Sequence[tuple[str, str]], endpoint: Endpoint) -> tuple[tuple[str, str], ...]:
    """The headers as the attempt log keeps them: credentials replaced by [redacted].

    Signatures stay: they are not secrets, and receivers debugging a mismatch need them.
    """
    auth = endpoint.spec.auth.header_name.lower() if endpoint.spec.auth else None
    return tuple(
        (name, REDACTED if name.lower() == auth or _sensitive(name) else value)
        for name, value in headers
    )


@functools.lru_cache(maxsize=4096)
def _sensitive(name: str) -> bool:
    # Every attempt asks about the same few header names: one regex search per name, not per use.
    return _SENSITIVE.search(name) is not None
