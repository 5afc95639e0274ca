"""How long to wait before retrying a failed delivery: retry policies and the Retry-After header.

Pure: the caller passes the clock (``now``) and the random generator, so every schedule is
reproducible in tests.
"""

from __future__ import annotations

import random
import re
from datetime import UTC
from email.utils import parsedate_to_datetime

from convoyd.core.model import RetryPolicy, RetryStrategy

# RFC 9110 §10.2.3: delay-seconds = 1*DIGIT. Written out rather than str.isdigit(), which also
# accepts non-ASCII digits such as "²".
_DELTA_SECONDS = re.compile(r"[0-9]+")
# More digits than this is beyond any cap anyone would configure; don't build a huge int for it.
_MAX_DELTA_DIGITS = 15


def next_delay(policy: RetryPolicy, attempts_made: int, rng: random.Random) -> float | None:
    """Seconds to wait after ``attempts_made`` (>= 1) failed attempts; None once exhausted.

    SCHEDULE uses ``delays[attempts_made - 1]``; EXPONENTIAL grows ``initial_interval`` by
    ``multiplier`` per attempt up to ``max_interval``; LINEAR waits ``interval``. EXPONENTIAL and
    LINEAR allow ``max_retries`` retries. Jitter is applied last, so a jittered delay may exceed
    ``max_interval`` by up to ``jitter / 2`` of it.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
    base = _base_delay(policy, attempts_made)
    if base is None:
        return None
    return _jittered(base, policy.jitter, rng)


def _base_delay(policy: RetryPolicy, attempts_made: int) -> float | None:
    match policy.strategy:
        case RetryStrategy.SCHEDULE:
            if attempts_made > len(policy.delays):
                return None
            return float(policy.delays[attempts_made - 1])
        case RetryStrategy.EXPONENTIAL:
            if attempts_made > policy.max_retries:
                return None
            try:
                grown = policy.initial_interval * policy.multiplier ** (attempts_made - 1)
            except OverflowError:
                # A large max_retries with a large multiplier: the cap is what applies anyway.
                return float(policy.max_interval)
            return float(min(grown, policy.max_interval))
        case RetryStrategy.LINEAR:
            if attempts_made > policy.max_retries:
                return None
            return float(policy.interval)
    raise ValueError(f"unknown retry strategy {policy.strategy!r}")  # pragma: no cover


def _jittered(delay: float, jitter: float, rng: random.Random) -> float:
    # Spreads retries of many deliveries that failed together (an endpoint outage) so that they
    # do not all come back at the same instant. No draw when there is nothing to spread, so a
    # jitter-free policy leaves the generator untouched.
    if jitter <= 0 or delay <= 0:
        return max(delay, 0.0)
    factor = rng.uniform(1 - jitter / 2, 1 + jitter / 2)
    return max(delay * factor, 0.0)


def retry_after_delay(header_value: str | None, now: float, cap: float) -> float | None:
    """Seconds asked for by an HTTP ``Retry-After`` header, clamped to ``[0, cap]``.

    Accepts delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"); a date in
    the past means 0. None when the header is absent or unparseable, so the policy applies.
    """
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    if header_value is None:
        return None
    value = header_value.strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        if len(value) > _MAX_DELTA_DIGITS:
            return float(cap)
        return float(min(int(value), cap))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # "-0000" dates come back naive; HTTP-dates are always UTC (RFC 9110 §5.6.7).
        when = when.replace(tzinfo=UTC)
    return float(min(max(when.timestamp() - now, 0.0), cap))
