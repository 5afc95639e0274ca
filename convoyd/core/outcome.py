"""Classify one delivery attempt (HTTP status or transport error) into what happens next.

The delivery promise (architecture.md §2): success is a 2xx; a 3xx is a failure (redirects are
never followed); 410 Gone stops delivery and makes the endpoint INACTIVE; 429/503 with
``Retry-After`` is honoured (capped); everything else is retried per the endpoint's retry policy.
Whether retries remain is ``retry.next_delay``'s business, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from convoyd.core.retry import retry_after_delay

# Longest wait a Retry-After may impose when the caller does not pass its configured cap.
DEFAULT_RETRY_AFTER_CAP = 3600.0
# Reasons end up in the attempt log and the portal: one short line.
_MAX_REASON_CHARS = 200


class ErrorKind(StrEnum):
    """Why an attempt got no usable HTTP answer (NONE when it did)."""

    NONE = "none"
    TIMEOUT = "timeout"  # no complete answer within the endpoint's http_timeout
    NETWORK = "network"  # DNS, connect, TLS, reset: the request did not complete
    BLOCKED = "blocked"  # the SSRF guard refused the address connected to


class Verdict(StrEnum):
    """What the engine does with the delivery after this attempt."""

    SUCCESS = "success"  # done
    RETRY = "retry"  # try again per the retry policy (FAILURE once it is exhausted)
    GONE = "gone"  # stop; the endpoint becomes INACTIVE (architecture.md §3)


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    #: Seconds the receiver asked us to wait (429/503 ``Retry-After``, capped); None otherwise.
    retry_after: float | None
    #: Short human text for the attempt log: "HTTP 500", "timeout", "connection refused".
    reason: str


# Transport errors, with the reason used when the sender gives no detail. BLOCKED retries rather
# than giving up: the block is configuration (an operator may allow-list the CIDR), not a verdict
# about the endpoint, and the retry policy still bounds how long we keep trying.
_ERRORS: Mapping[ErrorKind, tuple[Verdict, str]] = {
    ErrorKind.TIMEOUT: (Verdict.RETRY, "timeout"),
    ErrorKind.NETWORK: (Verdict.RETRY, "network error"),
    ErrorKind.BLOCKED: (Verdict.RETRY, "address blocked by the SSRF guard"),
}

# Statuses with a verdict of their own; any other 2xx succeeds and anything else retries.
_STATUSES: Mapping[int, Verdict] = {410: Verdict.GONE}

# Statuses whose Retry-After header is honoured; elsewhere the header is ignored.
HONOURS_RETRY_AFTER = frozenset({429, 503})


def classify(
    status: int | None,
    error_kind: ErrorKind = ErrorKind.NONE,
    retry_after: str | None = None,
    *,
    now: float,
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
    detail: str = "",
) -> Outcome:
    """The verdict for one attempt.

    ``status`` is None when no HTTP answer arrived. A transport error wins over a status (a
    response whose body timed out is not a success). ``detail`` is the sender's short description
    of a transport error ("connection refused"); it must not contain secrets.
    """
    if error_kind is not ErrorKind.NONE:
        verdict, default_reason = _ERRORS[error_kind]
        text = _one_line(detail)
        if error_kind is ErrorKind.BLOCKED and text:
            text = f"blocked: {text}"
        return Outcome(verdict, None, text or default_reason)
    if status is None:
        # The sender should always say why there is no answer; if it did not, retrying keeps the
        # at-least-once promise instead of dropping the delivery.
        return Outcome(Verdict.RETRY, None, _one_line(detail) or "no response")
    default = Verdict.SUCCESS if 200 <= status <= 299 else Verdict.RETRY
    verdict = _STATUSES.get(status, default)
    reason = f"HTTP {status}"
    if 300 <= status <= 399:
        reason += " (redirects are not followed)"
    wait = None
    if status in HONOURS_RETRY_AFTER:
        wait = retry_after_delay(retry_after, now, retry_after_cap)
    return Outcome(verdict, wait, reason)


def _one_line(text: str) -> str:
    collapsed = " ".join(text.split())
    if len(collapsed) > _MAX_REASON_CHARS:
        collapsed = collapsed[: _MAX_REASON_CHARS - 1] + "…"
    return collapsed
