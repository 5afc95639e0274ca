"""The socketpair protocol between the daemon and its sender workers: frames and reports.

A frame is a length-prefixed pickle of ``(kind, payload)``. Both sides are convoyd, started by
the daemon over a private socketpair, so the pickles come from a trusted peer. Reports cross as
plain tuples of fields (``report_fields``/``report``), not as ``AttemptReport`` objects, so a
worker and the daemon agree on the wire form without sharing class identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import struct
from collections.abc import Callable, Sequence
from typing import Any

from convoyd.core.outcome import ErrorKind
from convoyd.delivery.sender import AttemptReport, OutboundRequest
from convoyd.delivery.tls import TlsMaterial

LENGTH = struct.Struct("!I")
# Frame kinds.
# parent -> child: [(id, url, headers, body, timeout[, body_limit, tls]), ...]; the last two
# only when a request has either (see request_fields), tls as TlsMaterial.fields() or None.
SEND = 0
REPORTS = 1  # child -> parent: [(id, report fields...), ...]
ALLOW = 2  # parent -> child: new allow-list
READY = 3  # child -> parent: the sender is started; requests can come


def frame(kind: int, payload: Any) -> bytes:
    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return LENGTH.pack(len(data)) + data


def batch(kind: int, items: list[Any], spoiled: Callable[[Any], None]) -> bytes:
    """``items`` as one frame; when that fails (an item that cannot be pickled, a frame too large
    for its length prefix), one frame per item, and each item that still fails goes to
    ``spoiled`` instead of taking the whole batch down with it."""
    with contextlib.suppress(Exception):
        return frame(kind, items)
    out = []
    for item in items:
        try:
            out.append(frame(kind, [item]))
        except Exception:
            spoiled(item)
    return b"".join(out)


async def read(reader: asyncio.StreamReader) -> tuple[int, Any]:
    size = LENGTH.unpack(await reader.readexactly(LENGTH.size))[0]
    # The peer is our own child or parent, started by us over a private socketpair.
    kind, payload = pickle.loads(await reader.readexactly(size))  # noqa: S301
    return kind, payload


def request_fields(request_id: int, r: OutboundRequest) -> tuple[Any, ...]:
    """A request as a SEND item. A request without a body limit or TLS material of its own (the
    usual one) stays five fields: nothing more to pickle per attempt."""
    if r.body_limit is None and r.tls is None:
        return (request_id, r.url, tuple(r.headers), r.body, r.timeout)
    tls = None if r.tls is None else r.tls.fields()
    return (request_id, r.url, tuple(r.headers), r.body, r.timeout, r.body_limit, tls)


def request(
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    timeout: float,
    body_limit: int | None = None,
    tls: Sequence[str] | None = None,
) -> OutboundRequest:
    """The request of a SEND item's fields after its id (the inverse of request_fields)."""
    material = None
    if tls is not None:
        cert, key, ca, digest = tls
        material = TlsMaterial(certificate_pem=cert, key_pem=key, ca_pem=ca, digest=digest)
    return OutboundRequest(
        url=url, headers=headers, body=body, timeout=timeout, body_limit=body_limit, tls=material
    )


def report_fields(r: AttemptReport) -> tuple[Any, ...]:
    return (
        r.status,
        r.headers,
        r.body,
        r.truncated,
        r.error_kind.value,
        r.error,
        r.remote_address,
        r.duration,
        r.retry_after,
        r.internal,
        r.started_at,
    )


def report(fields: Sequence[Any]) -> AttemptReport:
    first, rest = fields[:10], fields[10:]
    status, headers, body, truncated, kind, error, remote, duration, retry_after, internal = first
    started_at = rest[0] if rest else 0.0  # ten fields: a report without its send time
    return AttemptReport(
        status=status,
        headers=headers,
        body=body,
        truncated=truncated,
        error_kind=ErrorKind(kind),
        error=error,
        remote_address=remote,
        duration=duration,
        retry_after=retry_after,
        internal=internal,
        started_at=started_at,
    )
