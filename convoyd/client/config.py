"""Where the client connects, which token it sends, and request-building helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from google.protobuf import duration_pb2, timestamp_pb2

# google.rpc ships no type information; unused-ignore keeps this valid once an override exists.
from convoyd.v1 import (
    event_pb2,
)

DEFAULT_TARGET: Final = "127.0.0.1:7400"
DEFAULT_DATA_DIR: Final = "./convoyd-data"
TOKEN_FILE: Final = "admin.token"  # noqa: S105 - a file name, not a secret


def duration(seconds: float) -> duration_pb2.Duration:
    """A Duration of ``seconds`` (fractions kept to the nanosecond)."""
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("timestamps need an aware datetime (e.g. datetime.now(UTC))")
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def resolve_target(target: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """``target``, else ``CONVOYD_GRPC_LISTEN`` (a wildcard listen host becomes loopback)."""
    if target:
        return target
    listen = (os.environ if env is None else env).get("CONVOYD_GRPC_LISTEN", "") or DEFAULT_TARGET
    host, sep, port = listen.rpartition(":")
    if sep and host in ("0.0.0.0", "", "*"):  # noqa: S104 - recognising, not binding, a wildcard
        return f"127.0.0.1:{port}"
    if sep and host == "[::]":
        return f"[::1]:{port}"
    return listen


def resolve_token(
    token: str | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """``token``, else ``CONVOYD_TOKEN``, else ``<data_dir>/admin.token``; None when none is found.

    data_dir is the argument, else ``CONVOYD_DATA_DIR``, else ``./convoyd-data``.
    """
    environ = os.environ if env is None else env
    if token:
        return token
    if environ.get("CONVOYD_TOKEN"):
        return environ["CONVOYD_TOKEN"]
    directory = Path(data_dir or environ.get("CONVOYD_DATA_DIR") or DEFAULT_DATA_DIR)
    try:
        found = (directory / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return found or None


def event_request(
    *,
    event_type: str,
    data: Any,
    endpoint_ids: Sequence[str] = (),
    owner_id: str = "",
    idempotency_key: str = "",
    headers: Mapping[str, str] | None = None,
) -> event_pb2.CreateEventRequest:
    """A CreateEventRequest. ``data``: bytes and str are sent as they are (JSON text);
    anything else is encoded with ``json.dumps``."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return event_pb2.CreateEventRequest(
        endpoint_ids=list(endpoint_ids),
        owner_id=owner_id,
        event_type=event_type,
        data=payload,
        idempotency_key=idempotency_key,
        headers=dict(headers or {}),
    )


def timestamp_or_none(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    return None if when is None else timestamp(when)
