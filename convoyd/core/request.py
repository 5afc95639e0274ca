"""The headers of one outbound webhook request, and the one redaction rule for showing headers.

Every place that shows a header value (the attempt log, GetEndpoint and ListEndpoints, GetEvent
and ListEvents, attempts in the API and the portal, the CLI through the API) goes through
``redact_pairs`` / ``redact_map``: a value is a credential when its header's name contains one
of CREDENTIAL_WORDS, when it is the endpoint's API-key header, or when the value itself opens
with an HTTP authentication scheme (``Bearer …``) or one of convoyd's token prefixes.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Mapping, Sequence

from convoyd.core import signing
from convoyd.core.model import ApiKeyAuth, BasicAuth, Endpoint, EndpointAuth

REDACTED = "[redacted]"
# Words in header names that usually carry credentials (X-Api-Key, Authorization, Cookie,
# X-Auth-Token, Set-Cookie, X-Session-Id...). The log scrubber recognises the same words.
CREDENTIAL_WORDS = (
    "auth",
    "token",
    "secret",
    "key",
    "cookie",
    "password",
    "passwd",
    "session",
    "credential",
)
_SENSITIVE = re.compile("|".join(CREDENTIAL_WORDS), re.IGNORECASE)
# Values that are credentials whatever their header is called.
_CREDENTIAL_VALUE = re.compile(r"(?i)\s*(bearer|basic|digest|negotiate)\s|\s*(cvd[ps]?_|whsec_)")


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
    # No custom or event header may take the credentials' header. OAuth2's bearer token is not
    # added here: the attempt fetches it (convoyd.delivery.oauth2) and adds it after.
    auth = spec.auth
    auth_name = ""
    if auth is not None:
        auth_name = auth_header_name(auth).lower()
        if isinstance(auth, ApiKeyAuth):
            headers.append((auth.header_name, auth.header_value))
        elif isinstance(auth, BasicAuth):
            headers.append(("Authorization", basic_authorization(auth.username, auth.password)))
    if spec.headers or event_headers:
        custom = {k.lower(): (k, v) for k, v in spec.headers.items()}
        custom.update({k.lower(): (k, v) for k, v in event_headers.items()})
        headers.extend(pair for name, pair in custom.items() if name != auth_name)
    return headers


def basic_authorization(username: str, password: str) -> str:
    """The Authorization value of HTTP basic (RFC 7617): ``Basic base64(user:password)``, UTF-8
    (the charset RFC 7617 lets a server ask for, and the only one that holds any text)."""
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def bearer_authorization(token: str) -> str:
    """The Authorization value that carries an OAuth2 access token (RFC 6750 §2.1)."""
    return "Bearer " + token


def redact(headers: Sequence[tuple[str, str]], endpoint: Endpoint) -> tuple[tuple[str, str], ...]:
    """The headers as the attempt log keeps them: credentials replaced by [redacted].

    Signatures stay: they are not secrets, and receivers debugging a mismatch need them.
    """
    return redact_pairs(headers, auth_header=auth_header_name(endpoint.spec.auth))


def auth_header_name(auth: EndpointAuth | None) -> str:
    """The header that carries the endpoint's credentials: the API key's own, Authorization for
    basic and OAuth2 (bearer), "" without authentication."""
    if auth is None:
        return ""
    if isinstance(auth, ApiKeyAuth):
        return auth.header_name
    return "Authorization"


def is_credential(name: str, value: str, auth_header: str = "") -> bool:
    """The rule: does this header's value stay hidden wherever headers are shown?"""
    if auth_header and name.lower() == auth_header.lower():
        return True
    return _sensitive(name) or _CREDENTIAL_VALUE.match(value) is not None


def redact_pairs(
    headers: Iterable[tuple[str, str]], *, auth_header: str = ""
) -> tuple[tuple[str, str], ...]:
    """(name, value) pairs with every credential value replaced by [redacted]."""
    return tuple(
        (name, REDACTED if is_credential(name, value, auth_header) else value)
        for name, value in headers
    )


def redact_map(headers: Mapping[str, str], *, auth_header: str = "") -> dict[str, str]:
    """``redact_pairs`` for a name → value mapping."""
    return dict(redact_pairs(headers.items(), auth_header=auth_header))


def is_placeholder(value: str) -> bool:
    """A value a read returned in place of the real one ([redacted], or the ******** mask)."""
    return value == REDACTED or (bool(value) and set(value) == {"*"})


def keep_hidden_values(
    new: Mapping[str, str], stored: Mapping[str, str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """An update's custom headers with each placeholder value (as reads show credentials)
    replaced by the stored value of that header, so a read-modify-write keeps credentials it
    never saw. Returns the headers and the names that hold a placeholder but have no stored
    value (the caller refuses those)."""
    by_name = {k.lower(): v for k, v in stored.items()}
    out: dict[str, str] = {}
    missing: list[str] = []
    for name, value in new.items():
        if is_placeholder(value):
            if name.lower() in by_name:
                value = by_name[name.lower()]
            else:
                missing.append(name)
        out[name] = value
    return out, tuple(missing)


@functools.lru_cache(maxsize=4096)
def _sensitive(name: str) -> bool:
    # Every attempt asks about the same few header names: one regex search per name, not per use.
    return _SENSITIVE.search(name) is not None
