"""Attempt classification: every status class and transport error, table-driven."""

from __future__ import annotations

import pytest

from convoyd.core.outcome import (
    DEFAULT_RETRY_AFTER_CAP,
    ErrorKind,
    Outcome,
    Verdict,
    classify,
)

NOW = 1_700_000_000.0
SUCCESS, RETRY, GONE = Verdict.SUCCESS, Verdict.RETRY, Verdict.GONE


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (200, None, Outcome(SUCCESS, None, "HTTP 200")),
        (201, None, Outcome(SUCCESS, None, "HTTP 201")),
        (204, None, Outcome(SUCCESS, None, "HTTP 204")),
        (299, None, Outcome(SUCCESS, None, "HTTP 299")),
        # Redirects are never followed and count as failures.
        (301, None, Outcome(RETRY, None, "HTTP 301 (redirects are not followed)")),
        (302, "10", Outcome(RETRY, None, "HTTP 302 (redirects are not followed)")),
        (304, None, Outcome(RETRY, None, "HTTP 304 (redirects are not followed)")),
        (400, None, Outcome(RETRY, None, "HTTP 400")),
        (401, None, Outcome(RETRY, None, "HTTP 401")),
        (404, None, Outcome(RETRY, None, "HTTP 404")),
        (410, None, Outcome(GONE, None, "HTTP 410")),
        (410, "10", Outcome(GONE, None, "HTTP 410")),
        # Retry-After is honoured for 429 and 503 only.
        (429, None, Outcome(RETRY, None, "HTTP 429")),
        (429, "30", Outcome(RETRY, 30.0, "HTTP 429")),
        (429, "999999", Outcome(RETRY, DEFAULT_RETRY_AFTER_CAP, "HTTP 429")),
        (429, "garbage", Outcome(RETRY, None, "HTTP 429")),
        (503, "0", Outcome(RETRY, 0.0, "HTTP 503")),
        (503, "Tue, 14 Nov 2023 22:13:00 GMT", Outcome(RETRY, 0.0, "HTTP 503")),
        (503, "Tue, 14 Nov 2023 22:14:20 GMT", Outcome(RETRY, 60.0, "HTTP 503")),
        (500, "30", Outcome(RETRY, None, "HTTP 500")),
        (502, None, Outcome(RETRY, None, "HTTP 502")),
        (504, None, Outcome(RETRY, None, "HTTP 504")),
        # Odd statuses a server may send are failures, not successes.
        (100, None, Outcome(RETRY, None, "HTTP 100")),
        (199, None, Outcome(RETRY, None, "HTTP 199")),
        (600, None, Outcome(RETRY, None, "HTTP 600")),
        (999, None, Outcome(RETRY, None, "HTTP 999")),
    ],
)
def test_http_status(status: int, retry_after: str | None, expected: Outcome) -> None:
    assert classify(status, ErrorKind.NONE, retry_after, now=NOW) == expected


def test_retry_after_uses_the_callers_cap() -> None:
    outcome = classify(429, retry_after="600", now=NOW, retry_after_cap=120)
    assert outcome == Outcome(RETRY, 120.0, "HTTP 429")


@pytest.mark.parametrize(
    ("status", "error_kind", "detail", "expected"),
    [
        (None, ErrorKind.TIMEOUT, "", Outcome(RETRY, None, "timeout")),
        (None, ErrorKind.TIMEOUT, "timeout after 10s", Outcome(RETRY, None, "timeout after 10s")),
        (None, ErrorKind.NETWORK, "", Outcome(RETRY, None, "network error")),
        (
            None,
            ErrorKind.NETWORK,
            "connection refused",
            Outcome(RETRY, None, "connection refused"),
        ),
        # BLOCKED retries: the block is configuration an operator may change (allow-list).
        (None, ErrorKind.BLOCKED, "", Outcome(RETRY, None, "address blocked by the SSRF guard")),
        (
            None,
            ErrorKind.BLOCKED,
            "10.0.0.1 is private",
            Outcome(RETRY, None, "blocked: 10.0.0.1 is private"),
        ),
        # A transport error wins over a status: a 2xx whose body timed out is not a success,
        # and a 410 whose read failed is not proof the endpoint is gone.
        (200, ErrorKind.TIMEOUT, "", Outcome(RETRY, None, "timeout")),
        (410, ErrorKind.NETWORK, "reset", Outcome(RETRY, None, "reset")),
        (429, ErrorKind.TIMEOUT, "", Outcome(RETRY, None, "timeout")),
        # No status and no error: retry rather than lose the delivery.
        (None, ErrorKind.NONE, "", Outcome(RETRY, None, "no response")),
        # Details become one short line.
        (None, ErrorKind.NETWORK, "bad\r\nthing\t here", Outcome(RETRY, None, "bad thing here")),
    ],
)
def test_transport_errors(
    status: int | None, error_kind: ErrorKind, detail: str, expected: Outcome
) -> None:
    assert classify(status, error_kind, "30", now=NOW, detail=detail) == expected


def test_long_details_are_truncated() -> None:
    outcome = classify(None, ErrorKind.NETWORK, now=NOW, detail="x" * 1000)
    assert len(outcome.reason) == 200
    assert outcome.reason.endswith("…")


@pytest.mark.parametrize("error_kind", list(ErrorKind))
def test_every_error_kind_is_classified(error_kind: ErrorKind) -> None:
    assert isinstance(classify(None, error_kind, now=NOW), Outcome)
