"""W3C Trace Context rules (convoyd/core/tracecontext.py): traceparent and tracestate parsing and
formatting, what a request's metadata yields, the headers an attempt sends, the stored form."""

from __future__ import annotations

import pytest

from convoyd.core.tracecontext import (
    EventTrace,
    TraceParent,
    decode,
    encode,
    format_traceparent,
    incoming,
    parse_traceparent,
    parse_tracestate,
    with_trace_headers,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"
PARENT = TraceParent(trace_id=int(TRACE, 16), span_id=int(SPAN, 16), flags=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VALID, PARENT),
        (f"00-{TRACE}-{SPAN}-00", TraceParent(trace_id=PARENT.trace_id, span_id=PARENT.span_id)),
        # Level 2's random-trace-id flag, and flags unknown today, pass through.
        (
            f"00-{TRACE}-{SPAN}-03",
            TraceParent(trace_id=PARENT.trace_id, span_id=PARENT.span_id, flags=3),
        ),
        (
            f"00-{TRACE}-{SPAN}-ff",
            TraceParent(trace_id=PARENT.trace_id, span_id=PARENT.span_id, flags=255),
        ),
        (f" \t{VALID}\t ", PARENT),  # optional whitespace around a header value
        # A later version is read by its first four fields, whatever follows a dash.
        (f"01-{TRACE}-{SPAN}-01", PARENT),
        (f"cc-{TRACE}-{SPAN}-01-what-the-future-holds", PARENT),
        (
            "00-00000000000000000000000000000001-0000000000000001-01",
            TraceParent(trace_id=1, span_id=1, flags=1),
        ),
    ],
)
def test_valid_traceparents_parse(value: str, expected: TraceParent) -> None:
    assert parse_traceparent(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{TRACE}-{SPAN}-0A",
        f"0A-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 is exactly 55 characters
        f"01-{TRACE}-{SPAN}-01extra",  # a later version's extra fields follow a dash
        f"00-{TRACE[:-1]}-{SPAN}-01",  # a field too short
        f"00-{TRACE}0-{SPAN}-01",  # a field too long
        f"00_{TRACE}_{SPAN}_01",  # wrong separators
        f"00-{TRACE[:-1]}g-{SPAN}-01",  # not hex
        f"00-{TRACE}-{SPAN}-1",
        f"0-0{TRACE}-{SPAN}-01",
    ],
)
def test_invalid_traceparents_are_refused(value: str) -> None:
    assert parse_traceparent(value) is None


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (PARENT, VALID),
        (
            TraceParent(trace_id=1, span_id=2),
            "00-00000000000000000000000000000001-0000000000000002-00",
        ),
        (
            TraceParent(trace_id=2**128 - 1, span_id=2**64 - 1, flags=3),
            f"00-{'f' * 32}-{'f' * 16}-03",
        ),
    ],
)
def test_traceparent_formats_and_parses_back(context: TraceParent, expected: str) -> None:
    assert format_traceparent(context) == expected
    assert parse_traceparent(expected) == context


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], ""),
        ([""], ""),
        (["congo=t61rcWkgMzE"], "congo=t61rcWkgMzE"),
        (["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (["rojo=1", "congo=2"], "rojo=1,congo=2"),  # several header values are one list
        (["rojo=1,,  ,congo=2"], "rojo=1,congo=2"),  # empty members are dropped
        (["tenant1@vendor=v", "a_b-c*d/e=x y"], "tenant1@vendor=v,a_b-c*d/e=x y"),
        (["Rojo=1"], ""),  # keys are lower case
        (["rojo"], ""),  # no value
        (["rojo=1,congo"], ""),  # one bad member drops the whole list
        (["rojo=a=b"], ""),  # '=' in a value
        (["rojo=trailing "], "rojo=trailing"),  # a space before the next comma is OWS
        (["rojo=1,rojo=2"], ""),  # a key twice
        (["1abc=1"], ""),  # a simple key starts with a letter
        ([f"k{'a' * 256}=1"], ""),  # a key too long
        ([f"k=v{'a' * 256}"], ""),  # a value too long (257 characters)
        ([f"k=v{'a' * 255}"], f"k=v{'a' * 255}"),  # the longest value: 256 characters
        ([",".join(f"k{i}=v" for i in range(32))], ",".join(f"k{i}=v" for i in range(32))),
        ([",".join(f"k{i}=v" for i in range(33))], ""),  # at most 32 members
    ],
)
def test_tracestate_is_kept_only_when_every_member_is_valid(
    values: list[str], expected: str
) -> None:
    assert parse_tracestate(values) == expected


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), (None, "")),
        ((("authorization", "Bearer x"),), (None, "")),
        ((("traceparent", VALID),), (PARENT, "")),
        (
            (("traceparent", VALID), ("tracestate", "rojo=1"), ("tracestate", "congo=2")),
            (PARENT, "rojo=1,congo=2"),
        ),
        ((("traceparent", VALID), ("traceparent", VALID)), (None, "")),  # two: invalid
        ((("traceparent", "00-nope"), ("tracestate", "rojo=1")), (None, "")),
        ((("tracestate", "rojo=1"),), (None, "")),  # tracestate alone means nothing
        ((("traceparent", VALID), ("tracestate", "BAD")), (PARENT, "")),
        ((("traceparent-bin", b"\x00"),), (None, "")),
    ],
)
def test_incoming_reads_request_metadata(
    metadata: tuple[tuple[str, str | bytes], ...], expected: tuple[TraceParent | None, str]
) -> None:
    assert incoming(metadata) == expected


def test_attempt_headers_carry_the_event_trace_and_the_attempt_span() -> None:
    trace = EventTrace(parent=PARENT, tracestate="rojo=1")
    headers = [
        ("Content-Type", "application/json"),
        ("TraceParent", "custom"),
        ("TRACESTATE", "x=y"),
    ]
    out = with_trace_headers(headers, trace, span_id=0xABC)
    assert out == [
        ("Content-Type", "application/json"),
        ("traceparent", f"00-{TRACE}-0000000000000abc-01"),
        ("tracestate", "rojo=1"),
    ]
    unsampled = EventTrace(parent=TraceParent(trace_id=5, span_id=6, flags=0))
    assert with_trace_headers([], unsampled, span_id=7) == [
        ("traceparent", "00-00000000000000000000000000000005-0000000000000007-00")
    ]


@pytest.mark.parametrize(
    "trace",
    [
        EventTrace(parent=PARENT),
        EventTrace(parent=PARENT, tracestate="rojo=1,congo=2"),
        EventTrace(parent=PARENT, ingest=TraceParent(trace_id=9, span_id=10, flags=1)),
    ],
)
def test_stored_form_reads_back(trace: EventTrace) -> None:
    assert decode(encode(trace)) == trace


@pytest.mark.parametrize(
    "text",
    [None, "", "not json", "[]", "{}", '{"traceparent": "00-nope"}', '{"traceparent": 5}'],
)
def test_unreadable_stored_form_is_no_trace(text: str | None) -> None:
    assert decode(text) is None
