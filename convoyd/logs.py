"""One log record per line on stderr, logfmt by default or JSON; journald adds the time."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_CHATTY = ("aiosqlite", "grpc", "asyncio")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
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
