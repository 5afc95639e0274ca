"""One log record per line on stderr, logfmt by default or JSON; journald adds the time.

Every record, whichever library logged it, passes the scrubber on the way out: tokens, secrets,
session cookies and credential-bearing header and query values become [redacted]. aiohttp puts
whole request lines (query strings with portal tokens) and header lines into its parse errors;
the filter sits on convoyd's handler, so no logger can bypass it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

from convoyd.core.request import CREDENTIAL_WORDS

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_CHATTY = ("aiosqlite", "grpc", "asyncio")
REDACTED = "[redacted]"

# Names that mark a value as a credential: the words the API and the attempt log redact header
# values by (convoyd.core.request), as header names, query parameters and field names.
_NAME = r"[\w.-]*(?:" + "|".join(CREDENTIAL_WORDS) + r")[\w.-]*"
# A value ends at whitespace, a quote, a separator, or a backslash (repr escapes like \r\n).
_VALUE = r"[^\s'\"&;,\\<>]+"
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    # convoyd's own tokens and secrets, wherever they appear (a path, a repr, a truncated line):
    # admin cvd_, portal link cvdp_, portal session cvds_, signing whsec_.
    (re.compile(r"(?i)\b(cvd[ps]?_|whsec_)[A-Za-z0-9+/=_-]+"), r"\1" + REDACTED),
    # Authorization schemes: "Bearer xyz", "Basic xyz".
    (re.compile(r"(?i)\b(bearer|basic|digest)(\s+)[A-Za-z0-9+/=._~-]{8,}"), r"\1\2" + REDACTED),
    # Cookie headers: every value of the line (cookie names are not the secret, values are).
    (
        re.compile(r"(?i)\b((?:set-)?cookie['\"]?\s*[:=]\s*['\"]?)[^\r\n'\"\\]+"),
        r"\1" + REDACTED,
    ),
    # name=value (query strings, forms, logfmt) and name: value (headers, dict reprs).
    (re.compile(r"(?i)\b(" + _NAME + r")(['\"]?\s*[:=]\s*['\"]?)" + _VALUE), r"\1\2" + REDACTED),
)
_SENSITIVE_NAME = re.compile(_NAME, re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` with every credential-looking value replaced by [redacted]."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_value(key: str, value: Any) -> Any:
    if _SENSITIVE_NAME.fullmatch(key):
        return REDACTED
    if isinstance(value, str | bytes | bytearray | tuple | list | dict | BaseException):
        return scrub(value if isinstance(value, str) else str(value))
    return value


class Scrubber(logging.Filter):
    """Rewrites each record in place: message (args merged in), exception and stack text, and
    extra fields, all scrubbed. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = scrub(message), None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, scrub(text)
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        fields: MutableMapping[str, Any] = record.__dict__
        for key in [k for k in fields if k not in _STANDARD]:
            fields[key] = _scrub_value(key, fields[key])
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        out["exc"] = record.exc_text
    return out


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\n\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def configure(level: str = "info", fmt: str = "logfmt") -> None:
    """Replaces the root handlers; safe to call again (SIGHUP reload)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(Scrubber())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # debug means convoyd's own debug lines: the libraries' are their internals (aiosqlite logs
    # every statement with its parameters, grpc its event loop bookkeeping).
    quiet = max(root.level, logging.INFO)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
    # aiohttp's access log would print portal URLs; convoyd logs portal access itself.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


# gRPC's C core writes its traces to file descriptor 2 itself, past every Python handler, and
# GRPC_TRACE=all (or http) prints each request's metadata: the admin token's Bearer header.
NATIVE_TRACE_VARIABLES = ("GRPC_TRACE",)


def disable_native_traces(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Removes the variables that switch on gRPC's native traces (before grpc is imported);
    returns those it removed, for the caller to warn about."""
    env = os.environ if environ is None else environ
    removed = [name for name in NATIVE_TRACE_VARIABLES if env.get(name)]
    for name in NATIVE_TRACE_VARIABLES:
        env.pop(name, None)
    return removed
