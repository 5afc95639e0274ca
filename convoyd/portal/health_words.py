"""Delivery health in words: counts, shares, response times, UTC time spans and how each
period's charts are labelled (the endpoint page's and the list's), for charts.py.

Pure, like charts.py: no I/O and no clock; times are formatted in UTC, and say so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from convoyd.core.health import LATENCY_BOUNDS_MS, HealthBucket

_TOP_BOUND_MS = float(LATENCY_BOUNDS_MS[-1])


@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    """How one period's charts are labelled: its name and its buckets' times."""

    name: str
    """As in a sentence: "Last 24 hours"."""
    per: str
    """A bucket's length as in "per hour"."""
    bucket_label: Callable[[HealthBucket], str]
    """A bucket's time span, as in its tooltip."""
    tick: Callable[[HealthBucket], str]
    """The time axis' label under a bucket; '' for none."""


# -- words and numbers --------------------------------------------------------------------------


def count(n: int) -> str:
    return f"{n:,}"


def duration(ms: float) -> str:
    """A response time as a person reads it: 0.4 ms, 12 ms, 1.25 s, 60 s or more."""
    if ms >= _TOP_BOUND_MS:
        return f"{_TOP_BOUND_MS / 1000:.0f} s or more"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 1000:.1f} s"


def ok_share(b: HealthBucket) -> str:
    """The share of attempts that succeeded, never rounded up to 100 % past a failure."""
    if b.attempts == 0:
        return "—"
    share = math.floor(1000 * b.ok / b.attempts) / 10
    if b.ok == 0 or b.failed == 0:
        number = f"{share:.0f}"
    else:
        number = "under 0.1" if share == 0 else f"{share:.1f}"
    return f"{number}\u00a0%"  # no line break between the number and its sign


def counts_text(b: HealthBucket) -> str:
    return f"{count(b.ok)} ok, {count(b.failed)} failed"


def times_text(b: HealthBucket) -> str:
    p50, p95 = b.percentile(0.5), b.percentile(0.95)
    if p50 is None or p95 is None:
        return "no response times"
    return f"response time p50 {duration(p50)}, p95 {duration(p95)}"


def summary(name: str, b: HealthBucket) -> str:
    """One period in words: "Last 24 hours: 1,204 ok, 13 failed (98.9 % ok); response time
    p50 120 ms, p95 850 ms" (without the "Last 24 hours: " when ``name`` is empty)."""
    said = (
        "no attempts"
        if b.attempts == 0
        else f"{counts_text(b)} ({ok_share(b)} ok); {times_text(b)}"
    )
    return f"{name}: {said}" if name else said[0].upper() + said[1:]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# A list page labels the same 24 hours for every endpoint: each span is formatted once.
@functools.lru_cache(maxsize=256)
def _span(start_ts: float, end_ts: float, weekday: bool) -> str:
    start, end = _utc(start_ts), _utc(end_ts)
    day = f"{start:%a} {start.day}" if weekday else f"{start.day}"
    return f"{day} {start:%b %H:%M}-{end:%H:%M} UTC"


def hour_span(b: HealthBucket) -> str:
    """ "3 Jun 14:00-15:00 UTC"."""
    return _span(b.start, b.end, False)


def day_span(b: HealthBucket) -> str:
    """ "Mon 3 Jun 06:00-12:00 UTC"."""
    return _span(b.start, b.end, True)


def tick_every_6_hours(b: HealthBucket) -> str:
    start = _utc(b.start)
    return f"{start:%H:%M}" if start.hour % 6 == 0 else ""


def tick_each_day(b: HealthBucket) -> str:
    start = _utc(b.start)
    # A weekday is enough: the 28 buckets of a week hold each midnight of one weekday once.
    return f"{start:%a}" if start.hour == 0 else ""


DAY = Period(name="Last 24 hours", per="per hour", bucket_label=hour_span, tick=tick_every_6_hours)
WEEK = Period(name="Last 7 days", per="per 6 hours", bucket_label=day_span, tick=tick_each_day)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power  # not reached
