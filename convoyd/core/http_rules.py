"""The HTTP rules for webhook destinations: which URLs and header names and values can be sent.

Pure: the checks return why a value cannot be sent, or None; convoyd/core/validation.py collects
them into field violations.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from convoyd.core.addresses import url_host_problem

DEFAULT_MAX_HEADER_NAME_LENGTH = 256


class HttpLimits(Protocol):
    """The bounds these checks need (convoyd.core.validation.Limits has them)."""

    @property
    def max_url_length(self) -> int: ...
    @property
    def max_header_name_length(self) -> int: ...
    @property
    def max_header_value_length(self) -> int: ...


# Every pattern below is used with fullmatch: "$" would also match before a final newline.
# RFC 9110 token characters: what a header name may be made of.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the HTTP client refuses in a header value (aiohttp raises ValueError on every control
# character but HTAB), plus lone surrogates: aiohttp's C writer silently drops them and its
# pure-Python writer raises UnicodeEncodeError. Other non-ASCII characters are sent as UTF-8,
# whose bytes are all RFC 9110 obs-text (0x80-0xFF), and arrive intact.
HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
SURROGATE = re.compile(r"[\ud800-\udfff]")

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


def check_url(url: str, limits: HttpLimits, field: str = "url") -> str | None:
    """Why ``url`` cannot be a webhook destination, or None.

    Only URLs the HTTP client can send to pass: the host rules are in
    ``convoyd.core.addresses.url_host_problem``.
    """
    if (problem := _url_text_problem(url, limits)) is not None:
        return problem
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced or non-IPv6 [bracketed] host
        return "is not a valid URL (bad host)"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or above 65535
        return "has a port that is not a number from 1 to 65535"
    if (problem := _url_parts_problem(parts, port)) is not None:
        return problem
    host = parts.netloc.rpartition("@")[2]
    host = host[1 : host.index("]")] if host.startswith("[") else host.partition(":")[0]
    return url_host_problem(host, bracketed=parts.netloc.startswith("["))


def _url_text_problem(url: str, limits: HttpLimits) -> str | None:
    """What is wrong with ``url`` as a string, before it is parsed."""
    if not url:
        return "is required"
    if len(url) > limits.max_url_length:
        return f"is longer than {limits.max_url_length} characters"
    if CONTROL.search(url) or " " in url:
        return "contains spaces or control characters"
    if SURROGATE.search(url):
        return "contains a lone surrogate, which is not a character"
    return None


def _url_parts_problem(parts: SplitResult, port: int | None) -> str | None:
    """What is wrong with a parsed URL apart from its host."""
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if "@" in parts.netloc:
        return "must not carry credentials; use authentication instead"
    if not parts.hostname:
        return "has no host"
    if parts.fragment:
        return "must not have a #fragment"
    if port == 0:
        return "has port 0"
    return None


def check_header_name(name: str, limits: HttpLimits | None = None) -> str | None:
    longest = DEFAULT_MAX_HEADER_NAME_LENGTH if limits is None else limits.max_header_name_length
    if len(name) > longest:
        return f"is longer than {longest} characters"
    if not TOKEN.fullmatch(name):
        return "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    if name.lower() in RESERVED_HEADERS:
        return "is set by convoyd and cannot be overridden"
    return None


def check_header_value(value: str, limits: HttpLimits) -> str | None:
    """Why the HTTP client could not send ``value`` as a header value, or None: the RFC 9110
    field-value rule (visible characters, space, tab) as aiohttp enforces it."""
    if len(value) > limits.max_header_value_length:
        return f"is longer than {limits.max_header_value_length} characters"
    if (bad := HEADER_VALUE_BAD.search(value)) is not None:
        char = ord(bad.group())
        if 0xD800 <= char <= 0xDFFF:
            return f"contains a lone surrogate (U+{char:04X}), which is not a character"
        return (
            f"contains the control character U+{char:04X}; only visible characters, space"
            " and tab can be sent"
        )
    return None
