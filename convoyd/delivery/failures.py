"""What a failed send is called: its error kind and the one-line text of the attempt log.

The texts go to the attempt log and the portal, so they are short and never carry request
details: only the exception's own fields are read, never ``str()`` of aiohttp errors, which
can embed the request's headers.
"""

from __future__ import annotations

import errno
import ssl

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
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            cert = exc.certificate_error
            detail = getattr(cert, "verify_message", None) or str(cert)
            return ErrorKind.NETWORK, _short(f"TLS certificate verification failed: {detail}")
        return ErrorKind.NETWORK, _short(f"TLS handshake failed: {_ssl_detail(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, BlockedAddressError):
            return ErrorKind.BLOCKED, _short(str(cause))
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            detail = cause.strerror or type(cause).__name__
            return ErrorKind.NETWORK, _short(f"DNS lookup failed for {host} ({detail})")
        return _os_error(cause)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorKind.NETWORK, "server disconnected"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised for an unparsable status line or headers; ``message`` is the parser's complaint.
        return ErrorKind.NETWORK, _short(f"invalid HTTP response: {exc.message}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorKind.NETWORK, "invalid HTTP response body"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return ErrorKind.NETWORK, "invalid URL"
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.NETWORK, _short(f"TLS error: {_ssl_detail(exc)}")
    if isinstance(exc, OSError):  # ClientOSError and ClientConnectionResetError included
        return _os_error(exc)
    return ErrorKind.NETWORK, f"HTTP client error ({type(exc).__name__})"


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
