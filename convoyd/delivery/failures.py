"""What a failed send is called: its error kind and the one-line text of the attempt log.

The texts go to the attempt log and the portal, so they are short and never carry request
details: only the exception's own fields are read, never ``str()`` of aiohttp errors, which
can embed the request's headers.
"""

from __future__ import annotations

import errno
import re
import ssl
import types
from collections.abc import Sequence

import aiohttp

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.guard import BlockedAddressError

# Error texts go to the attempt log and the portal: one short line.
_MAX_ERROR_CHARS = 200

# errno → text for connection-level failures; anything else says "connection failed: <strerror>".
_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by the receiver",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
}


def describe(exc: BaseException, timeout: float, host: str) -> tuple[ErrorKind, str]:
    """The error kind and text for a failed send. Uses only the exception's own fields, never
    ``str(exc)`` of aiohttp errors that embed request details."""
    if isinstance(exc, TimeoutError):  # includes aiohttp's ServerTimeoutError
        return ErrorKind.TIMEOUT, f"timed out after {timeout:g}s"
    if isinstance(exc, aiohttp.ClientSSLError):
        return _tls(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect(exc, host)
    for kind, text in _FIXED_TEXTS:
        if isinstance(exc, kind):
            return ErrorKind.NETWORK, text
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised for an unparsable status line or headers; ``message`` is the parser's complaint.
        return ErrorKind.NETWORK, _short(f"invalid HTTP response: {exc.message}")
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.NETWORK, _short(f"TLS error: {_ssl_detail(exc)}")
    if isinstance(exc, OSError):  # ClientOSError and ClientConnectionResetError included
        return _os_error(exc)
    return ErrorKind.NETWORK, f"HTTP client error ({type(exc).__name__})"


# Errors whose text says all there is, checked in this order (before ClientResponseError).
_FIXED_TEXTS: tuple[tuple[type[BaseException] | types.UnionType, str], ...] = (
    (aiohttp.ServerDisconnectedError, "server disconnected"),
    (aiohttp.ClientPayloadError, "invalid HTTP response body"),
    (aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError, "invalid URL"),
)


def _tls(exc: aiohttp.ClientSSLError) -> tuple[ErrorKind, str]:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or str(cert)
        return ErrorKind.NETWORK, _short(f"TLS certificate verification failed: {detail}")
    return ErrorKind.NETWORK, _short(f"TLS handshake failed: {_ssl_detail(exc.os_error)}")


def _connect(exc: aiohttp.ClientConnectorError, host: str) -> tuple[ErrorKind, str]:
    cause = exc.os_error
    if isinstance(cause, BlockedAddressError):
        return ErrorKind.BLOCKED, _short(str(cause))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        detail = cause.strerror or type(cause).__name__
        return ErrorKind.NETWORK, _short(f"DNS lookup failed for {host} ({detail})")
    return _os_error(cause)


# What aiohttp refuses in a request header name or value: every control byte but HTAB.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_NAME_CHARS = 40


def describe_refused(exc: BaseException, headers: Sequence[tuple[str, str]]) -> str:
    """The text for a request that failed before any answer for a reason of convoyd's own (the
    HTTP client refused it, or a bug): the header at fault when one is found, by name only
    (values carry signatures and API keys), else the exception's type."""
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            return "a request header is not text; the request was not sent"
        if _FORBIDDEN.search(name):
            return f"request header name {_shown(name)} has a control character; not sent"
        if _FORBIDDEN.search(value):
            return f"request header {_shown(name)} has a control character in its value; not sent"
    return _short(f"the request could not be sent ({type(exc).__name__})")


def _shown(name: str) -> str:
    """A short, printable form of a header name for the attempt log."""
    text = name[:_MAX_NAME_CHARS].encode("unicode_escape").decode("ascii")
    return text + ("…" if len(name) > _MAX_NAME_CHARS else "")


def _os_error(exc: OSError) -> tuple[ErrorKind, str]:
    if exc.errno == errno.ETIMEDOUT:
        return ErrorKind.TIMEOUT, "connection timed out"
    text = _ERRNO_TEXT.get(exc.errno or 0)
    if text is None and isinstance(exc, ConnectionResetError):
        text = "connection reset"
    return ErrorKind.NETWORK, text or _short(f"connection failed: {exc.strerror or exc}")


def _ssl_detail(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else str(exc)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"
