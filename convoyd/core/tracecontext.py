"""W3C Trace Context: parsing and formatting ``traceparent`` and ``tracestate``, and an event's
place in a trace as the store keeps it.

The rules are those of https://www.w3.org/TR/trace-context/ (level 1, with level 2's flags
passed through): a ``traceparent`` is ``version-traceid-parentid-flags`` in lowercase hex;
version ``ff`` and all-zero ids are invalid; a later version is read by its first four fields.
A ``tracestate`` is kept only when every one of its members is well formed (at most 32), and
is dropped whole otherwise, as the specification asks of a vendor that cannot parse it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SAMPLED = 0x01

_HEX = re.compile(r"[0-9a-f]+")
_VERSION_00_LENGTH = 55  # 2 + 1 + 32 + 1 + 16 + 1 + 2
_MAX_TRACESTATE_MEMBERS = 32
# A list member's key: a simple key, or tenant@system (multi-tenant), per the specification.
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
# Its value: printable ASCII but ',' and '=', not ending in a space.
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_OWS = " \t"


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceParent:
    """One span's context as ``traceparent`` carries it: 128-bit trace id, 64-bit span id, flags."""

    trace_id: int
    span_id: int
    flags: int = 0

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventTrace:
    """An event's place in its trace, stored with it: every attempt is a child of ``parent``
    (the caller's span, or convoyd's own event span when the caller sent none) and links to
    ``ingest``, the span of the call that accepted it."""

    parent: TraceParent
    tracestate: str = ""
    ingest: TraceParent | None = None


def _hex_id(text: str, length: int) -> int | None:
    if len(text) != length or not _HEX.fullmatch(text):
        return None
    value = int(text, 16)
    return value or None  # all zeros: invalid


def parse_traceparent(value: str) -> TraceParent | None:
    """The context of a ``traceparent`` value, or None when it is not a valid one."""
    value = value.strip(_OWS)
    if len(value) < _VERSION_00_LENGTH:
        return None
    version = value[:2]
    if not _HEX.fullmatch(version) or version == "ff":
        return None
    if version == "00" and len(value) != _VERSION_00_LENGTH:
        return None
    # A later version may append fields after a dash; its first four are read as version 00's.
    if len(value) > _VERSION_00_LENGTH and value[_VERSION_00_LENGTH] != "-":
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace_id = _hex_id(value[3:35], 32)
    span_id = _hex_id(value[36:52], 16)
    flags = value[53:55]
    if trace_id is None or span_id is None or not _HEX.fullmatch(flags):
        return None
    return TraceParent(trace_id=trace_id, span_id=span_id, flags=int(flags, 16))


def format_traceparent(context: TraceParent) -> str:
    """The ``traceparent`` value (version 00) of ``context``."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.flags & 0xFF:02x}"


def parse_tracestate(values: Iterable[str]) -> str:
    """The ``tracestate`` of one or more header values (joined as one list), normalised to
    ``key=value`` members joined by commas; "" when there is none or any member is invalid."""
    members: list[str] = []
    keys: set[str] = set()
    for value in values:
        for raw in value.split(","):
            member = raw.strip(_OWS)
            if not member:
                continue  # empty members are allowed and dropped
            key, sep, item = member.partition("=")
            if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(item) or key in keys:
                return ""
            keys.add(key)
            members.append(f"{key}={item}")
    if len(members) > _MAX_TRACESTATE_MEMBERS:
        return ""
    return ",".join(members)


def incoming(metadata: Iterable[tuple[str, str | bytes]]) -> tuple[TraceParent | None, str]:
    """The ``traceparent`` and ``tracestate`` of request metadata (names lowercase, as gRPC
    gives them). More than one ``traceparent`` is invalid; a ``tracestate`` without a valid
    ``traceparent`` means nothing."""
    parents: list[str] = []
    states: list[str] = []
    for name, value in metadata:
        if name == TRACEPARENT and isinstance(value, str):
            parents.append(value)
        elif name == TRACESTATE and isinstance(value, str):
            states.append(value)
    if len(parents) != 1:
        return None, ""
    parent = parse_traceparent(parents[0])
    if parent is None:
        return None, ""
    return parent, parse_tracestate(states)


def with_trace_headers(
    headers: Sequence[tuple[str, str]], trace: EventTrace, span_id: int
) -> list[tuple[str, str]]:
    """``headers`` with the ``traceparent`` of the attempt span ``span_id`` in ``trace`` (and
    its ``tracestate``), in place of any custom header of those names."""
    out = [(n, v) for n, v in headers if n.lower() not in (TRACEPARENT, TRACESTATE)]
    parent = trace.parent
    child = TraceParent(trace_id=parent.trace_id, span_id=span_id, flags=parent.flags)
    out.append((TRACEPARENT, format_traceparent(child)))
    if trace.tracestate:
        out.append((TRACESTATE, trace.tracestate))
    return out


def encode(trace: EventTrace) -> str:
    """``trace`` as the text the store keeps in the event's ``trace_context`` column."""
    doc = {"traceparent": format_traceparent(trace.parent)}
    if trace.tracestate:
        doc["tracestate"] = trace.tracestate
    if trace.ingest is not None:
        doc["ingest"] = format_traceparent(trace.ingest)
    return json.dumps(doc, separators=(",", ":"))


def decode(text: str | None) -> EventTrace | None:
    """The EventTrace of a stored ``trace_context`` (None for none, or one not readable)."""
    if not text:
        return None
    try:
        doc = json.loads(text)
        parent = parse_traceparent(doc["traceparent"])
        ingest = parse_traceparent(doc["ingest"]) if "ingest" in doc else None
        tracestate = parse_tracestate([doc.get("tracestate", "")])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if parent is None:
        return None
    return EventTrace(parent=parent, tracestate=tracestate, ingest=ingest)
