"""The rules for how convoyd proves itself to an endpoint: its API key, basic or OAuth2
credentials, and the text of its TLS settings.

Pure, like http_rules: each check returns (field, problem) pairs, fields named as the API names
them (``authentication.oauth2.token_url``); convoyd/core/validation.py collects them with the
rest of the spec's. The PEM itself is read outside core, by convoyd/tls_material.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from convoyd.core.http_rules import (
    CONTROL,
    SURROGATE,
    check_header_name,
    check_header_value,
    check_url,
)
from convoyd.core.model import ApiKeyAuth, BasicAuth, EndpointAuth, EndpointTls, OAuth2Auth
from convoyd.core.request import is_placeholder

Problems = list[tuple[str, str]]

# An OAuth2 scope-token (RFC 6749 §3.3): printable ASCII but space, '"' and '\'.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")
_MASKED = "is the masked placeholder; send the real value"


class AuthLimits(Protocol):
    """The bounds these checks need (convoyd.core.validation.Limits has them)."""

    @property
    def max_url_length(self) -> int: ...
    @property
    def max_header_name_length(self) -> int: ...
    @property
    def max_header_value_length(self) -> int: ...
    @property
    def max_credential_length(self) -> int: ...
    @property
    def max_scopes(self) -> int: ...
    @property
    def max_pem_length(self) -> int: ...


def auth_problems(auth: EndpointAuth, headers: Mapping[str, str], limits: AuthLimits) -> Problems:
    """Everything wrong with ``auth``, and with custom ``headers`` that would clash with it."""
    if isinstance(auth, ApiKeyAuth):
        return _api_key_problems(auth, headers, limits)
    if isinstance(auth, BasicAuth):
        method, found = "basic", _basic_problems(auth, limits)
    else:
        method, found = "oauth2", _oauth2_problems(auth, limits)
    # Both send Authorization themselves: a custom one would be a second, conflicting one.
    found += [
        (f"headers[{name!r}]", f"is set by authentication.{method}; drop one")
        for name in headers
        if name.lower() == "authorization"
    ]
    return found


def tls_problems(tls: EndpointTls, url: str, limits: AuthLimits) -> Problems:
    """What is wrong with ``tls`` short of parsing its PEM, for an endpoint at ``url``."""
    cert, key = tls.client_certificate_pem, tls.client_key_pem
    if not (cert or key or tls.ca_pem):
        return []  # nothing set: the same as no TLS settings at all
    found: Problems = []
    if urlsplit(url).scheme != "https":
        found.append(("tls", "needs an https url: client certificates and ca_pem apply to TLS"))
    if is_placeholder(key):
        found.append(
            (
                "tls.client_key_pem",
                f"{_MASKED} (the stored key is kept only for the same certificate or a new one"
                " it belongs to)",
            )
        )
    elif key and not cert:
        found.append(("tls.client_certificate_pem", "is required with client_key_pem"))
    if cert and not key:
        found.append(("tls.client_key_pem", "is required with client_certificate_pem"))
    for name, value in (("client_certificate_pem", cert), ("client_key_pem", key)):
        if (problem := _text_problem(value, limits.max_pem_length, single_line=False)) is not None:
            found.append((f"tls.{name}", problem))
    if (problem := _text_problem(tls.ca_pem, limits.max_pem_length, single_line=False)) is not None:
        found.append(("tls.ca_pem", problem))
    return found


def _api_key_problems(auth: ApiKeyAuth, headers: Mapping[str, str], limits: AuthLimits) -> Problems:
    where = "authentication.api_key"
    found: Problems = []
    if (problem := check_header_name(auth.header_name, limits)) is not None:
        found.append((f"{where}.header_name", problem))
    elif auth.header_name.lower() in {h.lower() for h in headers}:
        found.append((f"{where}.header_name", "is also a custom header"))
    if not auth.header_value:
        found.append((f"{where}.header_value", "is required"))
    elif is_placeholder(auth.header_value):
        found.append((f"{where}.header_value", _MASKED))
    elif (problem := check_header_value(auth.header_value, limits)) is not None:
        found.append((f"{where}.header_value", problem))
    return found


def _basic_problems(auth: BasicAuth, limits: AuthLimits) -> Problems:
    where = "authentication.basic"
    found = _credential(auth.username, f"{where}.username", limits)
    if ":" in auth.username:
        found.append((f"{where}.username", "must not contain ':' (it ends the username)"))
    found += _credential(auth.password, f"{where}.password", limits, kept_for="username")
    return found


def _oauth2_problems(auth: OAuth2Auth, limits: AuthLimits) -> Problems:
    where = "authentication.oauth2"
    found: Problems = []
    if (problem := _token_url_problem(auth.token_url, limits)) is not None:
        found.append((f"{where}.token_url", problem))
    found += _credential(auth.client_id, f"{where}.client_id", limits)
    found += _credential(
        auth.client_secret, f"{where}.client_secret", limits, kept_for="token_url and client_id"
    )
    if len(auth.scopes) > limits.max_scopes:
        found.append((f"{where}.scopes", f"has more than {limits.max_scopes} entries"))
    seen: set[str] = set()
    for i, scope in enumerate(auth.scopes[: limits.max_scopes]):
        if not _SCOPE.fullmatch(scope):
            found.append(
                (
                    f"{where}.scopes[{i}]",
                    "must be 1-256 printable ASCII characters without spaces, quotes or"
                    " backslashes",
                )
            )
        elif scope in seen:
            found.append((f"{where}.scopes[{i}]", "is given twice"))
        seen.add(scope)
    problem = _text_problem(auth.audience, limits.max_credential_length, single_line=True)
    if problem is not None:
        found.append((f"{where}.audience", problem))
    return found


def _credential(value: str, field: str, limits: AuthLimits, *, kept_for: str = "") -> Problems:
    """A required single-line value; with ``kept_for``, a write-only one, which may be the mask
    only where a stored value stands in for it: for the same ``kept_for``."""
    if not value:
        return [(field, "is required")]
    if kept_for and is_placeholder(value):
        return [(field, f"{_MASKED} (the stored one is kept only for the same {kept_for})")]
    problem = _text_problem(value, limits.max_credential_length, single_line=True)
    return [] if problem is None else [(field, problem)]


def _token_url_problem(url: str, limits: AuthLimits) -> str | None:
    """The endpoint URL's rules, and https unless the token server is on this host: the client
    secret is sent to it."""
    if (problem := check_url(url, limits)) is not None:
        return problem
    parts = urlsplit(url)
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        return "must be an https URL (http only to a loopback address): the client secret is sent"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text_problem(value: str, max_length: int, *, single_line: bool) -> str | None:
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if single_line and CONTROL.search(value):
        return "must not contain control characters"
    if "\x00" in value:
        return "must not contain NUL"
    if SURROGATE.search(value):
        return "contains a lone surrogate, which is not a character"
    return None
